// TypeScript declarations for one clang-built object, as `bpfkit gen types`
// writes them (what bpf2go and `bpftool gen skeleton` do for Go and C): the
// program names, each map's key and value and each global's type, so that
// CollectionSpec.fromFile<Counter>('counter.bpf.o') is typed end to end.
//
// Every type here is what lib/map/btf-codec.ts (codecFromBtf) and the map's
// value reader (lib/map/values.ts) actually produce, rule for rule: integers
// of 1, 2 and 4 bytes are numbers and all others bigints, bool is boolean,
// an enum is its enumerator names or the raw number, a bitfield is a number
// (a bigint when its declared type is 8 bytes), arrays of 1-byte integers are
// Uint8Array, pointers are bigint, 4- and 8-byte floats are numbers and other
// floats bytes, anonymous struct/union members merge into their parent, and a
// union decodes every member. Per-CPU maps read an array of values, fd-valued
// maps read IDs (number), sides given only by size are Uint8Array.
//
// Output is deterministic: programs, maps and variables are sorted by name,
// declarations by their TypeScript name; members and enumerators keep the
// object's order; names that clash are resolved in BTF id order.
import type { BtfReader, BtfTypeRecord } from '../btf/reader.js'
import { isFdValued, isPerCpu } from '../map/kinds.js'
import { kernel } from '../sys/index.js'
import { describeValue } from '../sys/options.js'

export interface CollectionTypesInput {
  /** The exported interface's name, e.g. 'Counter'. */
  name: string
  /** The object file named in the header comment, e.g. 'counter.bpf.o'. */
  source?: string
  btf: BtfReader
  programs: readonly string[]
  /** `type` (kernel map type number or name) decides per-CPU and fd-valued values; ids absent mean raw bytes. */
  maps: readonly { name: string; type?: number | string; keyTypeId?: number; valueTypeId?: number }[]
  variables: readonly { name: string; typeId: number }[]
}

// ECMAScript reserved words (strict mode included): quoted as property names.
const reservedWords = new Set([
  'await', 'break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete', 'do', 'else', 'enum',
  'export', 'extends', 'false', 'finally', 'for', 'function', 'if', 'implements', 'import', 'in', 'instanceof', 'interface',
  'let', 'new', 'null', 'package', 'private', 'protected', 'public', 'return', 'static', 'super', 'switch', 'this', 'throw',
  'true', 'try', 'typeof', 'var', 'void', 'while', 'with', 'yield',
])

// Type names a declaration must not take: those the output refers to, and
// globals a user of the file would be surprised to see shadowed on import.
const reservedTypeNames = new Set([
  'CollectionShape', 'Uint8Array', 'Array', 'ArrayBuffer', 'BigInt', 'Boolean', 'DataView', 'Date', 'Error', 'Function',
  'Map', 'Number', 'Object', 'Promise', 'Record', 'RegExp', 'Set', 'String', 'Symbol', 'Partial', 'Required', 'Readonly',
  'Pick', 'Omit', 'Exclude', 'Extract', 'NonNullable', 'ReturnType', 'Parameters',
])

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/** Whether `name` can name the generated interface. */
export function isValidInterfaceName(name: string): boolean {
  return identifier.test(name) && !reservedWords.has(name) && name !== 'CollectionShape' && name !== 'Uint8Array'
}

