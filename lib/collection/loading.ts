// One load's context: the object, the token it found, the object's BTF as
// loaded, and what this kernel has, asked once. Shared by the map and program
// steps of CollectionSpec.load (load-maps.ts, load-programs.ts).
import { Btf } from '../btf/btf.js'
import { sanitizeBtf, type BtfSupport } from '../btf/sanitize.js'
import { btfSupport, supportsBtf, supportsMmapableMaps } from '../features/index.js'
import { defaultToken, setDefaultToken, type TokenLike } from '../sys/index.js'
import type { ParsedObject } from './object.js'

/** What one load needs at every step: the object, its token, its loaded BTF and what the kernel has. */
export interface Loading {
  object: ParsedObject
  token: TokenLike | null | undefined
  btf: Btf | undefined
  /** BTF kinds this kernel takes (undefined: no BTF at all), and mmapable arrays. */
  has: { btf: BtfSupport | undefined; mmapable: boolean }
}

// What this kernel has, asked once per load. The probes create tiny objects
// with the process's default token; a load that found its own token (a
// delegated tenant, where nothing works without one) lends it to them for
// this synchronous moment. A probe the token does not allow counts as "no".
export function probeKernel(token: TokenLike | null | undefined): Loading['has'] {
  const before = defaultToken()
  if (token) setDefaultToken(token)
  const ask = <T>(probe: () => T, otherwise: T): T => {
    try {
      return probe()
    } catch {
      return otherwise
    }
  }
  try {
    return { btf: ask(() => (supportsBtf() ? btfSupport() : undefined), undefined), mmapable: ask(supportsMmapableMaps, false) }
  } finally {
    setDefaultToken(before)
  }
}

// The object's BTF as this kernel will take it. A kernel that takes none
// (or refuses it) still gets the programs, without func/line info, as libbpf does.
export function loadObjectBtf(object: ParsedObject, token: TokenLike | null | undefined, support: BtfSupport | undefined): Btf | undefined {
  if (!object.loadableBtf || !support) return undefined
  try {
    return Btf.loadSync(sanitizeBtf(object.loadableBtf, support), { token })
  } catch {
    return undefined
  }
}

