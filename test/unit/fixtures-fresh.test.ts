// The checked-in BPF objects are what `npm run build:fixtures` (test
// fixtures) and `npm run build:guard` (the guard the package ships) make from
// the checked-in sources: each directory's manifest.json records, per object, the
// sha256 of its .bpf.c, of each header it includes from that directory, and of
// the .bpf.o. This test compares hashes only, so it needs no clang (CI has
// none); a source edited without a rebuild, an object edited by hand, a new
// source never built or an object whose source is gone fails here, naming it.
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const dirs = [
  { dir: join(__dirname, '..', 'fixtures', 'bpf'), name: 'test/fixtures/bpf', rebuild: 'run `npm run build:fixtures` and commit the objects with manifest.json' },
  { dir: join(__dirname, '..', '..', 'bpf', 'guard'), name: 'bpf/guard', rebuild: 'run `npm run build:guard` and commit the object with manifest.json' },
]

interface ManifestEntry {
  source: string
  sourceSha256: string
  headers: Record<string, string>
  objectSha256: string
  clang: string
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

for (const { dir, name, rebuild } of dirs) describe(`${name} objects are fresh`, () => {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { objects: Record<string, ManifestEntry> }
  const sources = readdirSync(dir).filter((n) => n.endsWith('.bpf.c')).sort()
  const objects = readdirSync(dir).filter((n) => n.endsWith('.bpf.o')).sort()

  it('every .bpf.c has a manifest entry', () => {
    const listed = new Set(Object.values(manifest.objects).map((e) => e.source))
    const missing = sources.filter((s) => !listed.has(s))
    expect(missing.length, `${missing.join(', ')}: never built (${rebuild})`).toBe(0)
  })

  it('every .bpf.o has a manifest entry', () => {
    const unknown = objects.filter((o) => !(o in manifest.objects))
    expect(unknown.length, `${unknown.join(', ')}: not made by build:fixtures (remove them, or add their source and ${rebuild})`).toBe(0)
  })

  for (const [object, entry] of Object.entries(manifest.objects)) {
    describe(object, () => {
      it(`${entry.source} exists and is unchanged`, () => {
        const source = join(dir, entry.source)
        expect(existsSync(source), `${entry.source} (the source of ${object} in manifest.json) is gone; remove ${object} and ${rebuild}`).toBe(true)
        expect(sha256(source), `${entry.source} changed since ${object} was built: stale, ${rebuild}`).toBe(entry.sourceSha256)
      })

      it(`the headers ${entry.source} includes are unchanged`, () => {
        for (const [header, hash] of Object.entries(entry.headers)) {
          const path = join(dir, header)
          expect(existsSync(path), `${header} (included by ${entry.source}) is gone; ${rebuild}`).toBe(true)
          expect(sha256(path), `${header} (included by ${entry.source}) changed since ${object} was built: stale, ${rebuild}`).toBe(hash)
        }
      })

      it(`${object} is the one that was built`, () => {
        const path = join(dir, object)
        expect(existsSync(path), `${object} is missing; ${rebuild}`).toBe(true)
        expect(sha256(path), `${object} differs from the build recorded in manifest.json (edited or built by hand?); ${rebuild}`).toBe(entry.objectSha256)
      })
    })
  }
})
