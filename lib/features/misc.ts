// Features that are neither a map type, a program type nor a helper, each
// declared once with declareFeature (name, release, probe): BPF tokens and
// their info, mmapable arrays, batch operations, links, BTF and its kinds,
// kernel BTF objects. Instruction set features are in insns.ts.
import { readFileSync } from 'node:fs'
import { BtfBuilder } from '../btf/builder.js'
import { Fd, NotSupportedError, SyscallError, native, tokenFdFor, type TokenLike } from '../sys/index.js'
import { btfs } from '../sys/ids.js'
import { describeValue } from '../sys/options.js'
import { defaultToken } from '../sys/token.js'
import { flags, mapTypes } from '../sys/generated/kernel-enums.js'
import { tokenInfo } from '../sys/generated/kernel-layouts.js'
import { declareFeature } from './declare.js'
import { IMPOSSIBLE_FD, asBoolean, bpfCode, cachedProbe, notSupported } from './probe-cache.js'
import { kernelBtf } from './prog-types.js'
import { btfKindVersions } from './versions.js'

function smallArray(mapFlags = 0): Fd {
  const tokenFd = tokenFdFor(undefined, { cmd: 'map_create', mapType: mapTypes.array })
  return new Fd(native.mapCreate({ mapType: mapTypes.array, keySize: 4, valueSize: 4, maxEntries: 2, mapFlags, tokenFd }), 'map')
}

// For a command (or attribute) that looks an fd up before any permission
// check: given an fd no process can have open, a kernel that knows it fails
// that lookup (EBADF), one that does not refuses the unknown command or
// attribute bytes (EINVAL, E2BIG). No privileges or objects are needed.
function impossibleFdProbe(missing: () => Error, call: (fd: number) => number): void {
  try {
    native.closeFd(call(IMPOSSIBLE_FD))
  } catch (e) {
    const code = bpfCode(e)
    if (code === 'EBADF') return
    if (code === 'EINVAL' || code === 'E2BIG') throw missing()
    throw e
  }
}

/**
 * BPF tokens (BPF_TOKEN_CREATE, Linux 6.9). The probe asks for a token from
 * an fd no process can have open: a kernel with the command fails looking up
 * that fd (EBADF) before any permission check, one without fails on the
 * unknown command (EINVAL). No bpffs or user namespace is needed. (With a
 * real bpffs root in the initial user namespace a token-capable kernel says
 * EOPNOTSUPP, since tokens only make sense in other namespaces.)
 */
export const { have: haveBpfToken, supports: supportsBpfToken } = declareFeature('bpfToken', {
  title: 'BPF tokens (BPF_TOKEN_CREATE)',
  since: '6.9',
  probe: (missing) => impossibleFdProbe(missing, (fd) => native.tokenCreate(fd)),
})

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
 * the kernel has it. Errors: NotSupportedError; TypeError for an fd that is
 * not a token; an Error when there is neither a token nor kernel BTF to
 * decide by. Cached.
 */
export const { have: haveTokenInfo, supports: supportsTokenInfo } = declareFeature<[token?: TokenLike]>('tokenInfo', {
  title: 'BPF token info (BPF_OBJ_GET_INFO_BY_FD on a token)',
  since: '6.17',
  checkArgs(token) {
    if (token !== undefined && (token === null || typeof token !== 'object' || typeof token.fd !== 'number')) {
      throw new TypeError(`haveTokenInfo: token must be a BpfToken or { fd }, got ${token === null ? 'null' : typeof token}`)
    }
    const tok = token ?? defaultToken()
    // Info of any other bpf object would succeed and prove nothing.
    if (tok !== undefined && !isTokenFd(tok.fd)) throw new TypeError(`haveTokenInfo: fd ${tok.fd} is not a BPF token`)
  },
  probe(missing, token) {
    const tok = token ?? defaultToken()
    if (tok !== undefined) {
      try {
        native.objGetInfoByFd(tok.fd, new Uint8Array(tokenInfo.size))
        return
      } catch (e) {
        if (bpfCode(e) === 'EINVAL') throw missing()
        throw e
      }
    }
    try {
      haveBpfToken()
    } catch (e) {
      if (e instanceof NotSupportedError) throw missing('this kernel has no BPF tokens at all')
      throw e
    }
    const btf = kernelBtf()
    if (btf === null) throw new Error('BPF token info: cannot tell without a token or the kernel\'s BTF (/sys/kernel/btf/vmlinux)')
    if (btf.find('bpf_token_info', 'STRUCT') === undefined) throw missing()
  },
})