/** The interface name for an object file: counter.bpf.o -> Counter, xdp-filter.o -> XdpFilter. */
export function interfaceNameFor(file: string): string {
  const base = file.replace(/^.*\//, '').replace(/\.o$/, '').replace(/\.bpf$/, '')
  const name = pascal(base)
  return /^[A-Za-z]/.test(name) ? name : `Bpf${name}`
}

/** A property name as TypeScript needs it written: bare when an identifier, quoted otherwise. */
export function propertyName(name: string): string {
  return identifier.test(name) && !reservedWords.has(name) ? name : `'${name.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
}

function pascal(name: string): string {
  return name.split(/[^A-Za-z0-9]+/).filter(Boolean).map((p) => p[0].toUpperCase() + p.slice(1)).join('')
}

const stringLiteral = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`

// Kinds that qualify a type without renaming it: a typedef behind them names an anonymous aggregate.
const qualifiers = new Set(['CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'])

/** A TypeScript type expression and whether it needs parentheses before `[]`. */
interface Expr { text: string; union: boolean }

/**
 * Writes TypeScript for BTF types. Named structs, unions and enums (by their
 * own name or the typedef that names an anonymous one) are referred to by the
 * names in `names` when given there, and written out inline otherwise.
 */
class TsTypeWriter {
  constructor(readonly btf: BtfReader, readonly names: ReadonlyMap<number, string> = new Map()) {}

  type(id: number): string {
    return this.#expr(id, 0).text
  }

  /** `type(id)` ready to be followed by `[]`. */
  elementType(id: number): string {
    return arrayOf(this.#expr(id, 0))
  }

  #expr(id: number, depth: number): Expr {
    if (depth > 64) throw new RangeError(`BTF type ${id}: nested more than 64 levels deep`)
    if (id === 0) return plain('unknown') // void: the codec refuses it, there is no value to type
    const t = this.btf.resolve(id)
    const size = this.btf.sizeof(id)
    switch (t.kind) {
      case 'INT':
        if (this.btf.intEncoding(t).bool) return plain('boolean')
        return plain(size === 1 || size === 2 || size === 4 ? 'number' : 'bigint')
      case 'ENUM': case 'ENUM64': {
        const named = this.names.get(t.id)
        return named !== undefined ? plain(named) : this.enumBody(t)
      }
      case 'FLOAT': return plain(size === 4 || size === 8 ? 'number' : 'Uint8Array')
      case 'PTR': return plain('bigint')
      case 'ARRAY': {
        const a = this.btf.array(t)
        const elem = this.btf.resolve(a.type)
        if (elem.kind === 'INT' && elem.sizeOrType === 1 && !this.btf.intEncoding(elem).bool) return plain('Uint8Array')
        return plain(`${arrayOf(this.#expr(a.type, depth + 1))}[]`)
      }
      case 'STRUCT': case 'UNION': {
        const named = this.names.get(t.id)
        if (named !== undefined) return plain(named)
        const fields = this.fields(t, depth)
        return plain(fields.size === 0 ? '{}' : `{ ${[...fields].map(([k, v]) => `${propertyName(k)}: ${v}`).join('; ')} }`)
      }
      default: return plain('unknown') // functions, forward declarations: no value either
    }
  }

  /** An enum's values: its enumerator names, or the number the codec returns when none matches. */
  enumBody(t: BtfTypeRecord): Expr {
    const size = t.sizeOrType
    const names = this.btf.enumValues(t).map((e) => stringLiteral(e.name))
    const raw = size === 1 || size === 2 || size === 4 ? 'number' : 'bigint'
    return { text: [...new Set(names), raw].join(' | '), union: names.length > 0 }
  }

  /**
   * The properties of a struct or union's decoded object, in order: an
   * anonymous aggregate member's own properties sit in the parent (the codec
   * merges them with Object.assign, so a later one wins), an anonymous
   * non-aggregate (padding) adds nothing, and a bitfield is a number, or a
   * bigint when its declared type is 8 bytes.
   */
  fields(t: BtfTypeRecord, depth = 0): Map<string, string> {
    const out = new Map<string, string>()
    for (const m of this.btf.members(t)) {
      if (m.name === '') {
        const r = this.btf.resolve(m.type)
        if (m.bitSize === 0 && (r.kind === 'STRUCT' || r.kind === 'UNION')) {
          for (const [k, v] of this.fields(r, depth + 1)) out.set(k, v)
        }
        continue
      }
      // `out.__proto__ = value` sets no property on the decoded object.
      if (m.name === '__proto__') continue
      out.set(m.name, m.bitSize ? (this.btf.sizeof(m.type) === 8 ? 'bigint' : 'number') : this.#expr(m.type, depth + 1).text)
    }
    return out
  }
}

const plain = (text: string): Expr => ({ text, union: false })
const arrayOf = (e: Expr) => (e.union ? `(${e.text})` : e.text)

/**
 * The TypeScript type of the value codecFromBtf(btf, id) decodes, written
 * inline (structs as object literal types); `names` maps BTF ids of structs,
 * unions and enums to names to use instead.
 */
export function tsTypeForBtf(btf: BtfReader, id: number, names?: ReadonlyMap<number, string>): string {
  return new TsTypeWriter(btf, names).type(id)
}

/** The name C gives a struct, union or enum: its own, else that of the typedef that names it. */
function cNames(btf: BtfReader): Map<number, string> {
  const out = new Map<number, string>()
  for (const t of btf.types()) {
    if ((t.kind === 'STRUCT' || t.kind === 'UNION' || t.kind === 'ENUM' || t.kind === 'ENUM64') && t.name !== '') out.set(t.id, t.name)
  }
  for (const t of btf.types()) {
    if (t.kind !== 'TYPEDEF') continue
    let target = t.sizeOrType === 0 ? undefined : btf.type(t.sizeOrType)
    for (let hops = 0; target && qualifiers.has(target.kind) && hops < 64; hops++) target = target.sizeOrType === 0 ? undefined : btf.type(target.sizeOrType)
    if (target && target.name === '' && ['STRUCT', 'UNION', 'ENUM', 'ENUM64'].includes(target.kind) && !out.has(target.id)) out.set(target.id, t.name)
  }
  return out
}

/** The named structs, unions and enums the values of `roots` contain, by BTF id. */
function reachableNamed(btf: BtfReader, roots: Iterable<number>, named: ReadonlyMap<number, string>): number[] {
  const seen = new Set<number>()
  const found = new Set<number>()
  const visit = (id: number, depth: number): void => {
    if (id === 0 || depth > 64) return
    const t = btf.resolve(id)
    if (seen.has(t.id)) return
    seen.add(t.id)
    if (named.has(t.id)) found.add(t.id)
    if (t.kind === 'ARRAY') visit(btf.array(t).type, depth + 1)
    else if (t.kind === 'STRUCT' || t.kind === 'UNION') for (const m of btf.members(t)) if (!m.bitSize) visit(m.type, depth + 1)
  }
  for (const id of roots) visit(id, 0)
  return [...found].sort((a, b) => a - b)
}

const kindWord: Record<string, string> = { STRUCT: 'Struct', UNION: 'Union', ENUM: 'Enum', ENUM64: 'Enum' }

/** TypeScript names for `ids` (in id order, so the first of two that clash keeps the plain name). */
function assignNames(btf: BtfReader, ids: number[], cName: ReadonlyMap<number, string>, taken: Set<string>): Map<number, string> {
  const out = new Map<number, string>()
  for (const id of ids) {
    const kind = kindWord[btf.type(id).kind]
    let base = pascal(cName.get(id)!)
    if (!/^[A-Za-z]/.test(base)) base = `${kind}${base}`
    let name = base
    if (taken.has(name)) name = `${base}${kind}`
    for (let n = 2; taken.has(name); n++) name = `${base}${kind}${n}`
    taken.add(name)
    out.set(id, name)
  }
  return out
}

function checkInput(input: CollectionTypesInput): void {
  if (input === null || typeof input !== 'object') throw new TypeError(`renderCollectionTypes: expected an input object, got ${describeValue(input)}`)
  if (typeof input.name !== 'string' || !isValidInterfaceName(input.name)) {
    throw new TypeError(`renderCollectionTypes: name must be a TypeScript identifier (not a reserved word, CollectionShape or Uint8Array), got ${describeValue(input.name)}`)
  }
  for (const [what, list] of [['program', input.programs.map((p) => ({ name: p }))], ['map', input.maps], ['variable', input.variables]] as const) {
    const seen = new Set<string>()
    for (const x of list) {
      if (typeof x.name !== 'string' || x.name === '') throw new TypeError(`renderCollectionTypes: ${what} name must be a non-empty string, got ${describeValue(x.name)}`)
      if (seen.has(x.name)) throw new TypeError(`renderCollectionTypes: ${what} '${x.name}' is listed twice`)
      seen.add(x.name)
    }
  }
}

function mapTypeNumber(type: number | string | undefined): number | undefined {
  if (type === undefined || typeof type === 'number') return type
  const n = (kernel.mapTypes as Record<string, number>)[type]
  if (n === undefined) throw new TypeError(`renderCollectionTypes: unknown map type '${type}'`)
  return n
}

const byName = <T extends { name: string }>(xs: readonly T[]) => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))

/**
 * The text of a .d.ts for one object: an interface `input.name` extending
 * CollectionShape, and an interface per named struct or union and a type per
 * named enum its maps and variables use. Errors: TypeError for an invalid
 * name or a name listed twice.
 */
export function renderCollectionTypes(input: CollectionTypesInput): string {
  checkInput(input)
  const { btf } = input
  const roots: number[] = []
  for (const m of input.maps) for (const id of [m.keyTypeId, m.valueTypeId]) if (id !== undefined) roots.push(id)
  for (const v of input.variables) roots.push(v.typeId)
  const cName = cNames(btf)
  const ids = reachableNamed(btf, roots, cName)
  const names = assignNames(btf, ids, cName, new Set([input.name, ...reservedTypeNames]))
  const w = new TsTypeWriter(btf, names)

  const lines: string[] = []
  const source = input.source ?? 'a BPF object'
  lines.push(
    `// Generated by \`bpfkit gen types\` from ${source}. Do not edit: generate it`,
    '// again when the object changes. Use it as CollectionSpec.fromFile<' + input.name + '>(path).',
    "import type { CollectionShape } from 'bpfkit'",
    '',
    `/** The programs, maps and global variables of ${source}. */`,
    `export interface ${input.name} extends CollectionShape {`,
  )
  const programs = [...input.programs].sort().map(stringLiteral)
  if (programs.length <= 1) lines.push(`  programs: ${programs[0] ?? 'never'}`)
  else lines.push('  programs:', ...programs.map((p) => `    | ${p}`))

  const maps = byName(input.maps)
  if (maps.length === 0) lines.push('  maps: {}')
  else {
    lines.push('  maps: {')
    for (const m of maps) {
      const type = mapTypeNumber(m.type)
      const key = m.keyTypeId === undefined ? 'Uint8Array' : w.type(m.keyTypeId)
      let value = m.valueTypeId === undefined ? 'Uint8Array' : w.type(m.valueTypeId)
      if (type !== undefined && isFdValued(type)) value = 'number'
      else if (type !== undefined && isPerCpu(type)) value = `${m.valueTypeId === undefined ? 'Uint8Array' : w.elementType(m.valueTypeId)}[]`
      lines.push(`    ${propertyName(m.name)}: { key: ${key}; value: ${value} }`)
    }
    lines.push('  }')
  }

  const variables = byName(input.variables)
  if (variables.length === 0) lines.push('  variables: {}')
  else {
    lines.push('  variables: {')
    for (const v of variables) lines.push(`    ${propertyName(v.name)}: ${w.type(v.typeId)}`)
    lines.push('  }')
  }
  lines.push('}')

  const declarations = [...names].sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
  for (const [id, name] of declarations) {
    const t = btf.type(id)
    const what = `${t.kind === 'UNION' ? 'union' : t.kind === 'STRUCT' ? 'struct' : 'enum'} ${cName.get(id)}`
    lines.push('')
    if (t.kind === 'ENUM' || t.kind === 'ENUM64') {
      const values = btf.enumValues(t).map((e) => `${e.name} = ${e.value}`).join(', ')
      lines.push(`/** C ${what}${values ? `: ${values}` : ''}. */`, `export type ${name} = ${w.enumBody(t).text}`)
      continue
    }
    const fields = w.fields(t)
    lines.push(`/** C ${what} (${t.sizeOrType} byte${t.sizeOrType === 1 ? '' : 's'})${t.kind === 'UNION' ? ': every member, each read from offset 0' : ''}. */`)
    if (fields.size === 0) lines.push(`export interface ${name} {}`)
    else lines.push(`export interface ${name} {`, ...[...fields].map(([k, v]) => `  ${propertyName(k)}: ${v}`), '}')
  }
  return lines.join('\n') + '\n'
}
