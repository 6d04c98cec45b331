// Pinning a whole loaded collection under one bpffs directory, as `bpftool
// prog loadall` does, so its maps, programs and links outlive the process
// that loaded them: <dir>/maps/<name>, <dir>/progs/<name>, <dir>/links/<name>.
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'
import type { BpfLink } from '../link/link.js'
import type { Collection } from './collection.js'
import type { CollectionLinks } from './attach.js'

export interface PinnedCollection {
  maps: Record<string, string>
  programs: Record<string, string>
  links: Record<string, string>
}

interface Pinnable {
  readonly pinnedAt: string | undefined
  pin(path: string): void
  unpin(): void
}

// bpffs refuses names with a dot (reserved, EPERM); libbpf pins '.rodata' as '_rodata' too.
// Names come from the object's symbols, unchecked: anything but letters,
// digits and '_' (a '/', which would pin into a subdirectory) becomes '_' too.
export const pinName = (name: string): string => name.replace(/[^A-Za-z0-9_]/g, '_')

/**
 * Pins every map, program and link of `coll` (and `links`) under `dir` (a
 * bpffs directory, made if missing; its parent must exist). A map already pinned (LIBBPF_PIN_BY_NAME)
 * keeps its pin, and is listed at it. On any failure the pins this call made
 * are removed, and the directories it made too, before the error is thrown.
 * Errors: EEXIST (something is pinned there already, or two names would pin
 * alike once made safe), EPERM (not a bpffs), ENOENT.
 */
export function pinCollection(coll: Collection, dir: string, links?: CollectionLinks): PinnedCollection {
  const made: Pinnable[] = []
  const dirs: string[] = []
  const out: PinnedCollection = { maps: {}, programs: {}, links: {} }
  const pinEach = (sub: string, objects: Record<string, Pinnable>, into: Record<string, string>) => {
    const entries = Object.entries(objects)
    if (entries.length === 0) return
    const where = join(dir, sub)
    if (mkdirOnce(dir)) dirs.push(dir)
    if (mkdirOnce(where)) dirs.push(where)
    const seen = new Map<string, string>()
    for (const [name] of entries) {
      const other = seen.get(pinName(name))
      if (other !== undefined) throw Object.assign(new Error(`pinCollection: '${other}' and '${name}' would both be pinned as ${join(where, pinName(name))}`), { code: 'EEXIST' })
      seen.set(pinName(name), name)
    }
    for (const [name, o] of entries) {
      if (o.pinnedAt !== undefined) {
        into[name] = o.pinnedAt
        continue
      }
      const path = join(where, pinName(name))
      o.pin(path)
      made.push(o)
      into[name] = path
    }
  }
  try {
    pinEach('maps', coll.maps as unknown as Record<string, Pinnable>, out.maps)
    pinEach('progs', coll.programs as unknown as Record<string, Pinnable>, out.programs)
    if (links) pinEach('links', links.links as Record<string, BpfLink>, out.links)
    return out
  } catch (e) {
    for (const o of made.reverse()) {
      try { o.unpin() } catch { /* the failure being reported matters more */ }
    }
    for (const d of dirs.reverse()) {
      try {
        if (readdirSync(d).length === 0) rmdirSync(d)
      } catch { /* left for the caller to see */ }
    }
    throw e
  }
}

// Makes `path` unless it is there; says whether it did.
function mkdirOnce(path: string): boolean {
  if (existsSync(path)) return false
  mkdirSync(path)
  return true
}