/** Array maps that can be mmap()ed (BPF_F_MMAPABLE, Linux 5.5). */
export const { have: haveMmapableMaps, supports: supportsMmapableMaps } = declareFeature('mmapableMaps', {
  title: 'mmapable array maps (BPF_F_MMAPABLE)',
  since: '5.5',
  probe(missing) {
    try {
      smallArray(flags.BPF_F_MMAPABLE).close()
    } catch (e) {
      if (bpfCode(e) === 'EINVAL') throw missing()
      throw e
    }
  },
})

/** Batch lookup, update and delete of map elements (BPF_MAP_*_BATCH, Linux 5.6). */
export const { have: haveBatchOps, supports: supportsBatchOps } = declareFeature('batchOps', {
  title: 'batch map operations (BPF_MAP_*_BATCH)',
  since: '5.6',
  probe(missing) {
    using map = smallArray()
    try {
      native.mapUpdateBatch(map.fd, new Uint32Array([0, 1]), new Uint32Array([7, 8]), 2)
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'EINVAL' || code === 'ENOTSUPP' || code === 'EOPNOTSUPP') throw missing()
      throw e
    }
  },
})

/**
 * BPF links made by BPF_LINK_CREATE (Linux 5.7). A kernel with the command
 * fails looking up the impossible program fd (EBADF); one without fails on
 * the unknown command (EINVAL).
 */
export const { have: haveLinkCreate, supports: supportsLinkCreate } = declareFeature('linkCreate', {
  title: 'BPF links (BPF_LINK_CREATE)',
  since: '5.7',
  probe: (missing) => impossibleFdProbe(missing, (fd) => native.linkCreate({ progFd: fd, attachType: 0 })),
})

function loadBtf(b: BtfBuilder): void {
  const tokenFd = tokenFdFor(undefined, { cmd: 'btf_load' })
  native.closeFd(native.btfLoadSync({ btf: b.bytes(), tokenFd }).fd)
}

/** Loading BTF (BPF_BTF_LOAD, Linux 4.18), which typed maps need. */
export const { have: haveBtf, supports: supportsBtf } = declareFeature('btf', {
  title: 'BTF (BPF_BTF_LOAD)',
  since: '4.18',
  probe(missing) {
    const b = new BtfBuilder()
    b.int('int', 4, { signed: true })
    try {
      loadBtf(b)
    } catch (e) {
      if (bpfCode(e) === 'EINVAL') throw missing()
      throw e
    }
  },
})

export type BtfKindFeature = keyof typeof btfKindVersions

/**
 * BTF kinds added after BTF itself: 'func' and 'func_proto' (5.0), 'var' and
 * 'datasec' (5.2), 'float' (5.13), 'decl_tag' (5.16), 'type_tag' (5.17),
 * 'enum64' (6.0, with signed enums). The probe loads a blob with one type of
 * the kind; the kernel refuses a kind it does not know with EINVAL. Cached.
 */
export function haveBtfKind(kind: BtfKindFeature): void {
  if (typeof kind !== 'string' || !Object.hasOwn(btfKindVersions, kind)) {
    throw new TypeError(`haveBtfKind: unknown kind ${describeValue(kind)}; one of ${Object.keys(btfKindVersions).join(', ')}`)
  }
  const fv = btfKindVersions[kind]
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
      loadBtf(b)
    } catch (e) {
      if (bpfCode(e) === 'EINVAL') throw notSupported(`BTF kind ${kind}`, fv)
      throw e
    }
  })
}

/** The boolean twin of haveBtfKind. */
export const supportsBtfKind = (kind: BtfKindFeature): boolean => asBoolean(() => haveBtfKind(kind))

