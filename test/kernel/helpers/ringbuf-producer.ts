// A socket filter that writes the u64 `tag` to a ring buffer once per run
// (bpf_ringbuf_output through BPF_PROG_TEST_RUN), hand-encoded so that the
// ring buffer tests need nothing of the object layer but the map.
import { kernel } from '../../../lib/index.js'
import type { BpfMap } from '../../../lib/index.js'
import { native } from '../../../lib/sys/index.js'
import { add64Imm, call, exit, ldMapFd, mov64Imm, mov64Reg, program, stxdw } from './raw.js'

export function producer(ring: BpfMap, tag = 7) {
  const insns = program(
    mov64Imm(2, tag), stxdw(10, 2, -8),
    ldMapFd(1, ring.fd), mov64Reg(2, 10), add64Imm(2, -8), mov64Imm(3, 8), mov64Imm(4, 0),
    call(kernel.helpers.ringbuf_output),
    mov64Imm(0, 0), exit(),
  )
  const { fd } = native.progLoadSync({ progType: kernel.progTypes.socket_filter, insns, license: 'GPL' })
  const data = new Uint8Array(64)
  return {
    run: (repeat = 1) => native.progTestRun(fd, { data, repeat }),
    runSync: (repeat = 1) => native.progTestRunSync(fd, { data, repeat }),
    close: () => native.closeFd(fd),
  }
}
