// openKernelBtf (lib/collection/kernel-btf.ts): the CO-RE target BTF, from
// the running kernel, a BtfReader, raw bytes, or a file that is raw BTF or an
// ELF file with a .BTF section; and its errors.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { ElfError } from '../../lib/collection/elf.js'
import { openKernelBtf } from '../../lib/collection/kernel-btf.js'

const dir = mkdtempSync(join(tmpdir(), 'bpfkit-kernel-btf-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const builder = new BtfBuilder()
builder.struct('target_thing', [{ name: 'x', type: builder.int('int', 4, { signed: true }) }])
const raw = builder.bytes()

// A minimal ELF64 little-endian x86-64 file (not BPF: ElfFile would refuse
// it) with a section table: NULL, .shstrtab and, optionally, .BTF.
function x86Elf(btf?: Uint8Array): Uint8Array {
  const names = Buffer.from('\0.shstrtab\0.BTF\0')
  const body = btf ?? new Uint8Array(0)
  const shnum = btf ? 3 : 2
  const namesAt = 64
  const btfAt = namesAt + names.length
  const shoff = Math.ceil((btfAt + body.length) / 8) * 8
  const out = Buffer.alloc(shoff + shnum * 64)
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0)
  out.writeUInt16LE(2, 16) // ET_EXEC
  out.writeUInt16LE(62, 18) // EM_X86_64
  out.writeUInt32LE(1, 20)
  out.writeBigUInt64LE(BigInt(shoff), 40)
  out.writeUInt16LE(64, 52)
  out.writeUInt16LE(64, 58)
  out.writeUInt16LE(shnum, 60)
  out.writeUInt16LE(1, 62)
  out.set(names, namesAt)
  out.set(body, btfAt)
  const section = (i: number, name: number, type: number, offset: number, size: number) => {
    const at = shoff + i * 64
    out.writeUInt32LE(name, at)
    out.writeUInt32LE(type, at + 4)
    out.writeBigUInt64LE(BigInt(offset), at + 24)
    out.writeBigUInt64LE(BigInt(size), at + 32)
  }
  section(1, 1, 3, namesAt, names.length)
  if (btf) section(2, 11, 1, btfAt, btf.length)
  return out
}

describe('openKernelBtf(source)', () => {
  test('a BtfReader is used as it is, without modules', () => {
    const r = new BtfReader(raw)
    const t = openKernelBtf(r)
    expect(t.vmlinux).toBe(r)
    expect(t.modules).toBeUndefined()
  })

  test('raw BTF bytes, and a raw BTF file', () => {
    expect(openKernelBtf(raw).vmlinux.find('target_thing', 'STRUCT')).toBe(2)
    const path = join(dir, 'custom.btf')
    writeFileSync(path, raw)
    const t = openKernelBtf(path)
    expect(t.vmlinux.find('target_thing', 'STRUCT')).toBe(2)
    expect(t.modules).toBeUndefined()
  })

  test('an ELF file with .BTF: a BPF object (through ElfFile) and another machine\'s ELF (a vmlinux image)', () => {
    const bpfObject = join(__dirname, '..', 'fixtures', 'bpf', 'core.bpf.o')
    expect(openKernelBtf(bpfObject).vmlinux.find('core_point', 'STRUCT')).toBeGreaterThan(0)
    const path = join(dir, 'vmlinux-image')
    writeFileSync(path, x86Elf(raw))
    expect(openKernelBtf(path).vmlinux.find('target_thing', 'STRUCT')).toBe(2)
    expect(openKernelBtf(readFileSync(path)).vmlinux.find('target_thing', 'STRUCT')).toBe(2)
  })

  test('errors: a missing file (ENOENT, naming it), neither BTF nor ELF, ELF without .BTF, a wrong argument', () => {
    const missing = join(dir, 'nope.btf')
    let err: NodeJS.ErrnoException | undefined
    try {
      openKernelBtf(missing)
    } catch (e) {
      err = e as NodeJS.ErrnoException
    }
    expect(err?.code).toBe('ENOENT')
    expect(err?.message).toContain(missing)
    expect(() => openKernelBtf(new Uint8Array([1, 2, 3, 4, 5]))).toThrow(/neither raw BTF .* nor an ELF file/)
    expect(() => openKernelBtf(x86Elf())).toThrow(ElfError)
    expect(() => openKernelBtf(x86Elf())).toThrow(/has no \.BTF section/)
    expect(() => openKernelBtf(x86Elf().subarray(0, 40))).toThrow(ElfError)
    expect(() => openKernelBtf(42 as never)).toThrow(TypeError)
  })
})

describe.skipIf(!existsSync('/sys/kernel/btf/vmlinux'))('openKernelBtf() on this host', () => {
  test('vmlinux from /sys/kernel/btf, read once; modules split on it, listed lazily', () => {
    const t = openKernelBtf()
    expect(openKernelBtf()).toBe(t)
    expect(t.vmlinux.find('task_struct', 'STRUCT')).toBeGreaterThan(0)
    const modules = [...t.modules!()]
    for (const m of modules) {
      expect(m.btf.base).toBe(t.vmlinux)
      expect(m.btf.firstId).toBe(t.vmlinux.count + 1)
    }
    expect(t.modules!()).toBe(t.modules!())
  })
})
