// Map type probes: create the smallest map of the type the kernel accepts and
// close it. EINVAL (unknown type) or E2BIG (attributes this kernel does not
// know) mean the type is missing.
import { BtfBuilder } from '../btf/builder.js'
import { Fd, native, tokenFdFor, type MapCreateAttrs, type MapTypeName } from '../sys/index.js'
import { flags, mapTypes } from '../sys/generated/kernel-enums.js'
import { bpfCode, cachedProbe, familyMember, notSupported } from './probe-cache.js'
import { mapTypeVersions } from './versions.js'

const { BPF_F_NO_PREALLOC, BPF_F_MMAPABLE } = flags
// A ring buffer's size must be a power of two and a multiple of the page
// size: 64 KiB is one on every page size Linux runs BPF with (4, 16, 64 KiB).
const RINGBUF_PROBE_SIZE = 64 * 1024

type Attrs = Omit<MapCreateAttrs, 'mapType' | 'tokenFd'>

// Resources a probe needs besides the map itself, closed after the probe.
interface ProbeSetup {
  attrs: Attrs
  cleanup?: () => void
}

/** BTF with `int` (id 1), as local storage maps need for key and value. */
function intBtf(tokenFd: number | undefined): Fd {
  const b = new BtfBuilder()
  b.int('int', 4, { signed: true })
  return new Fd(native.btfLoadSync({ btf: b.bytes(), tokenFd }).fd, 'btf')
}

function setupFor(name: string, tokenFd: number | undefined): ProbeSetup {
  const small: Attrs = { keySize: 4, valueSize: 4, maxEntries: 1 }
  switch (name) {
    case 'stack_trace':
      return { attrs: { ...small, valueSize: 8 } }
    case 'lpm_trie':
      // A prefix length (u32) and at least one byte of data; the kernel
      // insists on BPF_F_NO_PREALLOC.
      return { attrs: { keySize: 8, valueSize: 8, maxEntries: 1, mapFlags: BPF_F_NO_PREALLOC } }
    case 'array_of_maps':
    case 'hash_of_maps': {
      const inner = new Fd(native.mapCreate({ mapType: mapTypes.array, ...small, tokenFd }), 'map')
      return { attrs: { ...small, innerMapFd: inner.fd }, cleanup: () => inner.close() }
    }
    case 'cgroup_storage':
    case 'percpu_cgroup_storage':
      // struct bpf_cgroup_storage_key { __u64 cgroup_inode_id; __u32 attach_type; }, padded to 16.
      return { attrs: { keySize: 16, valueSize: 4, maxEntries: 0 } }
    case 'queue':
    case 'stack':
    case 'bloom_filter':
      return { attrs: { ...small, keySize: 0 } }
    case 'ringbuf':
    case 'user_ringbuf':
      return { attrs: { keySize: 0, valueSize: 0, maxEntries: RINGBUF_PROBE_SIZE } }
    case 'arena':
      // One page, mappable anywhere.
      return { attrs: { keySize: 0, valueSize: 0, maxEntries: 1, mapFlags: BPF_F_MMAPABLE } }
    case 'sk_storage':
    case 'inode_storage':
    case 'task_storage':
    case 'cgrp_storage': {
      // Local storage needs real BTF for its int key and its value.
      const btf = intBtf(tokenFd)
      return {
        attrs: { keySize: 4, valueSize: 4, maxEntries: 0, mapFlags: BPF_F_NO_PREALLOC, btfFd: btf.fd, btfKeyTypeId: 1, btfValueTypeId: 1 },
        cleanup: () => btf.close(),
      }
    }
    case 'struct_ops':
      // Needs a struct_ops value type from vmlinux BTF; type 1 is never one,
      // and a kernel that knows struct_ops maps answers ENOTSUPP to that.
      return { attrs: { ...small, btfVmlinuxValueTypeId: 1 } }
    default:
      return { attrs: small }
  }
}

/**
 * Checks that the kernel has map type `type` (a name such as 'ringbuf', or
 * its number). Returns when it does; throws a NotSupportedError naming the
 * release that added it when it does not, a BpfError when the probe itself
 * is refused (EPERM: no CAP_BPF and no token), a TypeError for an unknown
 * name. Uses the process-wide default token, if one is set. Cached.
 */
export function haveMapType(type: MapTypeName | number): void {
  const { n, name } = familyMember(mapTypes, 'map type', type)
  cachedProbe(`map:${n}`, () => {
    const tokenFd = tokenFdFor(undefined, { cmd: 'map_create', mapType: n })
    const setup = setupFor(name, tokenFd)
    try {
      native.closeFd(native.mapCreate({ mapType: n, ...setup.attrs, tokenFd }))
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'ENOTSUPP' && name === 'struct_ops') return
      if (code === 'EINVAL' || code === 'E2BIG') throw notSupported(`map type ${name}`, mapTypeVersions[name as MapTypeName])
      throw e
    } finally {
      setup.cleanup?.()
    }
  })
}

/** Ring buffer maps (Linux 5.8). */
export function haveRingbuf(): void {
  haveMapType('ringbuf')
}
