// `bpfkit --broker SOCK dump map|prog ID`: a tenant's own map's entries or
// program's instructions, printed as `bpfkit map dump` and `bpfkit prog dump
// --xlated` print them. A map is read here, through an fd the broker hands
// over (get_fd: only the tenant's own maps, and a map its tasks hold only
// read-only stays read-only), decoded through its BTF when that BTF is in the
// tenant's view too. A program's instructions come from the broker
// (prog_xlated): the kernel shows them to CAP_BPF callers only.
import { asm } from '../asm/index.js'
import type { BtfReader } from '../btf/reader.js'
import type { BrokerClient } from '../broker/client.js'
import { printMapDump, OpenMap } from './map.js'
import { printXlated } from './prog.js'
import type { Out } from './args.js'

export const dumpUsage = `usage: bpfkit --broker SOCK dump map|prog ID [--json]
  one of the caller's maps, entry by entry (keys and values through its BTF, else hex),
  or one of its programs' translated instructions (--xlated, the default), as
  'bpfkit map dump' and 'bpfkit prog dump --xlated' print them`

// The map's BTF when the tenant may have it; hex otherwise.
async function btfOf(client: BrokerClient, btfId: number): Promise<BtfReader | undefined> {
  if (btfId === 0) return undefined
  try {
    using btf = await client.open('btf', btfId)
    return btf.reader()
  } catch {
    return undefined
  }
}

export async function dumpThroughBroker(client: BrokerClient, kind: 'map' | 'prog', id: number, json: boolean, out: Out): Promise<void> {
  if (kind === 'prog') {
    printXlated(asm.decode(await client.xlated(id)), id, json, out)
    return
  }
  const map = await client.open('map', id)
  try {
    const btf = await btfOf(client, map.info().btfId)
    printMapDump(new OpenMap({ map, btf }, false), json, out)
  } finally {
    map.close()
  }
}
