// C declarations from BTF, as `bpftool btf dump ... format c` prints them:
// every struct, union, enum and typedef, each declared before a definition
// needs it complete, and forward-declared (`struct x;`) where only a pointer
// needs it, so pointer cycles compile. Functions, variables and sections are
// not types and are left out, as bpftool does.
//
// The BTF layout is kept, not recomputed: where a C compiler would place a
// member elsewhere than the BTF says (a cache-line-aligned member, a hole
// left by a removed field), unnamed bitfields (`long: 64;`) pad to the
// BTF's offset, and a struct whose members sit off their natural alignment
// is `__attribute__((packed))`. The `layoutAsserts` option appends
// _Static_asserts of every size and member offset, so a compiler checks it.
//
// Names: C has one namespace for struct/union/enum tags and one for typedefs
// and enumerators; a second, different type with a name already used is
// named `name___2` (and so on), as bpftool names them, so the output compiles.
import { describeValue } from '../sys/options.js'
import type { BtfReader, BtfTypeRecord } from './reader.js'

export interface CDumpOptions {
  /** Wrap the declarations in bpftool's vmlinux.h guard and preserve_access_index pragma. */
  header?: boolean
  /** Append _Static_asserts of each struct's and union's size and member offsets. */
  layoutAsserts?: boolean
}

const qualifiers: Record<string, string> = { CONST: 'const', VOLATILE: 'volatile', RESTRICT: 'restrict' }
// Kinds whose size a typedef of them has in C (not functions, void or incomplete types).
const sized = new Set(['INT', 'FLOAT', 'PTR', 'ARRAY', 'STRUCT', 'UNION', 'ENUM', 'ENUM64'])
// Kinds that are not C types and never declared on their own.
const notTypes = new Set(['FUNC', 'VAR', 'DATASEC', 'DECL_TAG'])

/**
 * C declarations of every type in `btf` (for split BTF, its own types and the
 * base types they need). Errors: TypeError for bad arguments; RangeError for
 * BTF that no C can declare (a struct containing itself by value).
 */
export function btfToC(btf: BtfReader, options: CDumpOptions = {}): string {
  if (btf === null || typeof btf !== 'object' || typeof (btf as BtfReader).members !== 'function') {
    throw new TypeError(`btfToC: btf must be a BtfReader, got ${describeValue(btf)}`)
  }
  if (options === null || typeof options !== 'object') throw new TypeError(`btfToC: options must be an object, got ${describeValue(options)}`)
  for (const k of Object.keys(options)) if (k !== 'header' && k !== 'layoutAsserts') throw new TypeError(`btfToC: unknown option '${k}'`)
  const d = new CDumper(btf)
  for (let id = btf.firstId; id <= btf.count; id++) d.root(id)
  const body = d.chunks.join('\n') + (options.layoutAsserts ? '\n' + d.asserts.join('\n') + '\n' : '')
  if (!options.header) return body
  return '#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n\n' +
    '#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n#endif\n\n' +
    body + '\n#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n#endif /* __VMLINUX_H__ */\n'
}

interface Layout {
  packed: boolean
  /** Alignment in bytes the emitted C gives the type. */
  align: number
  /** For unions that need it: __attribute__((aligned(N))). */
  alignedAttr: number
  /** For unions of up to 8 bytes bigger than their members: the bits of an unnamed bitfield. */
  unionPad: number
}

class CDumper {
  /** Top-level declarations, each ending in a newline, in the order they must appear. */
  readonly chunks: string[] = []
  readonly asserts: string[] = []
  readonly #defined = new Set<number>()
  readonly #defining = new Set<number>()
  readonly #forwarded = new Set<string>()
  readonly #referenced = new Set<number>()
  // Names given so far: per namespace, how many distinct types took each name.
  readonly #tagCount = new Map<string, number>()
  readonly #identCount = new Map<string, number>()
  readonly #names = new Map<number, string>()
  readonly #enumerators = new Map<number, string[]>()
  readonly #layouts = new Map<number, Layout>()

