'use strict'
// Fuzz target and mutation engine for object files: a clang-built fixture
// (test/fixtures/bpf/*.bpf.o) with seeded damage aimed where the readers look
// (ELF header, section headers, symbols, relocations, .BTF, .BTF.ext, .maps,
// string tables), then CollectionSpec.fromBuffer, which must return or throw
// an ElfError, and sometimes spec.load(), which may also fail with the
// kernel's errors but must not leak.
//
// `mutateObject(bytes, rng)` is shared with test/unit/collection-fuzz.test.ts
// and test/kernel/collection-fuzz.test.ts, so `npm test` and `npm run fuzz
// -- --target collection` damage objects the same way. Every mutation is
// described in words ("sh_size of section 7 (.BTF) = 4294967295"), so a
// failure names what was done, and (fixture, seed, case) reproduces it.
const fs = require('node:fs')
const path = require('node:path')

// ---- the shape of a well-formed object (the fixture, before damage) ----

const SHDR_SIZE = 64
const SYM_SIZE = 24
const REL_SIZE = 16
const SHT_SYMTAB = 2
const SHT_STRTAB = 3
const SHT_REL = 9

/** Sections of a well-formed ELF64 LE object: index, name, type, offset, size, and where its header is. */
function layout(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const shoff = Number(v.getBigUint64(40, true))
  const shnum = v.getUint16(60, true)
  const shstrndx = v.getUint16(62, true)
  const sections = []
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * SHDR_SIZE
    sections.push({
      index: i, header: at, nameOff: v.getUint32(at, true), type: v.getUint32(at + 4, true),
      offset: Number(v.getBigUint64(at + 24, true)), size: Number(v.getBigUint64(at + 32, true)),
      link: v.getUint32(at + 40, true), info: v.getUint32(at + 44, true),
    })
  }
  const names = sections[shstrndx]
  for (const s of sections) {
    let end = names.offset + s.nameOff
    while (end < bytes.length && bytes[end] !== 0) end++
    s.name = Buffer.from(bytes.subarray(names.offset + s.nameOff, end)).toString('latin1')
  }
  return { shoff, shnum, sections }
}

// ---- value pools: what readers get wrong ----

const u32Values = (orig, ctx) => [0, 1, 2, 3, 4, 7, 8, 16, 24, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000,
  0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff, orig + 1, orig - 1, orig + 4, orig - 4, orig + 8, orig * 2,
  ctx.length, ctx.length - 1, ctx.length + 1, ctx.shnum, ctx.shnum - 1, ctx.shnum + 1].map((x) => x >>> 0)
const u64Extra = (ctx) => [2n ** 32n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, BigInt(ctx.length) * 2n]

// ---- mutations: each edits `b` in place and says what it did ----

// DWARF (.debug_* and its relocations) is not read at all: damage there is mostly wasted, so it is picked seldom.
const isDebug = (s) => /^(\.rel)?\.debug_/.test(s.name)

function pickSection(rng, ctx, filter = () => true) {
  const debugToo = rng.bool(0.1)
  const candidates = ctx.sections.filter((s) => filter(s) && (debugToo || !isDebug(s)))
  return candidates.length ? rng.pick(candidates) : undefined
}

function setU32(b, at, value) {
  if (at + 4 > b.length) return false
  new DataView(b.buffer, b.byteOffset).setUint32(at, value >>> 0, true)
  return true
}

function setU64(b, at, value) {
  if (at + 8 > b.length) return false
  new DataView(b.buffer, b.byteOffset).setBigUint64(at, BigInt.asUintN(64, value), true)
  return true
}

