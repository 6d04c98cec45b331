// Probes for features that are neither a map type, a program type nor a
// helper: BPF tokens and their info, mmapable arrays, batch operations,
// bounded loops, large programs, links, BTF itself, instruction set additions.
import { readFileSync } from 'node:fs'
import { BtfBuilder } from '../btf/builder.js'
import { Fd, NotSupportedError, native, tokenFdFor, type TokenLike } from '../sys/index.js'
import { btfs } from '../sys/ids.js'
import { defaultToken } from '../sys/token.js'
import { IMPOSSIBLE_FD, bpfCode, cachedProbe, notSupported } from './probe-cache.js'
import { asm } from '../asm/index.js'
import { kernelBtf } from './prog-types.js'
import { btfKindVersions, mapTypes, miscVersions, progTypes, type FeatureVersion } from './versions.js'

const BPF_F_MMAPABLE = 1 << 10

function smallArray(flags = 0): Fd {
  const tokenFd = tokenFdFor(undefined, { cmd: 'map_create', mapType: mapTypes.array })
  return new Fd(native.mapCreate({ mapType: mapTypes.array, keySize: 4, valueSize: 4, maxEntries: 2, mapFlags: flags, tokenFd }), 'map')
}

function socketFilter(insns: Uint8Array): void {
  const tokenFd = tokenFdFor(undefined, { cmd: 'prog_load', progType: progTypes.socket_filter })
  native.closeFd(native.progLoadSync({ progType: progTypes.socket_filter, insns, license: 'GPL', tokenFd }).fd)
}

/**
 * BPF tokens (BPF_TOKEN_CREATE, Linux 6.9). The probe asks for a token from
 * an fd no process can have open: a kernel with the command fails looking up
 * that fd (EBADF) before any permission check, one without fails on the
 * unknown command (EINVAL). No bpffs or user namespace is needed. (With a
 * real bpffs root in the initial user namespace a token-capable kernel says
 * EOPNOTSUPP, since tokens only make sense in other namespaces.)
 */
export function haveBpfToken(): void {
  cachedProbe('token', () => {
    try {
      native.closeFd(native.tokenCreate(IMPOSSIBLE_FD))
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'EBADF') return
      if (code === 'EINVAL') throw notSupported('BPF tokens (BPF_TOKEN_CREATE)', miscVersions.bpfToken)
      throw e
    }
  })
}

// A token's fdinfo lists what it delegates; no other fd's does.
function isTokenFd(fd: number): boolean {
  try {
    return readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').includes('allowed_cmds:')
  } catch {
    return false
  }
}

/**
 * Token info through BPF_OBJ_GET_INFO_BY_FD (Linux 6.17); before it, only
 * the fdinfo lines describe a token. With a token (given, or the process
 * default), the probe asks the kernel for its info. Without one it cannot:
 * no token can exist in the initial user namespace, so the answer comes from
 * the kernel's own BTF, which describes struct bpf_token_info exactly when
 * the kernel has it. Errors: NotSupportedError; an Error when there is
 * neither a token nor kernel BTF to decide by. Cached.
 */
export function haveTokenInfo(token?: TokenLike): void {
  const tok = token ?? defaultToken()
  // Info of any other bpf object would succeed and prove nothing.
  if (tok !== undefined && !isTokenFd(tok.fd)) throw new TypeError(`haveTokenInfo: fd ${tok.fd} is not a BPF token`)
  cachedProbe('token_info', () => {
    const feature = 'BPF token info (BPF_OBJ_GET_INFO_BY_FD on a token)'
    if (tok !== undefined) {
      try {
        native.objGetInfoByFd(tok.fd, new Uint8Array(32))
        return
      } catch (e) {
        if (bpfCode(e) === 'EINVAL') throw notSupported(feature, miscVersions.tokenInfo)
        throw e
      }
    }
    try {
      haveBpfToken()
    } catch (e) {
      if (e instanceof NotSupportedError) throw notSupported(feature, miscVersions.tokenInfo, 'this kernel has no BPF tokens at all')
      throw e
    }
    const btf = kernelBtf()
    if (btf === null) throw new Error(`${feature}: cannot tell without a token or the kernel's BTF (/sys/kernel/btf/vmlinux)`)
    if (btf.find('bpf_token_info', 'STRUCT') === undefined) throw notSupported(feature, miscVersions.tokenInfo)
  })
}

/** Array maps that can be mmap()ed (BPF_F_MMAPABLE, Linux 5.5). */
export function haveMmapableMaps(): void {
  cachedProbe('mmapable', () => {
    try {
      smallArray(BPF_F_MMAPABLE).close()
    } catch (e) {
      if (bpfCode(e) === 'EINVAL') throw notSupported('mmapable array maps (BPF_F_MMAPABLE)', miscVersions.mmapableMaps)
      throw e
    }
  })
}

