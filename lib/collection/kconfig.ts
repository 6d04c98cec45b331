// The values behind `extern ... __kconfig` in BPF C: the running kernel's
// configuration, read as libbpf reads it (/boot/config-$(uname -r), else
// /proc/config.gz), and LINUX_KERNEL_VERSION from the release string. The
// linker turns these into the .kconfig map's contents.
import { existsSync, readFileSync } from 'node:fs'
import { release } from 'node:os'
import { gunzipSync } from 'node:zlib'
import { describeValue } from '../sys/options.js'

/** CONFIG_* name -> raw value: 'y', 'm', 'n' (for "is not set"), a number or a quoted string as written. */
export type KernelConfig = ReadonlyMap<string, string>

/** Parses the text of a kernel .config. Errors: RangeError naming a malformed line. */
export function parseKernelConfig(text: string): KernelConfig {
  if (typeof text !== 'string') throw new TypeError(`parseKernelConfig: text must be a string, got ${describeValue(text)}`)
  const out = new Map<string, string>()
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line)
    if (unset) return void out.set(unset[1], 'n')
    if (line === '' || line.startsWith('#')) return
    const set = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line)
    if (!set) throw new RangeError(`kernel config line ${i + 1} is neither CONFIG_X=value nor a comment: ${JSON.stringify(line.slice(0, 80))}`)
    out.set(set[1], set[2])
  })
  return out
}

/**
 * The running kernel's configuration, or undefined when neither file exists
 * (a kernel built without IKCONFIG and no /boot): externs that need it then
 * fail to load unless they are weak, as with libbpf.
 */
export function readKernelConfig(paths = [`/boot/config-${release()}`, '/proc/config.gz']): KernelConfig | undefined {
  for (const path of paths) {
    if (!existsSync(path)) continue
    const bytes = readFileSync(path)
    return parseKernelConfig((path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8'))
  }
  return undefined
}

/** KERNEL_VERSION(a, b, c) of a release string such as '6.18.44-fc-v1272', as LINUX_KERNEL_VERSION holds it. */
export function kernelVersionCode(rel: string = release()): number {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(rel)
  if (!m) throw new RangeError(`kernel release ${JSON.stringify(rel)} does not start with a version number`)
  // The patch level saturates at 255, as the kernel's own KERNEL_VERSION does since 4.9.256.
  return (Number(m[1]) << 16) + (Number(m[2]) << 8) + Math.min(Number(m[3] ?? 0), 255)
}
