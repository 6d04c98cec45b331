// Shared pieces of the collection kernel tests: where the C fixtures are,
// how to test-run a program whatever its type, and a check that a
// collection's fds are gone once it is closed.
import { join } from 'node:path'
import { expect } from 'vitest'
import { CollectionSpec, Fd, type BpfProgram } from '../../../lib/index.js'

/** test/fixtures/bpf/<name>: the checked-in objects built from the .bpf.c beside them. */
export function fixture(name: string): string {
  return join(__dirname, '..', '..', 'fixtures', 'bpf', name)
}

/** The spec of a fixture object ('subprogs' -> subprogs.bpf.o). */
export function fixtureSpec(name: string): CollectionSpec {
  return CollectionSpec.fromFile(fixture(`${name}.bpf.o`))
}

/** 64 bytes 1, 2, 3, ... 64: what the packet programs read (byte 12 holds 13). */
export const packet = new Uint8Array(64).map((_, i) => i + 1)

/** sizeof(struct __sk_buff): a ctx for skb programs, to set fields like mark (offset 8). */
export const SKB_CTX_SIZE = 192

/**
 * Test-runs `prog` once and returns the value its C code returned: syscall
 * programs run without input, the packet programs on `packet`.
 */
export async function retval(prog: BpfProgram, options: { ctx?: Uint8Array } = {}): Promise<number> {
  const input = prog.type === 'syscall' ? {} : { data: packet }
  return (await prog.testRun({ ...input, ...options })).retval
}

/** The bpfkit-owned fds open now, to compare before and after a collection lives and dies. */
export function ownedFds(): Set<number> {
  return new Set(Fd.openFds().map((f) => f.fd))
}

/** Fails when fds opened since `before` are still open. */
export function expectNoNewFds(before: Set<number>): void {
  const left = Fd.openFds().filter((f) => !before.has(f.fd)).map((f) => `fd ${f.fd} (${f.kind})`)
  expect(left).toEqual([])
}

/**
 * A map-of-fds value as user space reads it: the ID of the object in the
 * slot. Accepts a number, a bigint or the raw u32 bytes, so the checks do not
 * depend on how the map's BTF value type decodes.
 */
export function slotId(value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'number') return value
  if (typeof value === 'bigint') return Number(value)
  if (value instanceof Uint8Array) return new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(0, true)
  throw new TypeError(`unexpected map-of-fds value ${String(value)}`)
}
