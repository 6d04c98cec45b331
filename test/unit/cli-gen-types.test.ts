// `bpfkit gen types`, checked by the TypeScript compiler: for every
// test/fixtures/bpf/*.bpf.o the generated .d.ts must accept the values the
// runtime decoders actually produce (variables' initial values, map keys and
// values decoded from zeros and from random bytes) and must reject each of
// those values spoiled in one place (a wrong kind at one leaf, a missing or an
// extra property, null), unknown program, map and variable names, and the
// data sections as maps. A `// @ts-expect-error` that finds no error is itself
// an error, so a type that is too wide fails as surely as one too narrow.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { BtfReader } from '../../lib/btf/reader.js'
import { collectionTypesInput, parseGenTypesArgs, runGenTypes } from '../../lib/cli/gen-types.js'
import { UsageError } from '../../lib/cli/args.js'
import { main } from '../../lib/cli/main.js'
import { ElfFile, SHT } from '../../lib/collection/elf.js'
import { readMapDefinitions } from '../../lib/collection/map-defs.js'
import { readLegacyMaps } from '../../lib/collection/legacy-maps.js'
import { interfaceNameFor } from '../../lib/collection/ts-types.js'
import { readDataSections } from '../../lib/collection/variables.js'
import { codecFromBtf } from '../../lib/map/btf-codec.js'
import { isFdValued, isPerCpu } from '../../lib/map/kinds.js'

const root = join(__dirname, '..', '..')
const fixtures = join(root, 'test', 'fixtures', 'bpf')
const objects = readdirSync(fixtures).filter((n) => n.endsWith('.bpf.o')).sort()

function generate(args: string[]): string {
  const lines: string[] = []
  expect(runGenTypes(args, (s) => lines.push(s))).toBe(0)
  return lines.join('\n') + '\n'
}