/** A region of the object the readers parse: [start, end) and its name. */
function pickRegion(rng, ctx) {
  const regions = [['ELF header', 0, 64], ['section headers', ctx.shoff, ctx.shoff + ctx.shnum * SHDR_SIZE]]
  for (const s of ctx.sections) {
    if (s.type === 8 || s.size === 0 || s.index === 0) continue // NOBITS, empty, null
    if (isDebug(s)) continue
    // The sections whose contents are parsed get most of the damage; code and data some.
    const weight = /^\.(BTF|BTF\.ext|maps)$|^maps$/.test(s.name) || s.type === SHT_SYMTAB || s.type === SHT_STRTAB || s.type === SHT_REL ? 3 : 1
    for (let w = 0; w < weight; w++) regions.push([s.name || `section ${s.index}`, s.offset, s.offset + s.size])
  }
  const [name, start, end] = rng.pick(regions)
  return { name, start, end: Math.min(end, ctx.length) }
}

const mutations = [
  // Bit flips and byte overwrites anywhere in a parsed region.
  [4, (b, rng, ctx) => {
    const r = pickRegion(rng, ctx)
    if (r.end <= r.start) return undefined
    const at = r.start + rng.int(r.end - r.start)
    const bit = rng.int(8)
    b[at] ^= 1 << bit
    return `flip bit ${bit} of byte ${at} (${r.name}+${at - r.start})`
  }],
  [3, (b, rng, ctx) => {
    const r = pickRegion(rng, ctx)
    if (r.end <= r.start) return undefined
    const at = r.start + rng.int(r.end - r.start)
    const value = rng.pick([0, 0xff, 0x7f, 0x80, 1, rng.int(256)])
    b[at] = value
    return `byte ${at} (${r.name}+${at - r.start}) = ${value}`
  }],
  // A u32 field inside a region (BTF headers, type records, .BTF.ext records and relocation offsets are u32s).
  [4, (b, rng, ctx) => {
    const r = pickRegion(rng, ctx)
    if (r.end - r.start < 4) return undefined
    const at = r.start + rng.int((r.end - r.start) >> 2) * 4
    const orig = new DataView(b.buffer, b.byteOffset).getUint32(at, true)
    const value = rng.pick(u32Values(orig, ctx))
    return setU32(b, at, value) ? `u32 at ${at} (${r.name}+${at - r.start}) ${orig} -> ${value}` : undefined
  }],
  // Section header fields.
  [5, (b, rng, ctx) => {
    const s = pickSection(rng, ctx, (x) => x.index > 0)
    if (!s) return undefined
    const [field, off, wide] = rng.pick([['sh_name', 0, false], ['sh_type', 4, false], ['sh_offset', 24, true], ['sh_size', 32, true],
      ['sh_link', 40, false], ['sh_info', 44, false], ['sh_addralign', 48, true], ['sh_entsize', 56, true], ['sh_flags', 8, true]])
    const v = new DataView(b.buffer, b.byteOffset)
    const orig = wide ? Number(v.getBigUint64(s.header + off, true)) : v.getUint32(s.header + off, true)
    const pool = [...u32Values(orig, ctx).map(BigInt), ...(wide ? u64Extra(ctx) : []),
      ...(field === 'sh_type' ? [0n, 1n, 2n, 3n, 4n, 8n, 9n, 0x6ffffff6n] : []),
      ...(field === 'sh_offset' ? ctx.sections.map((x) => BigInt(x.offset)) : []),
      ...(field === 'sh_size' ? [BigInt(ctx.length - s.offset), BigInt(ctx.length - s.offset + 1)] : [])]
    const value = rng.pick(pool)
    if (wide ? !setU64(b, s.header + off, value) : !setU32(b, s.header + off, Number(BigInt.asUintN(32, value)))) return undefined
    return `${field} of section ${s.index} (${s.name}) ${orig} -> ${wide ? value : BigInt.asUintN(32, value)}`
  }],
  // ELF header fields the reader uses.
  [2, (b, rng, ctx) => {
    const [field, off, size] = rng.pick([['e_shoff', 40, 8], ['e_shnum', 60, 2], ['e_shstrndx', 62, 2], ['e_shentsize', 58, 2], ['e_type', 16, 2], ['e_machine', 18, 2]])
    const v = new DataView(b.buffer, b.byteOffset)
    const value = rng.pick([0, 1, ctx.shnum - 1, ctx.shnum, ctx.shnum + 1, 0xffff, 0xff00, 0xffff_ffff, ctx.length, ctx.shoff + 8, 64])
    if (size === 8) v.setBigUint64(off, BigInt(value), true)
    else v.setUint16(off, value & 0xffff, true)
    return `${field} = ${size === 8 ? value : value & 0xffff}`
  }],
  // Symbol fields.
  [3, (b, rng, ctx) => {
    const tab = pickSection(rng, ctx, (x) => x.type === SHT_SYMTAB)
    if (!tab || tab.size < SYM_SIZE) return undefined
    const i = rng.int(tab.size / SYM_SIZE)
    const at = tab.offset + i * SYM_SIZE
    const [field, off, size] = rng.pick([['st_name', 0, 4], ['st_info', 4, 1], ['st_other', 5, 1], ['st_shndx', 6, 2], ['st_value', 8, 8], ['st_size', 16, 8]])
    const v = new DataView(b.buffer, b.byteOffset)
    const value = rng.pick([0, 1, 7, 8, 0x12, 0x11, 0xff, 0xfff1, 0xfff2, 0xffff, ctx.shnum, ctx.shnum - 1, 0xffffffff, ctx.length, 2 ** 40])
    if (size === 1) v.setUint8(at + off, value & 0xff)
    else if (size === 2) v.setUint16(at + off, value & 0xffff, true)
    else if (size === 4) v.setUint32(at + off, value >>> 0, true)
    else v.setBigUint64(at + off, BigInt(value), true)
    return `${field} of symbol ${i} = ${value}`
  }],
  // Relocation fields: offset, symbol, type.
  [3, (b, rng, ctx) => {
    const rs = pickSection(rng, ctx, (x) => x.type === SHT_REL && x.size >= REL_SIZE)
    if (!rs) return undefined
    const i = rng.int(rs.size / REL_SIZE)
    const at = rs.offset + i * REL_SIZE
    const v = new DataView(b.buffer, b.byteOffset)
    const which = rng.int(3)
    if (which === 0) {
      const value = rng.pick([0n, 1n, 4n, 7n, 8n, 0xfffffff8n, 2n ** 40n, BigInt(v.getBigUint64(at, true)) + 8n, BigInt(v.getBigUint64(at, true)) - 8n])
      v.setBigUint64(at, BigInt.asUintN(64, value), true)
      return `r_offset of relocation ${i} in ${rs.name} = ${value}`
    }
    const value = rng.pick([0, 1, 2, 3, 4, 10, 0xff, 0xffffffff, rng.int(64)])
    v.setUint32(at + (which === 1 ? 12 : 8), value >>> 0, true)
    return `${which === 1 ? 'symbol' : 'type'} of relocation ${i} in ${rs.name} = ${value >>> 0}`
  }],
  // .BTF and .BTF.ext header fields (lengths and offsets of what follows).
  [3, (b, rng, ctx) => {
    const s = pickSection(rng, ctx, (x) => (x.name === '.BTF' || x.name === '.BTF.ext') && x.size >= 24)
    if (!s) return undefined
    const fields = s.name === '.BTF'
      ? [['hdr_len', 4], ['type_off', 8], ['type_len', 12], ['str_off', 16], ['str_len', 20]]
      : [['hdr_len', 4], ['func_info_off', 8], ['func_info_len', 12], ['line_info_off', 16], ['line_info_len', 20], ['core_relo_off', 24], ['core_relo_len', 28]]
    const [field, off] = rng.pick(fields)
    if (off + 4 > s.size) return undefined
    const orig = new DataView(b.buffer, b.byteOffset).getUint32(s.offset + off, true)
    const value = rng.pick(u32Values(orig, ctx))
    setU32(b, s.offset + off, value)
    return `${s.name} ${field} ${orig} -> ${value}`
  }],
]