/** Batch lookup, update and delete of map elements (BPF_MAP_*_BATCH, Linux 5.6). */
export function haveBatchOps(): void {
  cachedProbe('batch', () => {
    using map = smallArray()
    try {
      native.mapUpdateBatch(map.fd, new Uint32Array([0, 1]), new Uint32Array([7, 8]), 2)
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'EINVAL' || code === 'ENOTSUPP' || code === 'EOPNOTSUPP') throw notSupported('batch map operations (BPF_MAP_*_BATCH)', miscVersions.batchOps)
      throw e
    }
  })
}

/** Loops the verifier can prove to end (Linux 5.3); earlier kernels refuse any back-edge. */
export function haveBoundedLoops(): void {
  cachedProbe('bounded_loops', () => {
    const insns = asm.assemble([
      asm.mov64Imm(asm.R0, 10),
      asm.label('loop'),
      asm.sub64Imm(asm.R0, 1),
      asm.jneImm(asm.R0, 0, 'loop'),
      asm.exit(),
    ])
    try {
      socketFilter(insns)
    } catch (e) {
      if (bpfCode(e) === 'EINVAL') throw notSupported('bounded loops', miscVersions.boundedLoops)
      throw e
    }
  })
}

/** Programs of more than 4096 instructions for privileged loaders (Linux 5.2). */
export function haveLargePrograms(): void {
  cachedProbe('large_programs', () => {
    const insns = asm.assemble([...Array.from({ length: 4096 }, () => asm.mov64Imm(asm.R0, 1)), asm.exit()])
    try {
      socketFilter(insns)
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'E2BIG' || code === 'EINVAL') throw notSupported('programs over 4096 instructions', miscVersions.largePrograms)
      throw e
    }
  })
}

/**
 * BPF links made by BPF_LINK_CREATE (Linux 5.7). A kernel with the command
 * fails looking up the impossible program fd (EBADF); one without fails on
 * the unknown command (EINVAL).
 */
export function haveLinkCreate(): void {
  cachedProbe('link_create', () => {
    try {
      native.closeFd(native.linkCreate({ progFd: IMPOSSIBLE_FD, attachType: 0 }))
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'EBADF') return
      if (code === 'EINVAL') throw notSupported('BPF links (BPF_LINK_CREATE)', miscVersions.linkCreate)
      throw e
    }
  })
}

// An instruction the kernel does not know is refused with EINVAL ("unknown
// opcode", "reserved fields"); so is nothing else in these tiny programs.
function insnProbe(key: string, feature: string, fv: FeatureVersion, items: Parameters<typeof asm.assemble>[0]): void {
  cachedProbe(key, () => {
    try {
      socketFilter(asm.assemble(items))
    } catch (e) {
      if (bpfCode(e) === 'EINVAL') throw notSupported(feature, fv)
      throw e
    }
  })
}

/** BPF_ATOMIC beyond plain add: fetch forms, and/or/xor, xchg, cmpxchg (Linux 5.12). */
export function haveAtomics(): void {
  insnProbe('atomics', 'atomic instructions (fetch, xchg, cmpxchg)', miscVersions.atomics, [
    asm.stDW(asm.R10, -8, 0), asm.mov64Imm(asm.R1, 1), asm.mov64Imm(asm.R0, 0),
    asm.atomic('or', 64, asm.R10, asm.R1, -8, { fetch: true }), asm.cmpxchg(64, asm.R10, asm.R1, -8),
    asm.mov64Imm(asm.R0, 0), asm.exit(),
  ])
}

/**
 * The instructions of LLVM's -mcpu=v4 (Linux 6.6): signed division and
 * modulo, sign-extending moves and loads, unconditional byte swaps, and
 * gotol (a 32-bit jump offset).
 */
export function haveIsaV4(): void {
  insnProbe('isa_v4', 'cpu v4 instructions (sdiv, smod, movsx, ldsx, bswap, gotol)', miscVersions.isaV4, [
    asm.mov64Imm(asm.R0, -9), asm.sdiv64Imm(asm.R0, 3), asm.movsx64Reg(asm.R0, asm.R0, 8), asm.bswap(asm.R0, 16),
    asm.stDW(asm.R10, -8, 0), asm.ldxsB(asm.R1, asm.R10, -8), asm.ja32(0), asm.mov64Imm(asm.R0, 0), asm.exit(),
  ])
}

