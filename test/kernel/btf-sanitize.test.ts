// The fixed-up BTF of real clang objects loads on this kernel, and so does
// the same BTF with every replacement sanitizeBtf knows applied (all
// features off): proof that each replacement is a record the kernel accepts,
// not just one that decodes.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { Btf } from '../../lib/btf/btf.js'
import { fixupObjectBtf, type BtfFixupFacts } from '../../lib/btf/fixup.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { FULL_BTF_SUPPORT, btfSupportKeys, sanitizeBtf, type BtfSupport } from '../../lib/btf/sanitize.js'
import { ElfFile, STT } from '../../lib/collection/elf.js'

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

async function loads(bytes: Uint8Array): Promise<void> {
  const btf = await Btf.load(bytes, { logLevel: 1 }).catch((e: Error & { log?: unknown }) => {
    throw new Error(`${e.message}\n${String(e.log ?? '')}`.slice(0, 3000))
  })
  btf.close()
}

describe('BTF of the fixture objects', () => {
  test('there are fixtures to check', () => expect(objects.length).toBeGreaterThanOrEqual(4))

  describe.each(objects)('%s', (name) => {
    test('fixed up, it loads as it is', async () => {
      await loads(objectBtf(name))
    })

    test('fixed up and fully sanitised, it still loads', async () => {
      const fixed = objectBtf(name)
      const old = sanitizeBtf(fixed, none)
      // Nothing this kernel would need replacing is left: no VAR, DATASEC, FUNC, FLOAT, tag or ENUM64.
      const kinds = new Set([...new BtfReader(old).types()].map((t) => t.kind))
      for (const k of ['VAR', 'DATASEC', 'FUNC', 'FUNC_PROTO', 'FLOAT', 'DECL_TAG', 'TYPE_TAG', 'ENUM64'] as const) expect(kinds.has(k), k).toBe(false)
      await loads(old)
    })

    test.each(btfSupportKeys)('with only %s missing, it still loads', async (key) => {
      await loads(sanitizeBtf(objectBtf(name), { ...FULL_BTF_SUPPORT, [key]: false }))
    })
  })
})
