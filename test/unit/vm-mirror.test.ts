// The VM runner's Debian mirror comes from the machine's apt sources (one-line
// .list and deb822 .sources files) or BPFKIT_VM_MIRROR, never from a host
// name in the code. Sample sources trees are in test/fixtures/apt/.
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { chooseMirror, debianArchive, parseSources, readSystemSources } from '../../scripts/vm/mirror.mjs'

const samples = join(__dirname, '..', 'fixtures', 'apt')

describe('apt sources', () => {
  test('deb822: comments inside stanzas, several suites, disabled stanzas and other suffixes left out', () => {
    const files = readSystemSources(join(samples, 'deb822'))
    expect(files.map((f) => f.path.split('/').pop())).toEqual(['a-disabled.sources', 'debian.sources', 'nodesource.sources'])
    const entries = parseSources(files)
    expect(entries.map((e) => e.uris[0])).toEqual(['http://mirror.example/debian/', 'http://mirror.example/debian-security', 'https://thirdparty.example/node_20.x'])
    expect(entries[0]).toMatchObject({ types: ['deb'], suites: ['bookworm', 'bookworm-updates'], components: ['main'], signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg' })
    expect(chooseMirror({}, files)).toEqual({
      uri: 'http://mirror.example/debian', signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg', from: join(samples, 'deb822/sources.list.d/debian.sources'),
    })
  })

  test('one-line: deb-src, -security and third-party suites are passed over; options and trailing comments parsed', () => {
    const files = readSystemSources(join(samples, 'one-line'))
    const entries = parseSources(files)
    expect(entries).toHaveLength(5)
    expect(entries[2]).toMatchObject({ types: ['deb'], uris: ['http://local.example:3142/debian/'], suites: ['bullseye'], components: ['main', 'non-free'], signedBy: '/etc/apt/keyrings/local.gpg' })
    expect(debianArchive(entries)).toMatchObject({ uri: 'http://local.example:3142/debian', signedBy: '/etc/apt/keyrings/local.gpg' })
  })

  test('BPFKIT_VM_MIRROR wins over the sources and must be a URI', () => {
    const files = readSystemSources(join(samples, 'deb822'))
    expect(chooseMirror({ BPFKIT_VM_MIRROR: 'https://proxy.example/debian/' }, files)).toEqual({ uri: 'https://proxy.example/debian', from: 'BPFKIT_VM_MIRROR' })
    expect(() => chooseMirror({ BPFKIT_VM_MIRROR: 'proxy.example' }, files)).toThrow(/BPFKIT_VM_MIRROR=proxy.example: expected the URI of a Debian archive/)
  })

  test('a machine without a Debian archive in its sources is told to set BPFKIT_VM_MIRROR', () => {
    const files = readSystemSources(join(samples, 'no-debian'))
    expect(parseSources(files)).toHaveLength(1)
    expect(() => chooseMirror({}, files)).toThrow(/no Debian archive .* set BPFKIT_VM_MIRROR to the URI of a Debian mirror/)
    expect(() => chooseMirror({}, [])).toThrow(/in the apt sources: set BPFKIT_VM_MIRROR/)
  })
})