const truncations = (rng, ctx) => rng.pick([
  () => rng.int(ctx.length),
  () => rng.int(64),
  () => { const s = pickSection(rng, ctx, (x) => x.size > 0 && x.type !== 8); return s ? s.offset + rng.int(s.size) : 0 },
  () => ctx.shoff + rng.int(ctx.shnum * SHDR_SIZE),
  () => ctx.length - 1 - rng.int(16),
])()

/**
 * A damaged copy of `original` (a well-formed clang object): one to three
 * mutations, and sometimes a truncation, chosen by `rng` (prng.cjs Rng).
 * Returns the bytes and a description of every step.
 */
function mutateObject(original, rng) {
  const ctx = { ...layout(original), length: original.length }
  let b = Uint8Array.from(original)
  const steps = []
  for (let n = rng.range(1, 3), tries = 0; steps.length < n && tries < 20; tries++) {
    const step = rng.weighted(mutations.map(([w, m]) => [w, () => () => m(b, rng, ctx)]))()
    if (step) steps.push(step)
  }
  if (rng.bool(0.12)) {
    const to = Math.max(0, Math.min(truncations(rng, ctx), ctx.length))
    b = b.slice(0, to)
    steps.push(`truncate to ${to} bytes`)
  }
  return { bytes: b, steps }
}