/** may_goto, the bounded "maybe jump" that ends loops the verifier cannot bound (Linux 6.9). */
export function haveMayGoto(): void {
  insnProbe('may_goto', 'may_goto', miscVersions.mayGoto, [
    asm.mayGoto(1), asm.mov64Imm(asm.R0, 1), asm.mov64Imm(asm.R0, 0), asm.exit(),
  ])
}

/** Load-acquire and store-release (Linux 6.15). */
export function haveLoadAcquire(): void {
  insnProbe('load_acquire', 'load-acquire and store-release instructions', miscVersions.loadAcquire, [
    asm.stDW(asm.R10, -8, 0), asm.loadAcquire('dw', asm.R1, asm.R10, -8), asm.storeRelease('dw', asm.R10, asm.R1, -8),
    asm.mov64Imm(asm.R0, 0), asm.exit(),
  ])
}

/** Loading BTF (BPF_BTF_LOAD, Linux 4.18), which typed maps need. */
export function haveBtf(): void {
  cachedProbe('btf', () => {
    const b = new BtfBuilder()
    b.int('int', 4, { signed: true })
    try {
      const tokenFd = tokenFdFor(undefined, { cmd: 'btf_load' })
      native.closeFd(native.btfLoadSync({ btf: b.bytes(), tokenFd }).fd)
    } catch (e) {
      if (bpfCode(e) === 'EINVAL') throw notSupported('BTF (BPF_BTF_LOAD)', miscVersions.btf)
      throw e
    }
  })
}

export type BtfKindFeature = keyof typeof btfKindVersions

/**
 * BTF kinds added after BTF itself: 'func' and 'func_proto' (5.0), 'var' and
 * 'datasec' (5.2), 'float' (5.13), 'decl_tag' (5.16), 'type_tag' (5.17),
 * 'enum64' (6.0, with signed enums). The probe loads a blob with one type of
 * the kind; the kernel refuses a kind it does not know with EINVAL. Cached.
 */
export function haveBtfKind(kind: BtfKindFeature): void {
  const fv = btfKindVersions[kind]
  if (fv === undefined) throw new TypeError(`haveBtfKind: unknown kind '${String(kind)}'; one of ${Object.keys(btfKindVersions).join(', ')}`)
  cachedProbe(`btf_kind:${kind}`, () => {
    haveBtf()
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    switch (kind) {
      case 'func':
      case 'func_proto':
        b.func('f', b.funcProto(int, [{ name: 'a', type: int }]), 'static')
        break
      case 'var':
      case 'datasec':
        b.datasec('.data', [{ type: b.var('v', int, 'global'), offset: 0, size: 4 }])
        break
      case 'float':
        b.float('float', 4)
        break
      case 'decl_tag':
        b.declTag('tag', b.struct('s', [{ name: 'x', type: int }]))
        break
      case 'type_tag':
        b.ptr(b.typeTag('user', int))
        break
      case 'enum64':
        b.enum64('e', [['BIG', 1n << 40n]])
        break
    }
    try {
      const tokenFd = tokenFdFor(undefined, { cmd: 'btf_load' })
      native.closeFd(native.btfLoadSync({ btf: b.bytes(), tokenFd }).fd)
    } catch (e) {
      if (bpfCode(e) === 'EINVAL') throw notSupported(`BTF kind ${kind}`, fv)
      throw e
    }
  })
}

/**
 * The kernel's own BTF (vmlinux, modules) as BTF objects with IDs, openable
 * by ID and marked kernel_btf in their info (Linux 5.11, built with
 * CONFIG_DEBUG_INFO_BTF). Walks BTF IDs, so it needs CAP_SYS_ADMIN. Cached.
 */
export function haveKernelBtfIds(): void {
  cachedProbe('kernel_btf_ids', () => {
    for (const info of btfs()) if (info.kernelBtf) return
    throw notSupported('kernel BTF objects with IDs', miscVersions.kernelBtfIds)
  })
}

/** BPF_MAP_LOOKUP_AND_DELETE_ELEM on hash maps (Linux 5.14; queues and stacks had it before). */
export function haveHashLookupAndDelete(): void {
  cachedProbe('hash_lookup_and_delete', () => {
    const tokenFd = tokenFdFor(undefined, { cmd: 'map_create', mapType: mapTypes.hash })
    using map = new Fd(native.mapCreate({ mapType: mapTypes.hash, keySize: 4, valueSize: 4, maxEntries: 1, tokenFd }), 'map')
    try {
      // A miss (false) proves the command works on hash maps.
      native.mapLookupAndDeleteElem(map.fd, new Uint8Array(4), new Uint8Array(4))
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'ENOTSUPP' || code === 'EOPNOTSUPP' || code === 'EINVAL') throw notSupported('lookup_and_delete on hash maps', miscVersions.hashLookupAndDelete)
      throw e
    }
  })
}
