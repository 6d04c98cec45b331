// The BTF feature probes against the running kernel: each answer held to the
// release that added the feature (the host, 6.18, has all but the layout
// section of 7.1), btfSupport() made of those answers, and a BTF that uses
// what a probe said is missing refused by this kernel as the probe predicts.
import { release } from 'node:os'
import { describe, expect, test } from 'vitest'
import { Btf } from '../../lib/btf/btf.js'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { RawBtf } from '../../lib/btf/fixup.js'
import { btfSupportKeys, sanitizeBtf } from '../../lib/btf/sanitize.js'
import * as features from '../../lib/features/index.js'
import { btfFeatureVersions, btfKindVersions } from '../../lib/features/versions.js'
import { NotSupportedError } from '../../lib/sys/index.js'

const running = release().split(/[.-]/).slice(0, 2).map(Number)
const atLeast = (version: string) => {
  const [a, b] = version.split('.').map(Number)
  return running[0] > a || (running[0] === a && running[1] >= b)
}

const probes = {
  funcGlobal: features.haveBtfGlobalFunc,
  qmarkDatasec: features.haveBtfQmarkDatasec,
  declTagKindFlag: features.haveBtfDeclTagKindFlag,
  typeTagKindFlag: features.haveBtfTypeTagKindFlag,
  layout: features.haveBtfLayout,
} as const

describe('BTF feature probes', () => {
  test.each(Object.entries(probes))('%s: supported exactly from its release', (key, have) => {
    const fv = btfFeatureVersions[key as keyof typeof probes]
    if (atLeast(fv.version)) {
      expect(() => have()).not.toThrow()
    } else {
      expect(() => have()).toThrow(NotSupportedError)
      expect(() => have()).toThrow(new RegExp(`Linux ${fv.version.replace('.', '\\.')}`))
    }
  })

  test('each is declared once, with its release in miscVersions', () => {
    expect(features.miscVersions).toMatchObject({
      btfGlobalFunc: { version: '5.6' }, btfQmarkDatasec: { version: '6.9' }, btfDeclTagKindFlag: { version: '6.15' },
      btfTypeTagKindFlag: { version: '6.15' }, btfLayout: { version: '7.1' },
    })
  })

  test('btfSupport() is the probes\' answers, every key a boolean', () => {
    const s = features.btfSupport()
    expect(Object.keys(s).sort()).toEqual([...btfSupportKeys].sort())
    const kinds = { func: 'func', datasec: 'datasec', float: 'float', declTag: 'decl_tag', typeTag: 'type_tag', enum64: 'enum64' } as const
    for (const [key, kind] of Object.entries(kinds)) expect(s[key as keyof typeof kinds], key).toBe(atLeast(btfKindVersions[kind].version))
    for (const key of Object.keys(probes) as Array<keyof typeof probes>) expect(s[key], key).toBe(atLeast(btfFeatureVersions[key].version))
  })

  test('btfSupport() sanitising makes BTF this kernel refused load: a layout section where it is missing', async () => {
    const b = new BtfBuilder()
    b.int('int', 4, { signed: true })
    const raw = new RawBtf(b.bytes())
    // One layout entry per kind 0..19: INT has one u32 after the header.
    raw.layout = Uint8Array.from({ length: 4 * 20 }, (_, i) => (i === 4 ? 4 : 0))
    const withLayout = raw.bytes()
    const s = features.btfSupport()
    if (s.layout) {
      (await Btf.load(withLayout)).close()
    } else {
      // A kernel before the layout section refuses a header longer than it knows with E2BIG.
      await expect(Btf.load(withLayout)).rejects.toMatchObject({ code: expect.stringMatching(/^(EINVAL|E2BIG)$/) })
    }
    ;(await Btf.load(sanitizeBtf(withLayout, s))).close()
  })

  test('a kind_flag on a decl tag is refused exactly when the probe says it is missing', async () => {
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    const tag = b.declTag('aligned(4)', b.var('x', int))
    const raw = new RawBtf(b.bytes())
    raw.setInfo(tag, raw.kind(tag), 0, true)
    const load = Btf.load(raw.bytes()).then((btf) => (btf.close(), true), () => false)
    expect(await load).toBe(features.supportsBtfDeclTagKindFlag())
  })
})
