// From a MapSpec to a map fd (BPF_MAP_CREATE): the only step that turns a
// spec's references (inner map, BTF, token) into fd numbers, right before
// the call, and closes whatever it made for the call alone.
import { Fd, native, tokenFdFor } from '../sys/index.js'
import { Btf } from '../btf/btf.js'
import { MapSpec } from './spec.js'

/**
 * Creates the map `spec` describes and returns its owned fd. Errors: BpfError
 * EPERM without CAP_BPF or a token, EINVAL for a type or flag this kernel
 * lacks, E2BIG/ENOMEM for sizes; PolicyError from a token that does not
 * delegate the map type.
 */
export function createMapFd(spec: MapSpec): Fd {
  const mapType = spec.typeId
  const tokenFd = tokenFdFor(spec.token, { cmd: 'map_create', mapType })
  let inner: Fd | undefined
  let typedBtf: Btf | undefined
  try {
    // A template's inner map lives only until the outer map holds it.
    if (spec.innerMap instanceof MapSpec) inner = createMapFd(spec.innerMap)
    const made = spec.typedBtf
    // The map holds its own reference to the BTF it was made with.
    if (made) typedBtf = Btf.loadSync(made.bytes, { token: spec.token })
    const btf = made ? { btf: typedBtf!, keyTypeId: made.keyTypeId, valueTypeId: made.valueTypeId } : spec.btf === true ? undefined : spec.btf
    const fd = native.mapCreate({
      mapType,
      keySize: spec.keySize,
      valueSize: spec.valueSize,
      maxEntries: spec.maxEntries,
      mapFlags: spec.flags,
      numaNode: spec.numaNode,
      name: spec.name,
      innerMapFd: spec.innerMap === undefined ? undefined : inner ? inner.fd : (spec.innerMap as { fd: number }).fd,
      mapExtra: spec.mapExtra,
      btfFd: btf?.btf.fd.fd,
      btfKeyTypeId: btf?.keyTypeId,
      btfValueTypeId: btf?.valueTypeId,
      tokenFd,
    })
    return new Fd(fd, 'map')
  } finally {
    inner?.close()
    typedBtf?.close()
  }
}
