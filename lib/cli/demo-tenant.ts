// The tenant of `bpfkit demo`: runs as root of fresh user and mount
// namespaces (and nobody outside them), with the manager on fd 3. It asks
// for a token, uses it, shows one request bpfkit refuses and one the kernel
// refuses, lists its own objects through the manager's tenant broker (the
// kernel's ID walk being refused to it), meets the broker's capability
// checker (and the guard, where it runs), and tells the manager what it
// made; every line it has to say goes to the manager, which prints it in
// order.
import { asm } from '../asm/index.js'
import { encode } from '../asm/assemble.js'
import { BrokerClient } from '../broker/client.js'
import { BrokerError } from '../broker/errors.js'
import type { ObjectView } from '../broker/protocol.js'
import { BpfToken } from '../delegation/index.js'
import { FdSocket } from '../ipc/index.js'
import * as ids from '../sys/ids.js'
import { BpfMap } from '../map/map.js'
import { BpfProgram } from '../prog/program.js'
import type { DemoEvent } from './demo.js'

// One row per object, as the manager prints the kernel's.
function row(v: ObjectView): string {
  const info = v.info as { type?: string }
  return `${v.kind.padEnd(4)} ${v.id}  ${info.type ?? '?'}  "${v.name}"  origin ${v.origin}${v.pins.length ? `  pinned ${v.pins.join(', ')}` : ''}`
}

// A refusal as the tenant reports it: the error, then each capability violation the message does not list.
function refusal(e: unknown): string {
  const err = e as Error & { code?: string; violations?: { message: string }[] }
  const lines = [`${err.name}${err.code ? ` ${err.code}` : ''}: ${err.message}`]
  for (const v of err.violations ?? []) if (!err.message.includes(v.message)) lines.push(`  ${v.message}`)
  return lines.join('\n')
}

async function main(): Promise<void> {
  const socket = FdSocket.from(3)
  const say = (text: string, detail?: string) => socket.send(Buffer.from(JSON.stringify({ type: 'say', text, detail } satisfies DemoEvent)))
  try {
    const token = await BpfToken.request(socket)
    const info = token.info()
    await say(`made a token from the delegated bpffs; the kernel says it delegates (${info.source === 'info' ? 'token info' : 'fdinfo'}):`,
      info.policy.describe().join('\n'))

    using counts = BpfMap.create({ type: 'hash', key: 'u32', value: 'u64', maxEntries: 16, name: 'demo_counts', token })
    counts.set(0, 0n)
    await say(`created hash map "demo_counts" with the token: id ${counts.id}`)

    const { R0, R1, R2, R6, R10 } = asm
    using prog = await BpfProgram.load({
      type: 'socket_filter', name: 'demo_len', license: 'GPL', token,
      insns: [
        asm.mov64Reg(R6, R1), // r6 = skb
        asm.stW(R10, -4, 0), asm.ldMapFd(R1, counts), asm.mov64Reg(R2, R10), asm.add64Imm(R2, -4),
        asm.call('map_lookup_elem'), asm.jeqImm(R0, 0, 'out'),
        asm.mov64Imm(R1, 1), asm.atomic('add', 64, R0, R1, 0), // counts[0] += 1
        asm.label('out'), asm.ldxW(R0, R6, 0), // return skb->len
        asm.exit(),
      ],
    })
    const run = await prog.testRun({ data: new Uint8Array(64), repeat: 100 })
    await say(`loaded socket_filter "demo_len" with the token: id ${prog.id}`, [
      `test run over a 64-byte packet, 100 times: returned ${run.retval} (skb->len, after the kernel pulled the`,
      `14-byte Ethernet header) and counted ${counts.get(0)} runs in demo_counts[0]`].join('\n'))

    try {
      BpfMap.create({ type: 'ringbuf', maxEntries: 4096, token }).close()
      await say('created a ringbuf map?! (the policy should have stopped it)')
    } catch (e) {
      await say('asked for a ringbuf map: refused by bpfkit before any syscall', `${(e as Error).name}: ${(e as Error).message}`)
    }
    try {
      BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1, token: null }).close()
      await say('created a map without the token?! (the kernel should have refused)')
    } catch (e) {
      await say('asked for a hash map without the token: refused by the kernel', `${(e as Error).name}: ${(e as Error).message}`)
    }
    try {
      ids.maps().next()
      await say('listed global map IDs?!')
    } catch (e) {
      await say('tried to list map IDs: refused; global IDs need CAP_SYS_ADMIN in the initial user namespace, token or not',
        `${(e as Error).name}: ${(e as Error).message}`)
    }

    // The manager has registered this user namespace with its broker by now; it says so first.
    await socket.receive()
    const brokerPath = process.env.BPFKIT_BROKER
    if (brokerPath === undefined) throw new Error('BPFKIT_BROKER is not set: the manager names its broker there')
    using broker = await BrokerClient.connect(brokerPath)
    const mine = await broker.list()
    await say(`asked the broker at ${brokerPath} instead: it knows this process as tenant '${broker.tenant}' and lists its objects`,
      [...mine.map(row), '(origin held: found in this process\'s /proc/PID/fdinfo; nobody else\'s objects are listed)'].join('\n'))

    // A socket filter that reads the clock: ktime_get_ns is in no capability
    // set the policy grants. BrokerClient.loadProgram would refuse it here
    // before sending; the request goes as is, as any tenant may send it, to
    // show the broker's own check.
    const clock = { type: 'socket_filter' as const, name: 'demo_time', license: 'GPL', insns: [asm.call('ktime_get_ns'), asm.exit()] }
    try {
      const spec = { type: clock.type, name: clock.name, license: clock.license, insns: Buffer.from(encode(clock.insns)).toString('base64') }
      const { fds } = await broker.request('prog_load', { spec, maps: 0 })
      for (const fd of fds) fd.close()
      await say('the broker loaded socket_filter "demo_time"?! (its capability checker should have refused ktime_get_ns)')
    } catch (e) {
      if (!(e instanceof BrokerError)) throw e
      await say('asked the broker to load socket_filter "demo_time", which calls ktime_get_ns: refused by its capability checker', refusal(e))
    }

    // The same program loaded directly with the token: only the guard makes the kernel check what it calls.
    // BPFKIT_DEMO_GUARD (demo.ts's guardEnv): 'on', or why the guard cannot run.
    if (process.env.BPFKIT_DEMO_GUARD === 'on') {
      // The token's bare fd, as any C tool would pass it: the BpfToken itself
      // carries the grant's capabilities, and bpfkit would refuse the program
      // before the kernel is asked. So the refusal shown is the kernel's.
      const bareToken = { fd: token.fd }
      try {
        ;(await BpfProgram.load({ ...clock, token: bareToken })).close()
        await say('loaded "demo_time" with the token?! (the guard should have refused it)')
      } catch (e) {
        await say('loaded "demo_time" itself, with the bare token fd (no bpfkit check): refused by the kernel (the guard)', refusal(e))
      }
    } else {
      await say('no guard runs here: loading "demo_time" itself with its token, the kernel would check only the token\'s masks,',
        'not what the program calls (the manager said why above); through the broker, the capability checker stands')
    }

    await socket.send(Buffer.from(JSON.stringify({ type: 'made', mapIds: [counts.id], progIds: [prog.id] } satisfies DemoEvent)))
    // Keep the objects alive until the manager has looked at them.
    await socket.receive()
    token.close()
  } finally {
    socket.close()
  }
}

main().catch((e: Error) => {
  process.stderr.write(`tenant: ${e.stack ?? e.message}\n`)
  process.exit(1)
})