/** The fixtures: every test/fixtures/bpf/*.bpf.o under `root`, sorted. */
function fixtureObjects(root) {
  const dir = path.join(root, 'test/fixtures/bpf')
  return fs.readdirSync(dir).filter((n) => n.endsWith('.bpf.o')).sort().map((n) => path.join(dir, n))
}

module.exports = { mutateObject, fixtureObjects, layout }
const target = module.exports

// ---- npm run fuzz -- --target collection ----

target.name = 'collection'
target.needsDist = true

target.prelude = (root) => [
  `const { CollectionSpec, ElfError, BpfError, CoreError, ExternError } = require(${JSON.stringify(path.join(root, 'dist/index.js'))})`,
  `const { mutateObject } = require(${JSON.stringify(__filename)})`,
  `const { Rng } = require(${JSON.stringify(path.join(__dirname, '..', 'prng.cjs'))})`,
].join('\n')

// The fixtures of this checkout (children run from a copy of dist/ that has no test/), by absolute path.
const checkout = path.resolve(__dirname, '..', '..', '..')

// A finding when an error of the wrong class comes out (`ok` is a JS condition on e), with the mutations beside the
// message (in it, they would make every finding its own group). An error of the right class is
// not passed to h.classify: its message may name things in words the internal-message patterns match ("... is not a
// function of this object").
const wrongClass = (label, ok, expected) => `(e) => {
    h.errors++
    if (!(${ok})) h.findings.push({ kind: 'internal', label: ${JSON.stringify(label)}, message: \`\${e?.name}: \${e?.message} (not ${expected})\`, steps, at: (e?.stack ?? '').split('\\n').slice(1, 3).map((l) => l.trim()).join(' < ') })
  }`

target.generate = (rng, index) => {
  // The mutation's own seed comes from the case's rng, so the case source stays small and the bytes reproducible.
  const seed = rng.next()
  const load = rng.bool(0.15)
  const file = rng.pick(fixtureObjects(checkout))
  return `const file = ${JSON.stringify(file)}
  const { bytes, steps } = mutateObject(require('node:fs').readFileSync(file), new Rng('collection-bytes', ${seed}, ${index}))
  let spec
  try {
    h.calls++
    spec = CollectionSpec.fromBuffer(bytes)
    for (const v of Object.values(spec.variables)) v.get()
  } catch (e) { spec = undefined; (${wrongClass('CollectionSpec.fromBuffer', 'e instanceof ElfError', 'ElfError')})(e) }
  ${load ? `if (spec) {
    // By-name pins go to a private bpffs directory, never /sys/fs/bpf itself; removed with the case.
    const pins = require('node:fs').mkdtempSync('/sys/fs/bpf/bpfkit-fuzz-')
    h.track(() => require('node:fs').rmSync(pins, { recursive: true, force: true }))
    try { h.calls++; h.own(await spec.load({ pinPath: pins })) } catch (e) { (${wrongClass('spec.load', 'e instanceof ElfError || e instanceof BpfError || e instanceof CoreError || e instanceof ExternError', 'ElfError/BpfError/CoreError/ExternError')})(e) }
  }` : ''}`
}
