// What the kernel's BTF loader accepts beyond the kinds themselves (those are
// haveBtfKind in misc.ts): global function linkage, '?' in DATASEC names,
// kind_flag on decl and type tags, the header's layout section. Each probe
// loads a tiny BTF that differs from one every BTF-capable kernel takes only
// in the feature, as libbpf's features.c does; EINVAL means the kernel lacks
// it. btfSupport() gathers every answer into the BtfSupport that
// sanitizeBtf (lib/btf/sanitize.ts) takes.
import { BtfBuilder } from '../btf/builder.js'
import type { BtfSupport } from '../btf/sanitize.js'
import { native, tokenFdFor } from '../sys/index.js'
import { declareFeature } from './declare.js'
import { haveBtf, supportsBtf, supportsBtfKind } from './misc.js'
import { bpfCode } from './probe-cache.js'
import { btfFeatureVersions } from './versions.js'

// Loads `bytes`; a kernel without the feature refuses them with EINVAL (or,
// for a header longer than it knows with non-zero fields, E2BIG).
function btfProbe(missing: () => Error, bytes: Uint8Array): void {
  haveBtf()
  const tokenFd = tokenFdFor(undefined, { cmd: 'btf_load' })
  try {
    native.closeFd(native.btfLoadSync({ btf: bytes, tokenFd }).fd)
  } catch (e) {
    const code = bpfCode(e)
    if (code === 'EINVAL' || code === 'E2BIG') throw missing()
    throw e
  }
}

// Sets kind_flag on type `id` of BtfBuilder output (the builder has no option for it on tags).
function withKindFlag(bytes: Uint8Array, id: number): Uint8Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let at = v.getUint32(4, true) + v.getUint32(8, true)
  for (let i = 1; i < id; i++) {
    const info = v.getUint32(at + 4, true)
    const kind = (info >>> 24) & 0x1f
    at += 12 + (kind === 1 || kind === 14 || kind === 17 ? 4 : kind === 13 ? 8 * (info & 0xffff) : 0)
  }
  v.setUint32(at + 4, (v.getUint32(at + 4, true) | 0x80000000) >>> 0, true)
  return bytes
}

/** FUNC with global linkage (Linux 5.6), which the verifier checks on its own. */
export const { have: haveBtfGlobalFunc, supports: supportsBtfGlobalFunc } = declareFeature('btfGlobalFunc', {
  title: 'BTF functions with global linkage',
  since: btfFeatureVersions.funcGlobal.version,
  probe(missing) {
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    b.func('x', b.funcProto(0, [{ name: 'a', type: int }]), 'global')
    btfProbe(missing, b.bytes())
  },
})

/** DATASEC names starting with '?' (Linux 6.9), which libbpf uses for optional sections. */
export const { have: haveBtfQmarkDatasec, supports: supportsBtfQmarkDatasec } = declareFeature('btfQmarkDatasec', {
  title: "BTF DATASEC names starting with '?'",
  since: btfFeatureVersions.qmarkDatasec.version,
  probe(missing) {
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    b.datasec('?.data', [{ type: b.var('x', int), offset: 0, size: 4 }])
    btfProbe(missing, b.bytes())
  },
})

/** DECL_TAG with kind_flag, an __attribute__ rather than a tag (Linux 6.15). */
export const { have: haveBtfDeclTagKindFlag, supports: supportsBtfDeclTagKindFlag } = declareFeature('btfDeclTagKindFlag', {
  title: 'BTF decl tags with kind_flag (attributes)',
  since: btfFeatureVersions.declTagKindFlag.version,
  probe(missing) {
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    const tag = b.declTag('aligned(4)', b.var('x', int))
    btfProbe(missing, withKindFlag(b.bytes(), tag))
  },
})

/** TYPE_TAG with kind_flag, an __attribute__ rather than a tag (Linux 6.15). */
export const { have: haveBtfTypeTagKindFlag, supports: supportsBtfTypeTagKindFlag } = declareFeature('btfTypeTagKindFlag', {
  title: 'BTF type tags with kind_flag (attributes)',
  since: btfFeatureVersions.typeTagKindFlag.version,
  probe(missing) {
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    const tag = b.typeTag('aligned(4)', int)
    b.ptr(tag)
    btfProbe(missing, withKindFlag(b.bytes(), tag))
  },
})

/** BTF whose header has a layout section describing each kind's record size (Linux 7.1). */
export const { have: haveBtfLayout, supports: supportsBtfLayout } = declareFeature('btfLayout', {
  title: 'BTF layout section',
  since: btfFeatureVersions.layout.version,
  probe(missing) {
    btfProbe(missing, layoutBtf())
  },
})

// One int type, and a layout of kinds 0 (unknown) and 1 (INT: one u32 after the header).
function layoutBtf(): Uint8Array {
  const types = [1, (1 << 24) >>> 0, 4, (1 << 24) | 32]
  const layout = [0, 0, 4, 0] // per kind: info_sz (u8), elem_sz (u8), flags (u16)
  const strings = Buffer.from('\0int\0')
  const out = new Uint8Array(32 + 16 + 8 + strings.length)
  const v = new DataView(out.buffer)
  v.setUint16(0, 0xeb9f, true)
  v.setUint8(2, 1)
  v.setUint32(4, 32, true)
  v.setUint32(8, 0, true)
  v.setUint32(12, 16, true)
  v.setUint32(16, 24, true)
  v.setUint32(20, strings.length, true)
  v.setUint32(24, 16, true)
  v.setUint32(28, 8, true)
  types.forEach((w, i) => v.setUint32(32 + 4 * i, w >>> 0, true))
  for (let k = 0; k < 2; k++) {
    v.setUint8(48 + 4 * k, layout[2 * k])
    v.setUint8(48 + 4 * k + 1, layout[2 * k + 1])
  }
  out.set(strings, 56)
  return out
}

/**
 * What this kernel's BTF loader accepts, for sanitizeBtf: every field false
 * when the kernel has no BTF at all (the caller should then not load BTF).
 * Errors: what a refused probe throws (BpfError EPERM without CAP_BPF or a
 * token). Cached per process, as each probe is.
 */
export function btfSupport(): BtfSupport {
  if (!supportsBtf()) {
    return { func: false, funcGlobal: false, datasec: false, qmarkDatasec: false, float: false, declTag: false, declTagKindFlag: false, typeTag: false, typeTagKindFlag: false, enum64: false, layout: false }
  }
  return {
    func: supportsBtfKind('func'),
    funcGlobal: supportsBtfGlobalFunc(),
    datasec: supportsBtfKind('datasec'),
    qmarkDatasec: supportsBtfQmarkDatasec(),
    float: supportsBtfKind('float'),
    declTag: supportsBtfKind('decl_tag'),
    declTagKindFlag: supportsBtfDeclTagKindFlag(),
    typeTag: supportsBtfKind('type_tag'),
    typeTagKindFlag: supportsBtfTypeTagKindFlag(),
    enum64: supportsBtfKind('enum64'),
    layout: supportsBtfLayout(),
  }
}
