// Reading policies back from where the kernel shows them: bpffs mount
// options (as in /proc/self/mountinfo or `mount -o`), and a token's fdinfo.
import { readFileSync } from 'node:fs'
import { findEnumValue } from '../sys/names.js'
import { describeValue } from '../sys/options.js'
import { ALL, kindNames, kinds, type PolicyKind, type PolicyMasks } from './kinds.js'

const optionKind = new Map<string, PolicyKind>(kindNames.map((k) => [kinds[k].option, k]))

/**
 * Parses bpffs mount options ("rw,relatime,delegate_cmds=map_create:prog_load")
 * or a list of `key=value` entries, the way the kernel's bpf_parse_param
 * does: within one value, names (any case) and `any` add bits, while a
 * number (0x.., 0.. octal, or decimal) replaces the mask built so far; each
 * entry then adds to its kind. Options other than delegate_* are ignored.
 * Errors: TypeError naming the entry with an unknown name or bad number.
 */
export function mountOptionMasks(options: string | readonly string[]): PolicyMasks {
  if (typeof options !== 'string' && !Array.isArray(options)) {
    throw new TypeError(`mount options must be a string ('delegate_cmds=map_create,...') or an array of strings, got ${describeValue(options)}`)
  }
  const entries = typeof options === 'string' ? options.split(',') : options
  const masks: PolicyMasks = { cmds: 0n, maps: 0n, progs: 0n, attachs: 0n }
  for (const entry of entries) {
    if (typeof entry !== 'string') throw new TypeError(`mount options must be strings, got ${describeValue(entry)}`)
    const eq = entry.indexOf('=')
    const key = eq < 0 ? entry.trim() : entry.slice(0, eq).trim()
    const kind = optionKind.get(key)
    if (kind === undefined) continue
    if (eq < 0) throw new TypeError(`mount option ${key} needs a value`)
    masks[kind] |= parseValue(kind, entry.slice(eq + 1).trim(), key)
  }
  return masks
}

function parseValue(kind: PolicyKind, value: string, key: string): bigint {
  let mask = 0n
  for (const item of value.split(':')) {
    if (item === 'any') {
      mask |= ALL
      continue
    }
    const v = findEnumValue(kinds[kind].table, item, { ignoreCase: true })
    if (v !== undefined && v < 64) {
      mask |= 1n << BigInt(v)
      continue
    }
    const n = parseKernelU64(item)
    if (n === undefined) throw new TypeError(`${key}: '${item}' is neither a known ${kinds[kind].noun} nor a number`)
    mask = n
  }
  return mask
}

// kstrtou64(s, 0): "0x" hex, leading "0" octal, else decimal; one trailing newline allowed.
function parseKernelU64(s: string): bigint | undefined {
  const t = s.endsWith('\n') ? s.slice(0, -1) : s
  let digits: RegExp
  let text: string
  if (/^0[xX]/.test(t)) {
    digits = /^[0-9a-fA-F]+$/
    text = t.slice(2)
    if (!digits.test(text)) return undefined
    text = `0x${text}`
  } else if (t.length > 1 && t.startsWith('0')) {
    if (!/^[0-7]+$/.test(t.slice(1))) return undefined
    text = `0o${t.slice(1)}`
  } else {
    if (!/^[0-9]+$/.test(t)) return undefined
    text = t
  }
  const n = BigInt(text)
  return n > ALL ? undefined : n
}

export interface MountinfoEntry {
  mountId: number
  mountPoint: string
  fsType: string
  source: string
  superOptions: string
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** The entries of a mountinfo file (default /proc/self/mountinfo). */
export function readMountinfo(text: string = readFileSync('/proc/self/mountinfo', 'utf8')): MountinfoEntry[] {
  if (typeof text !== 'string') throw new TypeError(`readMountinfo: text must be mountinfo text (a string), got ${describeValue(text)}`)
  const out: MountinfoEntry[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const sep = line.indexOf(' - ')
    if (sep < 0) continue
    const left = line.slice(0, sep).split(' ')
    const right = line.slice(sep + 3).split(' ')
    out.push({
      mountId: Number(left[0]),
      mountPoint: unescape(left[4] ?? ''),
      fsType: right[0] ?? '',
      source: unescape(right[1] ?? ''),
      superOptions: right[2] ?? '',
    })
  }
  return out
}

/**
 * The bpffs mounted at `mountPoint`, from mountinfo text. When several mounts
 * stack there, the last (visible) one counts. Errors: Error when nothing or
 * something other than bpffs is mounted there.
 */
export function bpffsMountEntry(mountPoint: string, mountinfo?: string): MountinfoEntry {
  if (typeof mountPoint !== 'string') throw new TypeError(`bpffs mount point must be a path (a string), got ${describeValue(mountPoint)}`)
  const entries = readMountinfo(mountinfo).filter((e) => e.mountPoint === mountPoint)
  const top = entries[entries.length - 1]
  if (top === undefined) throw new Error(`no filesystem is mounted at ${mountPoint}`)
  if (top.fsType !== 'bpf') throw new Error(`${mountPoint} is a ${top.fsType} mount, not bpffs`)
  return top
}

/**
 * The masks in a token's fdinfo text (/proc/<pid>/fdinfo/<fd>): lines
 * `allowed_cmds:\tany` or `allowed_maps:\t0x6`. Errors: Error when a line is
 * missing or malformed (the fd is not a token).
 */
export function fdinfoMasks(text: string): PolicyMasks {
  if (typeof text !== 'string') throw new TypeError(`fdinfo must be the text of /proc/<pid>/fdinfo/<fd> (a string), got ${describeValue(text)}`)
  const masks: PolicyMasks = { cmds: 0n, maps: 0n, progs: 0n, attachs: 0n }
  for (const kind of kindNames) {
    const field = kinds[kind].allowed
    const m = new RegExp(`^${field}:\\s*(\\S+)\\s*$`, 'm').exec(text)
    if (!m) throw new Error(`fdinfo has no ${field} line: not a BPF token`)
    const v = m[1] === 'any' ? ALL : parseKernelU64(m[1])
    if (v === undefined) throw new Error(`fdinfo ${field}: cannot read '${m[1]}'`)
    masks[kind] = v
  }
  return masks
}
