// Using a closed object is one error everywhere: a BpfError with code EBADF
// and a message that says "already closed", whatever the object (map,
// program, kernel link, socket filter link, ring buffer, mapping) and
// whatever the call.
import { createSocket } from 'node:dgram'
import { expect, test } from 'vitest'
import { asm, BpfError, BpfLink, BpfMap, BpfProgram, features } from '../../lib/index.js'

function expectClosed(what: string, call: () => unknown): void {
  let err: unknown
  try {
    call()
  } catch (e) {
    err = e
  }
  expect(err, `${what} did not throw`).toBeInstanceOf(BpfError)
  expect((err as BpfError).code, what).toBe('EBADF')
  expect((err as BpfError).message, what).toMatch(/already closed/)
  // One error, not one per layer: the same command and syscall whether the
  // object, its Fd or the native slot noticed.
  expect((err as BpfError).command, what).toBe('fd')
  expect((err as BpfError).syscall, what).toBe('close')
}

test('a closed map: every call is the closed error', () => {
  const h = BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 4 })
  h.set(1, 1)
  h.close()
  const calls: Record<string, () => unknown> = {
    lookup: () => h.lookup(1),
    lookupInto: () => h.lookupInto(1, new Uint8Array(4)),
    has: () => h.has(1),
    update: () => h.update(1, 2),
    delete: () => h.delete(1),
    lookupAndDelete: () => h.lookupAndDelete(1),
    keys: () => [...h.keys()],
    entries: () => [...h.entries()],
    lookupBatch: () => h.lookupBatch(),
    lookupBatchBytes: () => h.lookupBatchBytes(),
    updateBatch: () => h.updateBatch([[1, 1]]),
    updateBatchBytes: () => h.updateBatchBytes(new Uint8Array(4), new Uint8Array(4)),
    deleteBatch: () => h.deleteBatch([1]),
    freeze: () => h.freeze(),
    info: () => h.info(),
    id: () => h.id,
    fd: () => h.fd,
    pin: () => h.pin('/sys/fs/bpf/bpfkit_closed_map'),
    mmap: () => h.mmap(),
    ringBuffer: () => h.ringBuffer(),
  }
  for (const [name, call] of Object.entries(calls)) expectClosed(`map.${name}`, call)
  h.close() // closing twice is a no-op

  const q = BpfMap.create({ type: 'queue', value: 'u32', maxEntries: 2 })
  q.close()
  expectClosed('queue.push', () => q.push(1))
  expectClosed('queue.pop', () => q.pop())
  expectClosed('queue.peek', () => q.peek())
  // Bloom filters came in Linux 5.16: left out where the probe says so.
  if (!features.supportsMapType('bloom_filter')) return
  const bloom = BpfMap.create({ type: 'bloom_filter', value: 'u32', maxEntries: 2 })
  bloom.close()
  expectClosed('bloom.mayContain', () => bloom.mayContain(1))
})

test('a closed mapping and a closed ring buffer: the closed error', async () => {
  using arr = BpfMap.create({ type: 'array', key: 'u32', value: 'u64', maxEntries: 2, flags: ['mmapable'] })
  const view = arr.mmap()
  view.close()
  expectClosed('mapping.get', () => view.get(0))
  expectClosed('mapping.set', () => view.set(0, 1n))
  expectClosed('mapping.buffer', () => view.buffer)

  const shared = arr.mmap()
  arr.close() // closes the mapping that borrows the map's fd
  expectClosed('mapping after its map closed', () => shared.get(1))

  using ringMap = BpfMap.create({ type: 'ringbuf', maxEntries: 4096 })
  const rb = ringMap.ringBuffer()
  rb.close()
  expectClosed('ringbuf.read', () => rb.read())
  expectClosed('ringbuf.consume', () => rb.consume(() => {}))
  expectClosed('ringbuf.pending', () => rb.pending)
  await expect(rb.wait()).rejects.toMatchObject({ code: 'EBADF', command: 'fd', message: expect.stringMatching(/already closed/) })
})

test('a closed program and closed links: the closed error', async () => {
  const prog = BpfProgram.loadSync({ type: 'socket_filter', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()], license: 'GPL' })
  const sock = createSocket('udp4')
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve))
  try {
    const link = BpfLink.attachSocketFilter(sock, prog)
    link.close()
    expectClosed('socket link.info', () => link.info())
    expectClosed('socket link.detach', () => link.detach())
    expectClosed('socket link.id', () => link.id)
    link.close()
  } finally {
    sock.close()
  }
  prog.close()
  expectClosed('program.fd', () => prog.fd)
  expectClosed('program.info', () => prog.info())
  expectClosed('program.xlated', () => prog.xlated())
  expectClosed('program.testRunSync', () => prog.testRunSync({ data: new Uint8Array(64) }))
  await expect(prog.testRun({ data: new Uint8Array(64) })).rejects.toMatchObject({ code: 'EBADF', command: 'fd', message: expect.stringMatching(/already closed/) })
  expectClosed('link.create with a closed program', () => BpfLink.create(prog, { attachType: 'cgroup_inet_ingress', targetFd: 0 }))
})