/**
 * The kernel's own BTF (vmlinux, modules) as BTF objects with IDs, openable
 * by ID and marked kernel_btf in their info (Linux 5.11, built with
 * CONFIG_DEBUG_INFO_BTF). Walks BTF IDs, so it needs CAP_SYS_ADMIN. Cached.
 */
export const { have: haveKernelBtfIds, supports: supportsKernelBtfIds } = declareFeature('kernelBtfIds', {
  title: 'kernel BTF objects with IDs',
  since: '5.11',
  config: ['CONFIG_DEBUG_INFO_BTF'],
  probe(missing) {
    for (const info of btfs()) if (info.kernelBtf) return
    throw missing()
  },
})

/**
 * BPF_BTF_GET_FD_BY_ID with a token (Linux 6.18). With a token fd that is
 * not open, a kernel that reads the token field fails looking it up
 * (EBADF); an older one refuses the unknown attribute bytes (EINVAL).
 */
export const { have: haveBtfByIdToken, supports: supportsBtfByIdToken } = declareFeature('btfByIdToken', {
  title: 'opening BTF by ID with a token (BPF_BTF_GET_FD_BY_ID token_fd)',
  since: '6.18',
  // The token is looked up before the ID, so any ID will do.
  probe: (missing) => impossibleFdProbe(missing, (fd) => native.btfGetFdById(1, 0, fd)),
})

/** BPF_MAP_LOOKUP_AND_DELETE_ELEM on hash maps (Linux 5.14; queues and stacks had it before). */
export const { have: haveHashLookupAndDelete, supports: supportsHashLookupAndDelete } = declareFeature('hashLookupAndDelete', {
  title: 'lookup_and_delete on hash maps',
  since: '5.14',
  probe(missing) {
    const tokenFd = tokenFdFor(undefined, { cmd: 'map_create', mapType: mapTypes.hash })
    using map = new Fd(native.mapCreate({ mapType: mapTypes.hash, keySize: 4, valueSize: 4, maxEntries: 1, tokenFd }), 'map')
    try {
      // A miss (false) proves the command works on hash maps.
      native.mapLookupAndDeleteElem(map.fd, new Uint8Array(4), new Uint8Array(4))
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'ENOTSUPP' || code === 'EOPNOTSUPP' || code === 'EINVAL') throw missing()
      throw e
    }
  },
})

function syscallCode(e: unknown): string | undefined {
  return e instanceof SyscallError ? e.code : undefined
}

/**
 * Pidfds of unix socket peers (SO_PEERPIDFD, Linux 6.5), which the broker
 * needs to tell a peer from a later process with the same pid. The probe asks
 * one end of a new socketpair for its peer's pidfd (this process); a kernel
 * without the option refuses it (ENOPROTOOPT). No privileges needed.
 */
export const { have: havePeerPidfd, supports: supportsPeerPidfd } = declareFeature('peerPidfd', {
  title: 'pidfds of unix socket peers (SO_PEERPIDFD)',
  since: '6.5',
  probe(missing) {
    const [a, b] = native.unixSocketpair()
    try {
      native.closeFd(native.unixPeerPidfd(a))
    } catch (e) {
      if (syscallCode(e) === 'ENOPROTOOPT') throw missing()
      throw e
    } finally {
      native.closeFd(a)
      native.closeFd(b)
    }
  },
})

/**
 * openat2 (Linux 5.6): path resolution confined to a directory
 * (RESOLVE_BENEATH, RESOLVE_IN_ROOT, no symlinks). The probe opens `/` for
 * reading; a kernel without the call says ENOSYS.
 */
export const { have: haveOpenat2, supports: supportsOpenat2 } = declareFeature('openat2', {
  title: 'openat2 (confined path resolution)',
  since: '5.6',
  probe(missing) {
    try {
      native.closeFd(native.openat2(undefined, '/', 0, 0))
    } catch (e) {
      if (syscallCode(e) === 'ENOSYS') throw missing()
      throw e
    }
  },
})
