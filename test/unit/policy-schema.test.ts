// policy.schema.json, the JSON Schema of a policy document that the package
// ships for editors: it accepts the example, the README's policies and
// everything Policy.toJSON writes; it rejects what Policy.from rejects for its
// shape; its name lists are this build's kernel enums; and npm ships it.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import Ajv from 'ajv'
import { describe, expect, test } from 'vitest'
import { Policy, type PolicyDocument } from '../../lib/policy/index.js'
import { attachTypes, commands, helpers, mapTypes, progTypes } from '../../lib/sys/generated/kernel-enums.js'

const root = join(__dirname, '..', '..')
const schemaPath = join(root, 'policy.schema.json')
const schema = JSON.parse(readFileSync(schemaPath, 'utf8'))
// strict: a keyword the schema misuses is an error, not a warning (but an
// if: { required } naming properties defined elsewhere is plain JSON Schema).
const validate = new Ajv({ allErrors: true, strict: true, strictRequired: false }).compile(schema)
const errorsOf = (doc: unknown) => (validate(doc) ? [] : validate.errors!.map((e) => `${e.instancePath} ${e.message}`))

// The example (test/fixtures/policy/issue-example.json, shared with the other policy tests).
const example = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'policy', 'issue-example.json'), 'utf8'))

// The object literal of every `Policy.from({ ... })` in README.md's code:
// policies are written there as literals, so each can be read as one.
function readmePolicies(): { text: string; doc: unknown }[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const out: { text: string; doc: unknown }[] = []
  for (let at = readme.indexOf('Policy.from({'); at >= 0; at = readme.indexOf('Policy.from({', at + 1)) {
    const start = at + 'Policy.from('.length
    let depth = 0
    let end = start
    for (; end < readme.length; end++) {
      if (readme[end] === '{' || readme[end] === '[') depth++
      else if (readme[end] === '}' || readme[end] === ']') depth--
      if (depth === 0) break
    }
    const text = readme.slice(start, end + 1)
    out.push({ text, doc: new Function(`return (${text})`)() })
  }
  return out
}

describe('accepts', () => {
  test("the issue's example, with $schema as editors write it", () => {
    expect(errorsOf(example)).toEqual([])
    expect(errorsOf({ $schema: './node_modules/bpfkit/policy.schema.json', ...example })).toEqual([])
  })

  test("every policy in the README (the delegation example among them), and Policy.from agrees", () => {
    const found = readmePolicies()
    expect(found.length).toBeGreaterThan(0)
    expect(found.some(({ doc }) => (doc as PolicyDocument).cmds !== undefined)).toBe(true)
    for (const { text, doc } of found) {
      expect(errorsOf(doc), text).toEqual([])
      expect(() => Policy.from(doc as PolicyDocument, { kernelBtf: null }), text).not.toThrow()
    }
  })

  test('what toJSON writes: masks only, any, numbers, capabilities and contexts', () => {
    for (const doc of [
      {}, { cmds: 'any', maps: 'any', progs: 'any', attachs: 'any' }, { maps: [1, 'array', 63] },
      { capabilities: {}, contexts: [] },
      { capabilities: { s: { helpers: [1, 'ktime_get_ns'], maps: [2], kfuncs: [] } }, contexts: [{ progs: [6, 'struct_ops'], attachs: [0], attachTo: ['tcp_*', 'a/b', 'f+0x10', 'x?'], member: ['*'], grant: ['s'] }] },
    ] as PolicyDocument[]) {
      expect(errorsOf(doc)).toEqual([])
      const json = JSON.parse(JSON.stringify(Policy.from(doc, { kernelBtf: null })))
      expect(errorsOf(json)).toEqual([])
    }
    expect(errorsOf(JSON.parse(JSON.stringify(Policy.from(example as PolicyDocument, { kernelBtf: null }))))).toEqual([])
  })
})

