// The fixed-up BTF of real clang objects loads on this kernel once sanitised
// for it (on a kernel with every kind clang uses, such as the 6.18 host, that
// changes nothing: the fixed-up BTF loads as it is), and so does the same BTF
// with any one or all of the replacements sanitizeBtf knows applied: proof
// that each replacement is a record the kernel accepts, not just one that
// decodes. On older kernels (the VM runs) 'this kernel's support' is less,
// and each case takes one feature more away from it.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { Btf } from '../../lib/btf/btf.js'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { RawBtf, fixupObjectBtf, type BtfFixupFacts } from '../../lib/btf/fixup.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { btfSupportKeys, sanitizeBtf, type BtfSupport } from '../../lib/btf/sanitize.js'
import { ElfFile, STT } from '../../lib/collection/elf.js'
import { btfSupport, haveBtf } from '../../lib/features/index.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

const dir = join(__dirname, '..', 'fixtures', 'bpf')
const objects = readdirSync(dir).filter((n) => n.endsWith('.bpf.o')).sort()

// What the collection loader knows from the ELF file, as fixupObjectBtf asks for it.
function factsOf(elf: ElfFile): BtfFixupFacts {
  const symbol = (section: string, name: string) => {
    const s = elf.section(section)
    return s && elf.symbols.find((y) => y.shndx === s.index && y.name === name && y.type === STT.OBJECT)
  }
  return {
    sectionSize: (name) => elf.section(name)?.size,
    symbolOffset: (section, name) => symbol(section, name)?.value,
    // STV_INTERNAL (1) and STV_HIDDEN (2), as libbpf reads them.
    hiddenVariable: (section, name) => [1, 2].includes(symbol(section, name)?.visibility ?? 0),
  }
}

function objectBtf(name: string): Uint8Array {
  const elf = ElfFile.fromFile(join(dir, name))
  const sec = elf.section('.BTF')
  if (!sec) throw new Error(`${name} has no .BTF`)
  return fixupObjectBtf(Uint8Array.from(elf.data(sec)), factsOf(elf))
}

const none = Object.fromEntries(btfSupportKeys.map((k) => [k, false])) as unknown as BtfSupport
const noBtf = requireFeature(haveBtf)
const here: BtfSupport = noBtf === undefined ? btfSupport() : none
// Everything a clang object may use (the layout section is not clang's).
const hasAllClangUses = btfSupportKeys.every((k) => k === 'layout' || here[k])

// Loads `bytes`; a refusal shows the end of the kernel's BTF log.
async function loads(bytes: Uint8Array): Promise<void> {
  const btf = await Btf.load(bytes, { logLevel: 1, logSize: 1 << 20 }).catch((e: Error & { log?: unknown }) => {
    throw new Error(`${e.message}\n${(Array.isArray(e.log) ? e.log : []).slice(-6).join('\n')}`)
  })
  btf.close()
}

describe('BTF of the fixture objects', () => {
  skipAllIf(noBtf)
  test('there are fixtures to check', () => expect(objects.length).toBeGreaterThanOrEqual(4))

  describe.each(objects)('%s', (name) => {
    test('fixed up and sanitised for this kernel, it loads; with every kind clang uses, unchanged', async () => {
      const fixed = objectBtf(name)
      const sane = sanitizeBtf(fixed, here)
      // An empty DATASEC is always made a struct (5.10 refuses it); anything else stays as it was.
      const emptyDatasec = [...new BtfReader(fixed).types()].some((t) => t.kind === 'DATASEC' && t.vlen === 0)
      if (hasAllClangUses && !emptyDatasec) expect(sane).toEqual(fixed)
      await loads(sane)
    })

    test('fixed up and fully sanitised, it still loads', async () => {
      const fixed = objectBtf(name)
      const old = sanitizeBtf(fixed, none)
      // Nothing this kernel would need replacing is left: no VAR, DATASEC, FUNC, FLOAT, tag or ENUM64.
      const kinds = new Set([...new BtfReader(old).types()].map((t) => t.kind))
      for (const k of ['VAR', 'DATASEC', 'FUNC', 'FUNC_PROTO', 'FLOAT', 'DECL_TAG', 'TYPE_TAG', 'ENUM64'] as const) expect(kinds.has(k), k).toBe(false)
      await loads(old)
    })

    test.each(btfSupportKeys)('with %s missing too, it still loads', async (key) => {
      await loads(sanitizeBtf(objectBtf(name), { ...here, [key]: false }))
    })
  })
})

// Every kind and flag sanitizeBtf replaces, the clang fixtures need not have
// them all: floats, tags and attributes (kind_flag), 64-bit and signed enums,
// '?' sections, prototypes with unnamed parameters, function statics.
function everyKindBtf(): Uint8Array {
  const b = new BtfBuilder()
  const int = b.int('int', 4, { signed: true })
  const u64 = b.int('unsigned long long', 8)
  const proto = b.funcProto(int, [{ name: 'ctx', type: int }, { name: 'len', type: u64 }])
  b.func('helper', proto, 'static')
  const entry = b.func('entry', proto, 'global')
  const fnptr = b.ptr(b.funcProto(0, [{ type: int }]))
  const dbl = b.float('double', 8)
  const counter = b.var('counter', u64, 'global')
  b.datasec('.data.x', [{ type: counter, offset: 0, size: 8 }, { type: b.var('entry.msg', b.array(int, 3), 'static'), offset: 8, size: 12 }], 24)
  b.datasec('?.struct_ops', [{ type: b.var('ops', int, 'global'), offset: 0, size: 4 }], 4)
  b.declTag('arg:ctx', entry, 0)
  const attr = b.declTag('aligned(8)', counter)
  const user = b.typeTag('user', int)
  const attrTag = b.typeTag('noderef', user)
  const attrTag2 = b.typeTag('noderef', int)
  const sign = b.enum('sign', [['NEG', -1], ['POS', 1]])
  const big = b.enum64('big', [['BIG', 1n << 40n], ['SMALL', 1n]])
  b.struct('holder', [{ name: 'p', type: b.ptr(attrTag) }, { name: 'q', type: b.ptr(b.typeTag('user', attrTag2)) }, { name: 'e', type: big }, { name: 'f', type: dbl }, { name: 's', type: sign }, { name: 'fn', type: fnptr }])
  const raw = new RawBtf(b.bytes())
  for (const id of [attr, attrTag, attrTag2]) raw.setInfo(id, raw.kind(id), 0, true)
  return raw.bytes()
}

describe('BTF with every kind sanitizeBtf replaces', () => {
  skipAllIf(noBtf)
  test('sanitised for this kernel, it loads; with everything but the layout section, unchanged', async () => {
    const bytes = everyKindBtf()
    const sane = sanitizeBtf(bytes, here)
    if (hasAllClangUses) expect(sane).toEqual(bytes)
    await loads(sane)
  })

  test('fully sanitised, it still loads', async () => {
    await loads(sanitizeBtf(everyKindBtf(), none))
  })

  test.each(btfSupportKeys)('with %s missing too, it still loads', async (key) => {
    await loads(sanitizeBtf(everyKindBtf(), { ...here, [key]: false }))
  })

  test('why sanitizeBtf names unnamed parameters: the kernel refuses an enumerator without a name', async () => {
    const b = new BtfBuilder()
    b.enum('e', [['', 1]])
    await expect(Btf.load(b.bytes())).rejects.toMatchObject({ code: 'EINVAL' })
  })
})
