// Places a test makes for itself and removes afterwards: a private bpffs
// mount and a child cgroup. Never the host's /sys/fs/bpf or root cgroup.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function privateBpffs(): { path: string; [Symbol.dispose](): void } {
  const path = mkdtempSync(join(tmpdir(), 'bpfkit-fs-'))
  execFileSync('mount', ['-t', 'bpf', 'bpf', path])
  return {
    path,
    [Symbol.dispose]() {
      execFileSync('umount', [path])
      rmSync(path, { recursive: true, force: true })
    },
  }
}

/** Where cgroup v2 is mounted: /sys/fs/cgroup on unified hosts, .../unified on hybrid ones. */
export function cgroup2Root(): string {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ')
    if (right?.startsWith('cgroup2 ')) return left.split(' ')[4]
  }
  throw new Error('no cgroup2 mount found')
}

export function childCgroup(): { path: string; [Symbol.dispose](): void } {
  const path = join(cgroup2Root(), `bpfkit-test-${process.pid}-${Date.now()}`)
  mkdirSync(path)
  return {
    path,
    [Symbol.dispose]() {
      rmdirSync(path)
    },
  }
}