// A JavaScript value as a one-line TypeScript expression.
function literal(v: unknown): string {
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : Object.is(v, -0) ? '-0' : String(v)
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v)
  if (v instanceof Uint8Array) return `new Uint8Array([${[...v].join(', ')}])`
  if (Array.isArray(v)) return `[${v.map(literal).join(', ')}]`
  if (v !== null && typeof v === 'object') return `{ ${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${literal(x)}`).join(', ')} }`
  throw new TypeError(`no literal for ${String(v)}`)
}

// Each way to spoil `v` in exactly one place, as literals no correct type accepts.
function spoiled(v: unknown): string[] {
  if (typeof v === 'number') return ['1n']
  if (typeof v === 'bigint') return ['1']
  if (typeof v === 'boolean') return ['0']
  if (typeof v === 'string') return ["'NOT_AN_ENUMERATOR__'"]
  if (v instanceof Uint8Array) return ['[0]']
  if (Array.isArray(v)) return v.length === 0 ? [] : spoiled(v[0]).map((s) => `[${[s, ...v.slice(1).map(literal)].join(', ')}]`)
  const entries = Object.entries(v as object)
  const object = (es: [string, string][]) => `{ ${es.map(([k, x]) => `${JSON.stringify(k)}: ${x}`).join(', ')} }`
  const out = [object([...entries.map(([k, x]) => [k, literal(x)] as [string, string]), ['__extra__', '0']])]
  entries.forEach(([key, x], i) => {
    const rest = entries.map(([k, y]) => [k, literal(y)] as [string, string])
    out.push(object(rest.filter((_, j) => j !== i)))
    for (const s of spoiled(x)) out.push(object(rest.map(([k, y], j) => [k, j === i ? s : y] as [string, string])))
  })
  return out
}

// A deterministic byte stream, so a failure can be reproduced.
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

function decoded(btf: BtfReader, id: number): unknown[] {
  const codec = codecFromBtf(btf, id)
  return [new Uint8Array(codec.size), randomBytes(codec.size, id), randomBytes(codec.size, id * 7919)]
    .map((b) => codec.decode(new DataView(b.buffer), 0))
}

const prop = (name: string) => JSON.stringify(name)

/** A .ts file that uses the generated types of `object` as the runtime would. */
function usage(object: string, name: string): string {
  const bytes = readFileSync(join(fixtures, object))
  const input = collectionTypesInput(bytes, name, object)
  const { btf } = input
  const elf = new ElfFile(bytes)
  const lines = [
    `import type { CollectionShape } from 'bpfkit'`,
    `import type { ${name} as S } from './${object.replace(/\.o$/, '')}'`,
    'type Exactly<K extends PropertyKey> = Record<K, true>',
    'export const shape: CollectionShape = null as unknown as S',
  ]
  let n = 0
  const accept = (type: string, value: string) => lines.push(`export const ok${n++}: ${type} = ${value}`)
  const reject = (type: string, value: string) => lines.push('// @ts-expect-error', `export const bad${n++}: ${type} = ${value}`)
  const check = (type: string, values: unknown[]) => {
    for (const v of values) {
      accept(type, literal(v))
      reject(type, 'null')
      for (const s of spoiled(v)) reject(type, s)
    }
  }

  // Programs, maps and variables: exactly the object's, no more.
  const set = (names: readonly string[]) => `{ ${names.map((p) => `${prop(p)}: true`).join(', ')} }`
  lines.push(`export const programs: Exactly<S['programs']> = ${set(input.programs)}`)
  reject("S['programs']", "'not_a_program__'")
  // BTF-defined and legacy SEC("maps") maps, as the CollectionSpec lists them.
  const defs = [...readMapDefinitions(btf), ...(elf.section('maps') ? readLegacyMaps(elf) : [])]
  lines.push(`export const maps: Exactly<keyof S['maps']> = ${set(defs.map((d) => d.name))}`)
  const variables = readDataSections(elf, btf).variables
  lines.push(`export const variables: Exactly<keyof S['variables']> = ${set([...variables.keys()])}`)
  for (const missing of ['not_a_map__', '.data', '.rodata', '.bss']) lines.push('// @ts-expect-error', `export type NoMap${n++} = S['maps'][${prop(missing)}]`)
  lines.push('// @ts-expect-error', `export type NoVariable${n++} = S['variables']['not_a_variable__']`)

  for (const [vname, v] of variables) check(`S['variables'][${prop(vname)}]`, [v.get(), ...decoded(btf, v.typeId)])
  for (const d of defs) {
    const side = (what: 'key' | 'value', id: number | undefined, size: number | undefined) => {
      const values = id === undefined ? [new Uint8Array(size ?? 0), randomBytes(size ?? 0, 1)] : decoded(btf, id)
      if (what === 'value' && isFdValued(d.type)) return [0, 7]
      if (what === 'value' && isPerCpu(d.type)) return values.map((x) => [x, x])
      return values
    }
    check(`S['maps'][${prop(d.name)}]['key']`, side('key', d.keyTypeId, d.keySize))
    check(`S['maps'][${prop(d.name)}]['value']`, side('value', d.valueTypeId, d.valueSize))
  }
  return lines.join('\n') + '\n'
}

describe('gen types output compiles and types what the decoders produce', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bpfkit-gen-types-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const stem = (object: string) => object.replace(/\.o$/, '')
  // One compile for every fixture (lib/ and the standard library are read once); each test judges its own two files.
  let diagnostics: Map<string, string[]>
  beforeAll(() => {
    // 'bpfkit' is the package entry, plus the shape module directly until the entry exports it.
    writeFileSync(join(dir, 'bpfkit.ts'), `export * from ${JSON.stringify(join(root, 'lib', 'index'))}\nexport type { CollectionShape } from ${JSON.stringify(join(root, 'lib', 'collection', 'shape'))}\n`)
    const files = new Map<string, string[]>()
    for (const object of objects) {
      const paths = [join(dir, `${stem(object)}.d.ts`), join(dir, `use-${stem(object)}.ts`)]
      writeFileSync(paths[0], generate([join(fixtures, object)]))
      writeFileSync(paths[1], usage(object, interfaceNameFor(object)))
      files.set(object, paths)
    }
    const program = ts.createProgram([...files.values()].flat(), {
      strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10, lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts'], types: ['node'],
      baseUrl: dir, paths: { bpfkit: [join(dir, 'bpfkit.ts')] }, typeRoots: [join(root, 'node_modules', '@types')],
    })
    // Only the generated files and their uses are judged: lib/ has its own typecheck.
    diagnostics = new Map([...files].map(([object, paths]) => [object, paths.flatMap((f) => ts.getPreEmitDiagnostics(program, program.getSourceFile(f))).map((d) => {
      const where = d.file && d.start !== undefined ? `${basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}` : ''
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`
    })]))
  }, 120_000)

  it('finds the fixtures', () => {
    expect(objects).toEqual(expect.arrayContaining(['globals.bpf.o', 'maps.bpf.o', 'minimal.bpf.o', 'types.bpf.o']))
  })

  it.each(objects)('%s', (object) => {
    expect(diagnostics.get(object), `tsc on ${dir}/${stem(object)}.d.ts and use-${stem(object)}.ts`).toEqual([])
  })
})

