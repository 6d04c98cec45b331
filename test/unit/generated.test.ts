// The committed generated files are what the generator writes from this
// machine's BTF, when that BTF is the one they were made from.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { parseBtf } from '../../scripts/btf-reader.mjs'

const root = join(__dirname, '..', '..')

test('the BTF reader parses a hand-made blob', () => {
  const strings = Buffer.from('\0u32\0', 'latin1')
  const b = Buffer.alloc(24 + 16 + strings.length)
  b.writeUInt16LE(0xeb9f, 0); b.writeUInt8(1, 2); b.writeUInt32LE(24, 4)
  b.writeUInt32LE(0, 8); b.writeUInt32LE(16, 12); b.writeUInt32LE(16, 16); b.writeUInt32LE(strings.length, 20)
  b.writeUInt32LE(1, 24); b.writeUInt32LE(1 << 24, 28); b.writeUInt32LE(4, 32); b.writeUInt32LE(32, 36)
  strings.copy(b, 40)
  const btf = parseBtf(b)
  expect(btf.types[1]).toMatchObject({ kind: 1, name: 'u32', size: 4 })
  expect(() => parseBtf(Buffer.alloc(24))).toThrow(/magic/)
})

test('the generated files have a DO NOT EDIT header and match a fresh run on the same kernel', () => {
  const enums = readFileSync(join(root, 'lib/sys/generated/kernel-enums.ts'), 'utf8')
  expect(enums.startsWith('// DO NOT EDIT')).toBe(true)
  const release = /from the BTF of Linux (\S+)\./.exec(enums)?.[1]
  if (!existsSync('/sys/kernel/btf/vmlinux') || release !== readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()) return
  const out = mkdtempSync(join(tmpdir(), 'bpfkit-gen-'))
  execFileSync(process.execPath, [join(root, 'scripts/gen-kernel-defs.mjs'), '/sys/kernel/btf/vmlinux', out])
  for (const f of ['lib/sys/generated/kernel-enums.ts', 'lib/sys/generated/kernel-layouts.ts', 'native/generated/bpf_attr.h']) {
    expect(readFileSync(join(out, f), 'utf8')).toBe(readFileSync(join(root, f), 'utf8'))
  }
})
