// The committed generated files are what the generator writes from this
// machine's BTF, when that BTF is the one they were made from.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { BtfReader } from '../../lib/btf/reader.js'

const root = join(__dirname, '..', '..')

test('the BTF reader (the generator\'s too) parses a hand-made blob', () => {
  const strings = Buffer.from('\0u32\0', 'latin1')
  const b = Buffer.alloc(24 + 16 + strings.length)
  b.writeUInt16LE(0xeb9f, 0); b.writeUInt8(1, 2); b.writeUInt32LE(24, 4)
  b.writeUInt32LE(0, 8); b.writeUInt32LE(16, 12); b.writeUInt32LE(16, 16); b.writeUInt32LE(strings.length, 20)
  b.writeUInt32LE(1, 24); b.writeUInt32LE(1 << 24, 28); b.writeUInt32LE(4, 32); b.writeUInt32LE(32, 36)
  strings.copy(b, 40)
  const btf = new BtfReader(b)
  expect(btf.type(1)).toMatchObject({ kind: 'INT', name: 'u32', sizeOrType: 4 })
  expect(btf.intEncoding(btf.type(1))).toEqual({ signed: false, bool: false, bits: 32 })
  expect(btf.sizeof(1)).toBe(4)
  expect(() => new BtfReader(Buffer.alloc(24))).toThrow(/magic/)
})

test('the generated files have a DO NOT EDIT header and match a fresh run on the same kernel', (ctx) => {
  const enums = readFileSync(join(root, 'lib/sys/generated/kernel-enums.ts'), 'utf8')
  expect(enums.startsWith('// DO NOT EDIT')).toBe(true)
  const madeFrom = /from the BTF of Linux (\S+)\./.exec(enums)?.[1]
  if (!existsSync('/sys/kernel/btf/vmlinux')) return ctx.skip('no kernel BTF (/sys/kernel/btf/vmlinux) to generate from')
  // The generator names the release without its local build suffix.
  const running = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim().replace(/-.*/, '')
  if (madeFrom !== running) return ctx.skip(`the files were generated from Linux ${madeFrom}, this is ${running}: a fresh run would differ`)
  // The generator runs on the compiled BTF reader; `npm run gen` builds it.
  if (!existsSync(join(root, 'dist/btf/reader.js'))) return ctx.skip('dist/btf/reader.js not built (npm run build:ts)')
  const out = mkdtempSync(join(tmpdir(), 'bpfkit-gen-'))
  try {
    execFileSync(process.execPath, [join(root, 'scripts/gen-kernel-defs.mjs'), '/sys/kernel/btf/vmlinux', out])
    for (const f of ['lib/sys/generated/kernel-enums.ts', 'lib/sys/generated/kernel-layouts.ts', 'native/generated/bpf_attr.h']) {
      expect(readFileSync(join(out, f), 'utf8'), f).toBe(readFileSync(join(root, f), 'utf8'))
    }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
})