describe('rejects what Policy.from rejects', () => {
  const bad: [string, unknown, RegExp][] = [
    ['an unknown top-level key', { map: ['hash'] }, /must NOT have additional properties/],
    ['a mask neither any nor a list', { maps: 'hash' }, /must be array|must be equal to constant/],
    ['a misspelt map type', { maps: ['hashh'] }, /must be equal to one of the allowed values/],
    ['a mask bit past 63', { maps: [64] }, /must be <= 63/],
    ['capabilities as a list', { capabilities: [] }, /\/capabilities must be object/],
    ['a set name with a space', { capabilities: { 'a b': {} } }, /property name must be valid|must match pattern/],
    ['an unknown key in a set', { capabilities: { s: { helper: [] } } }, /\/capabilities\/s must NOT have additional properties/],
    ['a misspelt helper', { capabilities: { s: { helpers: ['map_lookup_elm'] } } }, /\/capabilities\/s\/helpers\/0 must be equal to one of the allowed values/],
    ['helper 0 (unspec)', { capabilities: { s: { helpers: ['unspec'] } } }, /\/capabilities\/s\/helpers\/0/],
    ['a kfunc that is no identifier', { capabilities: { s: { kfuncs: ['bpf-task'] } } }, /\/capabilities\/s\/kfuncs\/0 must match pattern/],
    ['a misspelt map type in a set', { capabilities: { s: { maps: ['lru_hsh'] } } }, /\/capabilities\/s\/maps\/0/],
    ['helpers as a string', { capabilities: { s: { helpers: 'ktime_get_ns' } } }, /\/capabilities\/s\/helpers must be array/],
    ['contexts as an object', { capabilities: {}, contexts: {} }, /\/contexts must be array/],
    ['a context without grant', { capabilities: { s: {} }, contexts: [{ progs: ['xdp'] }] }, /\/contexts\/0 must have required property 'grant'/],
    ['an unknown key in a context', { capabilities: { s: {} }, contexts: [{ prog: [], grant: ['s'] }] }, /\/contexts\/0 must NOT have additional properties/],
    ['a misspelt program type in a context', { capabilities: { s: {} }, contexts: [{ progs: ['kprobes'], grant: ['s'] }] }, /\/contexts\/0\/progs\/0/],
    ['progs any in a context', { capabilities: { s: {} }, contexts: [{ progs: 'any', grant: ['s'] }] }, /\/contexts\/0\/progs must be array/],
    ['an attach target with a space', { capabilities: { s: {} }, contexts: [{ attachTo: ['tcp connect'], grant: ['s'] }] }, /\/contexts\/0\/attachTo\/0 must match pattern/],
    ['members for programs that are not struct_ops', { capabilities: { s: {} }, contexts: [{ progs: ['kprobe'], member: ['dispatch'], grant: ['s'] }] }, /\/contexts\/0\/progs must contain at least 1 valid item/],
    ['$schema not a string', { $schema: 1 }, /\/\$schema must be string/],
  ]
  test.each(bad)('%s', (_, doc, message) => {
    const errors = errorsOf(doc)
    expect(errors.join('\n')).toMatch(message)
    expect(() => Policy.from(doc as PolicyDocument, { kernelBtf: null })).toThrow()
  })
})

describe('the schema and this build agree', () => {
  // When `npm run gen` brings new kernel names, the schema's lists follow them.
  test('name lists are the generated kernel enums', () => {
    const d = schema.definitions
    const keys = (t: object) => Object.keys(t)
    const stale = 'policy.schema.json is stale: its name lists must be the keys of lib/sys/generated/kernel-enums.ts'
    expect(d.commandName.enum, stale).toEqual(keys(commands))
    expect(d.mapTypeName.enum, stale).toEqual(keys(mapTypes))
    expect(d.progTypeName.enum, stale).toEqual(keys(progTypes))
    expect(d.attachTypeName.enum, stale).toEqual(keys(attachTypes))
    expect(d.helperName.enum, stale).toEqual(keys(helpers).filter((h) => h !== 'unspec'))
    expect(d.context.then.properties.progs.contains.enum, stale).toEqual(['struct_ops', progTypes.struct_ops])
  })

  test('npm ships it and bpfkit/policy.schema.json resolves to it', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
    expect(pkg.exports['./policy.schema.json']).toBe('./policy.schema.json')
    expect(pkg.files).toContain('policy.schema.json')
    expect(pkg.dependencies).not.toHaveProperty('ajv') // for tests only
    expect(createRequire(join(root, 'package.json')).resolve('bpfkit/policy.schema.json')).toBe(schemaPath)
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))
    expect(packed.files.map((f: { path: string }) => f.path)).toContain('policy.schema.json')
  })
})
