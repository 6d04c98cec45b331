// Fails a test file that leaves fds open: bpfkit's own Fd objects (with the
// stack that made each when BPFKIT_TRACE_FDS=1) and any bpf object fd in the
// process's table, so fds opened around bpfkit are caught too.
import { readdirSync, readlinkSync } from 'node:fs'
import { afterAll, beforeAll } from 'vitest'
import { Fd } from '../../lib/sys/index.js'

let ownedBefore: Set<number>
let bpfBefore: Set<string>

// "fd -> anon_inode:bpf-map" etc. for every bpf object, BTF and bpffs context
// fd of this process.
function bpfFds(): Set<string> {
  const out = new Set<string>()
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`)
      if (/^anon_inode:\[?(bpf|btf|fscontext)/.test(target)) out.add(`${fd} -> ${target}`)
    } catch {
      // closed while listing (readdir's own fd)
    }
  }
  return out
}

beforeAll(() => {
  ownedBefore = new Set(Fd.openFds().map((f) => f.fd))
  bpfBefore = bpfFds()
})

afterAll(() => {
  const leaked = Fd.openFds().filter((f) => !ownedBefore.has(f.fd))
  const raw = [...bpfFds()].filter((f) => !bpfBefore.has(f))
  if (leaked.length > 0 || raw.length > 0) {
    const lines = leaked.map((f) => `  fd ${f.fd} (${f.kind})${f.stack ? `\n${f.stack}` : ''}`)
    throw new Error(`test file leaked fds:\n${[...lines, ...raw.map((r) => `  ${r}`)].join('\n')}`)
  }
})
