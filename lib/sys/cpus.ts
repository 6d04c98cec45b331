// The CPUs per-CPU work is done on: perf events sampled or read per CPU.
import { readFileSync } from 'node:fs'
import { native } from './addon.js'

/** The online CPUs, from /sys/devices/system/cpu/online ('0-3,8'); every possible CPU when that cannot be read. */
export function onlineCpus(): number[] {
  let text: string
  try {
    text = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim()
  } catch {
    return Array.from({ length: native.possibleCpus() }, (_, i) => i)
  }
  const out: number[] = []
  for (const part of text.split(',')) {
    if (part === '') continue
    const m = /^(\d+)(?:-(\d+))?$/.exec(part)
    if (!m) throw new Error(`/sys/devices/system/cpu/online: cannot read '${text}'`)
    const lo = Number(m[1])
    const hi = m[2] === undefined ? lo : Number(m[2])
    for (let c = lo; c <= hi; c++) out.push(c)
  }
  return out
}
