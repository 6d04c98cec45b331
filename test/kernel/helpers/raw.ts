// Hand-encoded instructions and BTF for the sys-layer tests, so they need
// nothing above lib/sys. (The object layer has the real assembler.)
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

function insn(code: number, dst: number, src: number, off: number, imm: number): Uint8Array {
  const b = new Uint8Array(8)
  const v = new DataView(b.buffer)
  v.setUint8(0, code)
  v.setUint8(1, (src << 4) | dst)
  v.setInt16(2, off, true)
  v.setInt32(4, imm, true)
  return b
}

export const mov64Imm = (dst: number, imm: number) => insn(0xb7, dst, 0, 0, imm)
export const exit = () => insn(0x95, 0, 0, 0, 0)
export const call = (helper: number) => insn(0x85, 0, 0, 0, helper)
export const ldxw = (dst: number, src: number, off: number) => insn(0x61, dst, src, off, 0)
export const mov64Reg = (dst: number, src: number) => insn(0xbf, dst, src, 0, 0)
export const add64Imm = (dst: number, imm: number) => insn(0x07, dst, 0, 0, imm)
export const stxdw = (dst: number, src: number, off: number) => insn(0x7b, dst, src, off, 0)
/** ld_imm64 with BPF_PSEUDO_MAP_FD: two slots. */
export const ldMapFd = (dst: number, fd: number) => program(insn(0x18, dst, 1, 0, fd), insn(0, 0, 0, 0, 0))

export function program(...insns: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(insns.reduce((n, b) => n + b.length, 0))
  let at = 0
  for (const b of insns) {
    out.set(b, at)
    at += b.length
  }
  return out
}

/** r0 = retval; exit */
export const returnImm = (retval: number) => program(mov64Imm(0, retval), exit())

/** Raw BTF with one type: a signed 32-bit int named "int". */
export function intBtf(): Uint8Array {
  const strings = Buffer.from('\0int\0', 'latin1')
  const b = new Uint8Array(24 + 16 + strings.length)
  const v = new DataView(b.buffer)
  v.setUint16(0, 0xeb9f, true)
  v.setUint8(2, 1) // version
  v.setUint32(4, 24, true) // hdr_len
  v.setUint32(8, 0, true) // type_off
  v.setUint32(12, 16, true) // type_len
  v.setUint32(16, 16, true) // str_off
  v.setUint32(20, strings.length, true)
  v.setUint32(24, 1, true) // name_off "int"
  v.setUint32(28, 1 << 24, true) // kind INT
  v.setUint32(32, 4, true) // size
  v.setUint32(36, (1 << 24) | 32, true) // signed, 32 bits
  b.set(strings, 40)
  return b
}

export const repoRoot = join(__dirname, '..', '..', '..')

/**
 * The compiled form of the tenant fixture test/fixtures/tenant/<name>.ts
 * (built against dist/ by the suite's global setup,
 * test/setup/build-fixtures.mjs), to run with node in a child process.
 */
export function tenantFixture(name: string): string {
  return join(repoRoot, '.cache', 'fixtures', 'tenant', `${name}.js`)
}

/**
 * Runs the tenant fixture `name` as root of a fresh user namespace
 * (util-linux unshare) and returns what it reported. Node is
 * multi-threaded, so the namespace must be made for a child, never for the
 * test runner; the fixture runs the compiled package, so its errors are
 * exactly those users see.
 */
export function inUserNamespace(name: string, unshareArgs: string[] = []): unknown {
  const r = spawnSync('unshare', ['--user', '--map-root-user', ...unshareArgs, process.execPath, tenantFixture(name)], {
    encoding: 'utf8',
    timeout: 20_000,
  })
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop() as string)
}