  constructor(readonly btf: BtfReader) {
    for (const t of btf.types()) for (const r of this.#refs(t)) this.#referenced.add(r)
  }

  root(id: number): void {
    const t = this.btf.type(id)
    switch (t.kind) {
      case 'STRUCT': case 'UNION':
        // An anonymous one is written where it is used (alone it would declare nothing).
        if (t.name !== '') this.need(id, false, 0)
        return
      case 'ENUM': case 'ENUM64':
        // An anonymous enum used by no type still declares its constants.
        if (t.name !== '') this.need(id, false, 0)
        else if (!this.#referenced.has(id) && t.vlen > 0) this.chunks.push(`${this.#body(t, 0)};\n`)
        return
      case 'TYPEDEF': case 'FWD':
        this.need(id, false, 0)
    }
  }

  /**
   * Declares whatever a use of `id` needs before it: a full definition when
   * `weak` is false (a member by value), a tag alone through a pointer.
   * `container` is the named struct whose body is being written (its own tag
   * needs no forward declaration).
   */
  need(id: number, weak: boolean, container: number, depth = 0): void {
    if (id === 0) return
    if (depth > 256) throw new RangeError(`BTF type ${id}: types nested more than 256 deep`)
    const t = this.btf.type(id)
    switch (t.kind) {
      case 'PTR': return this.need(t.sizeOrType, true, container, depth + 1)
      case 'ARRAY': return this.need(this.btf.array(t).type, false, container, depth + 1)
      case 'CONST': case 'VOLATILE': case 'RESTRICT': case 'TYPE_TAG':
        return this.need(t.sizeOrType, weak, container, depth + 1)
      case 'FUNC_PROTO':
        // A prototype's parameters and result may be incomplete types.
        this.need(t.sizeOrType, true, container, depth + 1)
        for (let i = 0; i < t.vlen; i++) this.need(t.extra[2 * i + 1], true, container, depth + 1)
        return
      case 'FWD': return this.#forward(t)
      case 'ENUM': case 'ENUM64':
        if (t.name !== '' && !this.#defined.has(id)) {
          this.#defined.add(id)
          // No enumerators: the BTF of a forward-declared enum (`enum x;`, a GNU C extension).
          this.chunks.push(t.vlen === 0 ? `enum ${this.#name(t)};\n` : `${this.#body(t, 0)};\n`)
        }
        return
      case 'TYPEDEF':
        // The compiler's own: redeclaring it would clash.
        if (t.name === '__builtin_va_list') return
        if (!weak) this.need(t.sizeOrType, false, container, depth + 1)
        if (this.#defined.has(id)) return
        this.#defined.add(id)
        this.need(t.sizeOrType, true, 0, depth + 1)
        this.chunks.push(`typedef ${this.decl(t.sizeOrType, this.#name(t), 0)};\n`)
        if (sized.has(this.btf.resolve(id).kind)) this.asserts.push(`_Static_assert(sizeof(${this.#name(t)}) == ${this.btf.sizeof(id)}, "size of ${this.#name(t)}");`)
        return
      case 'STRUCT': case 'UNION': {
        if (t.name === '') {
          // Written inline: its members must be complete where it is written.
          if (this.#defining.has(id)) throw new RangeError(`BTF type ${id}: an anonymous ${t.kind.toLowerCase()} contains itself`)
          this.#defining.add(id)
          for (const m of this.btf.members(t)) this.need(m.type, false, container, depth + 1)
          this.#defining.delete(id)
          return
        }
        if (this.#defined.has(id)) return
        if (weak || this.#defining.has(id)) {
          if (id !== container) this.#forward(t)
          return
        }
        this.#defining.add(id)
        for (const m of this.btf.members(t)) this.need(m.type, false, id, depth + 1)
        this.#defining.delete(id)
        this.#defined.add(id)
        this.chunks.push(`${this.#body(t, 0)};\n`)
        this.#assertLayout(t)
        return
      }
      default: return // INT, FLOAT: built in
    }
  }

  #forward(t: BtfTypeRecord): void {
    const union = t.kind === 'UNION' || (t.kind === 'FWD' && t.kindFlag)
    const decl = `${union ? 'union' : 'struct'} ${this.#name(t)}`
    if (this.#forwarded.has(decl)) return
    this.#forwarded.add(decl)
    this.chunks.push(`${decl};\n`)
  }

  /** The declaration of `inner` (a name, or '' for an abstract type) as type `id`. */
  decl(id: number, inner: string, lvl: number): string {
    const named = (s: string) => (inner === '' ? s : `${s} ${inner}`)
    if (id === 0) return named('void')
    const t = this.btf.type(id)
    switch (t.kind) {
      case 'INT': case 'FLOAT': return named(t.name)
      case 'TYPEDEF': return named(this.#name(t))
      case 'FWD': return named(`${t.kindFlag ? 'union' : 'struct'} ${this.#name(t)}`)
      case 'ENUM': case 'ENUM64':
        // An anonymous enum without enumerators cannot be written: its integer of that size.
        if (t.name === '' && t.vlen === 0) return named(unsignedOfSize[t.sizeOrType] ?? 'unsigned int')
        return named(t.name === '' ? this.#body(t, lvl) : `enum ${this.#name(t)}`)
      case 'STRUCT': case 'UNION':
        return named(t.name === '' ? this.#body(t, lvl) : `${t.kind.toLowerCase()} ${this.#name(t)}`)
      case 'PTR': return this.decl(t.sizeOrType, inner === '' ? '*' : /^(\(|(const|volatile|restrict)\b)/.test(inner) ? `* ${inner}` : `*${inner}`, lvl)
      case 'ARRAY': {
        const a = this.btf.array(t)
        return this.decl(a.type, `${wrap(inner)}[${a.nelems}]`, lvl)
      }
      case 'FUNC_PROTO': {
        const params: string[] = []
        for (let i = 0; i < t.vlen; i++) {
          const p = t.extra[2 * i + 1]
          params.push(p === 0 && i === t.vlen - 1 ? '...' : this.decl(p, this.btf.string(t.extra[2 * i]), lvl))
        }
        return this.decl(t.sizeOrType, `${wrap(inner)}(${params.length ? params.join(', ') : 'void'})`, lvl)
      }
      case 'CONST': case 'VOLATILE': case 'RESTRICT': {
        const q = qualifiers[t.kind]
        // On a pointer the qualifier follows the '*'; on anything else it leads.
        if (this.#underQualifiers(t.sizeOrType).kind === 'PTR') return this.decl(t.sizeOrType, inner === '' ? q : `${q} ${inner}`, lvl)
        return `${q} ${this.decl(t.sizeOrType, inner, lvl)}`
      }
      case 'TYPE_TAG': return this.decl(t.sizeOrType, inner, lvl)
      default: throw new RangeError(`BTF type ${id} is a ${t.kind}, not a type a C declaration can name`)
    }
  }

  #underQualifiers(id: number): { kind: string } {
    for (let hops = 0; id !== 0 && hops < 64; hops++) {
      const t = this.btf.type(id)
      if (!(t.kind in qualifiers) && t.kind !== 'TYPE_TAG') return t
      id = t.sizeOrType
    }
    return { kind: 'VOID' }
  }

  /** A struct, union or enum with its body: `struct x {\n\t...\n}`, indented for nesting level `lvl`. */
  #body(t: BtfTypeRecord, lvl: number): string {
    const tabs = '\t'.repeat(lvl + 1)
    const isEnum = t.kind === 'ENUM' || t.kind === 'ENUM64'
    const head = `${isEnum ? 'enum' : t.kind.toLowerCase()}${t.name === '' ? '' : ' ' + this.#name(t)} {\n`
    const lines: string[] = []
    let attr = ''
    if (isEnum) {
      const names = this.#enumeratorNames(t)
      const suffix = t.kind === 'ENUM64' ? (t.kindFlag ? 'LL' : 'ULL') : ''
      this.btf.enumValues(t).forEach((e, i) => lines.push(`${tabs}${names[i]} = ${e.value}${suffix},`))
      attr = enumSizeAttr(t.sizeOrType)
    } else {
      const layout = this.#layout(t.id)
      const union = t.kind === 'UNION'
      let pos = 0
      for (const m of this.btf.members(t)) {
        if (!union) {
          const at = m.bitSize ? this.#bitfieldPlace(pos, m.type, m.bitSize, layout.packed) : alignUp(pos, 8 * (layout.packed ? 1 : this.#align(m.type)))
          if (at < m.bitOffset) lines.push(...padding(pos, m.bitOffset, tabs))
        }
        lines.push(`${tabs}${this.decl(m.type, m.name, lvl + 1)}${m.bitSize ? `: ${m.bitSize}` : ''};`)
        pos = m.bitOffset + (m.bitSize || 8 * this.btf.sizeof(m.type))
      }
      const end = 8 * t.sizeOrType
      if (!union && alignUp(pos, 8 * layout.align) < end) lines.push(...padding(pos, end, tabs))
      // A union is padded by an unnamed bitfield, which adds size but no alignment.
      if (layout.unionPad) lines.push(`${tabs}long: ${layout.unionPad};`)
      if (layout.packed) attr = ' __attribute__((packed))'
      else if (layout.alignedAttr) attr = ` __attribute__((aligned(${layout.alignedAttr})))`
    }
    if (lines.length === 0) return `${head.slice(0, -1)}}${attr}`
    return head + lines.map((l) => l + '\n').join('') + '\t'.repeat(lvl) + '}' + attr
  }

  // Where a C compiler puts a bitfield of `bits` bits declared with type
  // `type` when the previous member ends at bit `pos`: there, unless it would
  // straddle a unit of its type's size (never in a packed struct).
  #bitfieldPlace(pos: number, type: number, bits: number, packed: boolean): number {
    if (packed) return pos
    const unit = 8 * this.btf.sizeof(type)
    return unit === 0 || (pos % unit) + bits <= unit ? pos : alignUp(pos, unit)
  }

  #align(id: number): number {
    const t = this.btf.resolve(id)
    switch (t.kind) {
      case 'INT': case 'FLOAT': return t.sizeOrType === 16 ? 16 : Math.min(t.sizeOrType, 8) || 1
      case 'ENUM': case 'ENUM64': return t.sizeOrType || 4
      case 'PTR': return 8
      case 'ARRAY': return this.#align(this.btf.array(t).type)
      case 'STRUCT': case 'UNION': return this.#layout(t.id).align
      default: return 1
    }
  }

  // Whether the C compiler must be told `packed` to reproduce the BTF's
  // offsets, and the alignment the emitted type then has.
  #layout(id: number): Layout {
    let l = this.#layouts.get(id)
    if (l) return l
    const t = this.btf.type(id)
    const members = this.btf.members(t)
    let natural = 1
    let packed = false
    for (const m of members) {
      const a = this.#align(m.type)
      natural = Math.max(natural, a)
      const unit = 8 * this.btf.sizeof(m.type)
      if (m.bitSize ? unit > 0 && (m.bitOffset % unit) + m.bitSize > unit : m.bitOffset % (8 * a) !== 0) packed = true
    }
    if (t.sizeOrType % natural !== 0) packed = true
    let alignedAttr = 0
    let unionPad = 0
    if (!packed && t.kind === 'UNION') {
      const widest = Math.max(0, ...members.map((m) => this.btf.sizeof(m.type)))
      if (alignUp(widest, natural) < t.sizeOrType) {
        for (let a = natural * 2; a <= t.sizeOrType; a *= 2) if (alignUp(widest, a) === t.sizeOrType) { alignedAttr = a; break }
        if (alignedAttr === 0 && t.sizeOrType <= 8) unionPad = 8 * t.sizeOrType
      }
    }
    l = { packed, align: packed ? 1 : Math.max(natural, alignedAttr), alignedAttr, unionPad }
    this.#layouts.set(id, l)
    return l
  }

  #assertLayout(t: BtfTypeRecord): void {
    const c = `${t.kind.toLowerCase()} ${this.#name(t)}`
    this.asserts.push(`_Static_assert(sizeof(${c}) == ${t.sizeOrType}, "size of ${c}");`)
    if (t.kind === 'UNION') return
    for (const m of this.btf.members(t)) {
      if (m.name === '' || m.bitSize) continue
      this.asserts.push(`_Static_assert(__builtin_offsetof(${c}, ${m.name}) == ${m.bitOffset / 8}, "${c}.${m.name}");`)
    }
  }

  /** A type's C name, unique in its namespace: tags (struct, union, enum) or identifiers (typedefs). */
  #name(t: BtfTypeRecord): string {
    let n = this.#names.get(t.id)
    if (n !== undefined) return n
    if (t.kind === 'FWD') return t.name // names the same tag as the definition, if there is one
    n = uniqueName(t.kind === 'TYPEDEF' ? this.#identCount : this.#tagCount, t.name)
    this.#names.set(t.id, n)
    return n
  }

  #enumeratorNames(t: BtfTypeRecord): string[] {
    let names = this.#enumerators.get(t.id)
    if (!names) {
      names = this.btf.enumValues(t).map((e) => uniqueName(this.#identCount, e.name))
      this.#enumerators.set(t.id, names)
    }
    return names
  }

  // The type ids a type record mentions (for which anonymous types are used).
  *#refs(t: BtfTypeRecord): Generator<number> {
    switch (t.kind) {
      case 'PTR': case 'TYPEDEF': case 'CONST': case 'VOLATILE': case 'RESTRICT': case 'TYPE_TAG':
      case 'FUNC': case 'VAR': case 'DECL_TAG': case 'FUNC_PROTO':
        yield t.sizeOrType
        if (t.kind === 'FUNC_PROTO') for (let i = 0; i < t.vlen; i++) yield t.extra[2 * i + 1]
        return
      case 'ARRAY': yield this.btf.array(t).type; return
      case 'STRUCT': case 'UNION': for (const m of this.btf.members(t)) yield m.type; return
      case 'DATASEC': for (let i = 0; i < t.vlen; i++) yield t.extra[3 * i]
    }
  }
}

function uniqueName(counts: Map<string, number>, name: string): string {
  const n = (counts.get(name) ?? 0) + 1
  counts.set(name, n)
  return n === 1 ? name : `${name}___${n}`
}

const unsignedOfSize: Record<number, string> = { 1: 'unsigned char', 2: 'unsigned short', 4: 'unsigned int', 8: 'unsigned long long' }
const wrap = (inner: string) => (inner.startsWith('*') ? `(${inner})` : inner)
const alignUp = (n: number, a: number) => (a <= 1 ? n : Math.ceil(n / a) * a)

// Enums are int-sized in C; other sizes the compiler is told (GCC and clang
// both read mode()).
function enumSizeAttr(size: number): string {
  switch (size) {
    case 1: return ' __attribute__((mode(byte)))'
    case 2: return ' __attribute__((mode(HI)))'
    case 8: return ' __attribute__((mode(word)))'
    default: return ''
  }
}

// Unnamed bitfields from bit `from` to bit `to`: whole longs, ints, shorts
// and chars where aligned, a narrower char bitfield up to the next byte.
function padding(from: number, to: number, tabs: string): string[] {
  const out: string[] = []
  for (let pos = from; pos < to;) {
    const step = [64, 32, 16, 8].find((w) => pos % w === 0 && pos + w <= to)
    const bits = step ?? Math.min(to - pos, 8 - (pos % 8))
    out.push(`${tabs}${step === 64 ? 'long' : step === 32 ? 'int' : step === 16 ? 'short' : 'char'}: ${bits};`)
    pos += bits
  }
  return out
}
