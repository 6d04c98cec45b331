// The BPF objects the package ships (bpf/, the guard) are the same file on
// every prebuild platform: each must be a BPF relocatable object, 64-bit and
// little-endian (x86-64 and arm64 kernels are both little-endian and refuse
// the other byte order), and its source must not use libbpf's per-
// architecture constructs (pt_regs access), which compile differently for
// each target. Then one object serves linux-x64 and linux-arm64 alike.
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'

const root = join(__dirname, '..', '..')
const EM_BPF = 247
const ET_REL = 1

const walk = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]))
const shipped = walk(join(root, 'bpf'))
const objects = shipped.filter((f) => f.endsWith('.o'))

/** The first 64 bytes of `file`: an ELF64 header. */
function head(file: string): Buffer {
  const b = Buffer.alloc(64)
  const fd = openSync(file, 'r')
  try {
    readSync(fd, b, 0, 64, 0)
  } finally {
    closeSync(fd)
  }
  return b
}

/** The fields of an ELF header that decide where an object can be loaded. */
function elfHeader(b: Buffer) {
  const le = b[5] === 1
  return {
    magic: b.subarray(0, 4).toString('latin1'),
    class64: b[4] === 2,
    littleEndian: le,
    type: le ? b.readUInt16LE(16) : b.readUInt16BE(16),
    machine: le ? b.readUInt16LE(18) : b.readUInt16BE(18),
  }
}

describe('shipped BPF objects are architecture-neutral', () => {
  test('the package ships at least the guard', () => {
    expect(objects.map((f) => f.slice(root.length + 1))).toContain('bpf/guard/guard.bpf.o')
  })

  test.each(objects.map((f) => [f.slice(root.length + 1), f]))('%s is a 64-bit little-endian BPF relocatable object', (_name, file) => {
    expect(elfHeader(head(file))).toEqual({ magic: '\x7fELF', class64: true, littleEndian: true, type: ET_REL, machine: EM_BPF })
  })

  test.each(shipped.filter((f) => /\.(c|h)$/.test(f)).map((f) => [f.slice(root.length + 1), f]))('%s uses no per-architecture libbpf macros', (_name, file) => {
    const arch = readFileSync(file, 'utf8').match(/\b(PT_REGS_\w+|BPF_K(?:RET)?PROBE\w*|BPF_U(?:RET)?PROBE\w*|BPF_KSYSCALL|__TARGET_ARCH_\w+|struct pt_regs)\b/g)
    expect(arch ?? []).toEqual([])
  })

  test('the check tells a big-endian or non-BPF object apart', () => {
    // The guard's header marked big-endian (as clang -target bpfeb writes it).
    const be = head(join(root, 'bpf/guard/guard.bpf.o'))
    be[5] = 2
    expect(elfHeader(be).littleEndian).toBe(false)
    // The x86-64 or arm64 ELF of Node itself: no BPF object.
    const node = elfHeader(head(process.execPath))
    expect(node.machine).not.toBe(EM_BPF)
    expect(node.type).not.toBe(ET_REL)
  })
})
