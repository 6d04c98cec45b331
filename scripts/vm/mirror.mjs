// Which Debian mirror the VM runner downloads kernels from. No host name is
// written in the code: the mirror is the one this machine's apt already uses
// (its sources, one-line *.list and deb822 *.sources), or BPFKIT_VM_MIRROR
// when set (any Debian archive: a local mirror, a proxy, a snapshot URL).
// Only the mirror's URI is taken from the system; the runner's own apt
// configuration still lists the suites it needs (see kernels.mjs).
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export const MIRROR_ENV = 'BPFKIT_VM_MIRROR'

/**
 * The entries of apt sources files, each { types, uris, suites, components,
 * signedBy, file }. `files` are { path, text }: one-line format for paths
 * ending .list, deb822 for .sources. Disabled entries (deb822 Enabled: no)
 * and comments are left out.
 */
export function parseSources(files) {
  const out = []
  for (const { path, text } of files) {
    if (path.endsWith('.sources')) out.push(...parseDeb822(text, path))
    else out.push(...parseOneLine(text, path))
  }
  return out
}

function parseOneLine(text, file) {
  const out = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim()
    if (!line) continue
    // deb [ opt=value opt2=a,b ] uri suite [component...]
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)(.*)$/.exec(line)
    if (!m) continue
    const options = Object.fromEntries((m[2] ?? '').trim().split(/\s+/).filter(Boolean).map((o) => o.split('=')))
    out.push({
      types: [m[1]], uris: [m[3]], suites: [m[4]], components: m[5].trim().split(/\s+/).filter(Boolean),
      signedBy: options['signed-by'], file,
    })
  }
  return out
}

function parseDeb822(text, file) {
  const out = []
  // Stanzas are separated by blank lines; '#' lines are comments; a line
  // starting with white space continues the field before it.
  for (const stanza of text.split(/\n[ \t]*\n/)) {
    const fields = {}
    let last
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#') || !line.trim()) continue
      if (/^\s/.test(line)) {
        if (last) fields[last] += `\n${line.trim()}`
        continue
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line)
      if (!m) continue
      last = m[1].toLowerCase()
      fields[last] = m[2].trim()
    }
    if (!fields.types || !fields.uris) continue
    if (/^(no|false)$/i.test(fields.enabled ?? '')) continue
    const words = (v) => (v ?? '').split(/\s+/).filter(Boolean)
    // Signed-By may hold a key block (several lines) instead of a path.
    const signedBy = fields['signed-by'] && !fields['signed-by'].includes('\n') ? fields['signed-by'] : undefined
    out.push({ types: words(fields.types), uris: words(fields.uris), suites: words(fields.suites), components: words(fields.components), signedBy, file })
  }
  return out
}

// Debian's release code names, so that a third-party repository for Debian
// (its own suite names, usually not 'main') is not taken for the archive.
const DEBIAN_SUITES = /^(buster|bullseye|bookworm|trixie|forky|duke|sid|unstable|testing|stable|oldstable)(-updates|-backports)?$/

/**
 * The Debian archive among `entries`: the first binary ('deb') source with a
 * Debian suite (not -security, which is another archive) and the main
 * component. Returns { uri, signedBy, file } or undefined.
 */
export function debianArchive(entries) {
  for (const e of entries) {
    if (!e.types.includes('deb') || !e.components.includes('main')) continue
    if (!e.suites.some((s) => DEBIAN_SUITES.test(s))) continue
    const uri = e.uris.find((u) => /^[a-z+]+:/.test(u))
    if (uri) return { uri: uri.replace(/\/+$/, ''), signedBy: e.signedBy, file: e.file }
  }
  return undefined
}

/** The apt sources files of a system whose apt configuration lives in `etc` (/etc/apt): sources.list, then sources.list.d in name order. */
export function readSystemSources(etc = '/etc/apt') {
  const files = []
  const main = join(etc, 'sources.list')
  if (existsSync(main)) files.push({ path: main, text: readFileSync(main, 'utf8') })
  const dir = join(etc, 'sources.list.d')
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      // apt reads only these two suffixes; '.list.disabled' and the like are off.
      if (name.endsWith('.list') || name.endsWith('.sources')) files.push({ path: join(dir, name), text: readFileSync(join(dir, name), 'utf8') })
    }
  }
  return files
}

/**
 * The mirror to use: BPFKIT_VM_MIRROR from `env` when set, else the Debian
 * archive in the system's apt sources. Throws, saying what to set, when
 * there is neither (a machine that is not Debian).
 */
export function chooseMirror(env = process.env, files = readSystemSources()) {
  const fromEnv = env[MIRROR_ENV]?.trim()
  if (fromEnv) {
    if (!/^[a-z+]+:\/\/\S+$/.test(fromEnv)) throw new Error(`${MIRROR_ENV}=${fromEnv}: expected the URI of a Debian archive, as in an apt sources entry`)
    return { uri: fromEnv.replace(/\/+$/, ''), from: MIRROR_ENV }
  }
  const found = debianArchive(parseSources(files))
  if (!found) {
    throw new Error(`no Debian archive (a 'deb' entry with a Debian suite and main) in ${files.map((f) => f.path).join(', ') || 'the apt sources'}: set ${MIRROR_ENV} to the URI of a Debian mirror`)
  }
  return { uri: found.uri, signedBy: found.signedBy, from: found.file }
}
