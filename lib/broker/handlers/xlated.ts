// prog_xlated: one of the tenant's programs as the verifier left it, for
// `bpfkit --broker SOCK dump prog ID`. The kernel hands translated
// instructions only to callers with CAP_BPF in the initial namespace, which a
// tenant lacks, so the broker reads them and passes on what the kernel itself
// shows a reader without raw-dump rights (bpf_insn_prepare_dump): helper and
// kfunc call targets zeroed (they are kernel addresses, relative to
// __bpf_call_base). It goes further where the kernel trusts its reader: map
// IDs the tenant may not see are zeroed (as list's mapIds are redacted), and
// 64-bit constants in the kernel's half of the address space (a resolved
// __ksym, a callback's address) are zeroed too, negative ones included.
import { native } from '../../sys/index.js'
import type { RequestBody } from '../protocol.js'
import { visible } from '../scope.js'
import type { Handler } from '../state.js'
import { openVisible } from './view-object.js'
import { brokerError } from '../errors.js'

const CALL = 0x85
const LD_IMM64 = 0x18
/** src_reg of a call to a function of the same program: its imm is a relative offset. */
const PSEUDO_CALL = 1
/** src_reg values prepare_dump gives an ld_imm64 that loads a map (imm: its ID) or a map value's address. */
const PSEUDO_MAP_FD = 1
const PSEUDO_MAP_VALUE = 2
/**
 * Kernel addresses on x86-64 and arm64 (the architectures bpfkit ships for)
 * have the top bit set, whatever the paging depth: 5-level x86-64 starts at
 * 0xff00..., 52-bit arm64 at 0xfff0..., so the whole upper half is zeroed.
 */
const KERNEL_HALF = 0x8000000000000000n

/**
 * A copy of translated instructions `bytes` with what the tenant may not
 * learn zeroed: call targets other than its own functions, IDs of maps
 * `mapVisible` denies, ld_imm64 values in the kernel's address range.
 */
export function redactXlated(bytes: Uint8Array, mapVisible: (id: number) => boolean): Uint8Array {
  const out = Uint8Array.from(bytes)
  const v = new DataView(out.buffer)
  for (let at = 0; at + 8 <= out.length; at += 8) {
    const code = v.getUint8(at)
    const src = v.getUint8(at + 1) >> 4
    if (code === CALL) {
      // A call to one of the program's own functions keeps its target only
      // while it is one: an offset to an instruction of this program (the
      // interpreter's rewritten form holds a kernel-text offset instead).
      const target = at / 8 + 1 + v.getInt32(at + 4, true)
      if (src !== PSEUDO_CALL || target < 0 || target >= out.length / 8) v.setInt32(at + 4, 0, true)
    }
    if (code !== LD_IMM64 || at + 16 > out.length) continue
    if (src === PSEUDO_MAP_FD || src === PSEUDO_MAP_VALUE) {
      if (!mapVisible(v.getUint32(at + 4, true))) v.setInt32(at + 4, 0, true)
    } else {
      const value = (BigInt(v.getUint32(at + 12, true)) << 32n) | BigInt(v.getUint32(at + 4, true))
      if (value >= KERNEL_HALF) {
        v.setInt32(at + 4, 0, true)
        v.setInt32(at + 12, 0, true)
      }
    }
    at += 8 // the second half of the ld_imm64
  }
  return out
}

const progXlated: Handler<RequestBody<'prog_xlated'>> = (ctx, req) => {
  const { tenant, state } = ctx
  // Only programs the broker loaded or adopted for this tenant: one it merely
  // sees (an fd the host passed to its task, a link on its cgroup) may be the
  // host's code, which the kernel would not show the tenant either.
  if (tenant !== null && state.registry.find('prog', req.id)?.tenant !== tenant.name) {
    openVisible(ctx, 'prog', req.id).close() // ENOENT when it is not even in view
    throw brokerError('EPERM', `prog ${req.id} is in your view but was not loaded or adopted through the broker: only those programs' instructions are shown`, { rule: 'origin' })
  }
  const fd = openVisible(ctx, 'prog', req.id)
  try {
    const bytes = native.progGetXlatedInsns(fd.fd)
    const owners = tenant ? state.owners(tenant) : undefined
    const mapVisible = (id: number) => tenant === null || visible(owners!, tenant.name, 'map', id)
    return { reply: { insns: redactXlated(bytes, mapVisible) } }
  } finally {
    fd.close()
  }
}

export const xlatedHandlers: Record<'prog_xlated', Handler> = { prog_xlated: progXlated }