describe('bpfkit gen types', () => {
  const object = join(fixtures, 'globals.bpf.o')

  it('names the interface after the file, or --name', () => {
    expect(generate([object])).toContain('export interface Globals extends CollectionShape {')
    expect(generate(['--name', 'MyGlobals', object])).toContain('export interface MyGlobals extends CollectionShape {')
    expect(generate([object, '--name=G2'])).toContain('export interface G2 extends CollectionShape {')
    expect(generate([object])).toContain('from globals.bpf.o.')
    expect(generate([object])).not.toContain(fixtures)
  })

  it('refuses bad arguments with a usage error', () => {
    for (const args of [[], [object, object], ['--name'], [object, '--name', ''], [object, '--bogus'], [object, '--name', 'class'],
      [object, '--name', 'a-b'], [object, '--name', 'A', '--name', 'B']]) {
      expect(() => parseGenTypesArgs(args), args.join(' ')).toThrow(UsageError)
    }
    expect(() => parseGenTypesArgs(['x/9lives.bpf.o'])).not.toThrow()
    expect(parseGenTypesArgs(['x/9lives.bpf.o']).name).toBe('Bpf9lives')
  })

  it('main: exit 2 with usage for a malformed command, 1 for an unreadable object, 0 with the text on stdout', async () => {
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      expect(await main(['gen'])).toBe(2)
      expect(await main(['gen', 'skeleton', object])).toBe(2)
      expect(await main(['gen', 'types'])).toBe(2)
      expect(String(stderr.mock.calls.at(-1)![0])).toContain('gen types <obj.o> [--name N]')
      expect(await main(['gen', 'types', join(fixtures, 'no-such.bpf.o')])).toBe(1)
      expect(String(stderr.mock.calls.at(-1)![0])).toContain('ENOENT')
      stdout.mockClear()
      expect(await main(['gen', 'types', object])).toBe(0)
      expect(stdout.mock.calls.map((c) => String(c[0])).join('')).toBe(generate([object]))
    } finally {
      stdout.mockRestore()
      stderr.mockRestore()
    }
  })

  it('refuses an object without .BTF, naming why', () => {
    const bytes = Buffer.from(readFileSync(object))
    for (const s of new ElfFile(bytes).sections.filter((x) => x.type === SHT.STRTAB)) {
      const names = bytes.subarray(s.offset, s.offset + s.size)
      for (let at = names.indexOf('.BTF'); at >= 0; at = names.indexOf('.BTF', at + 1)) names[at + 1] = 'X'.charCodeAt(0)
    }
    expect(new ElfFile(bytes).section('.BTF')).toBeUndefined()
    expect(() => collectionTypesInput(bytes, 'G', 'g.o')).toThrow(/no \.BTF section: build it with clang -g/)
  })
})
