// A loaded program's whole name. The kernel keeps 15 characters of a name
// (BPF_OBJ_NAME_LEN), but a program loaded with BTF names its main function
// in its func_info, in full: bpftool prints that one, and so does bpfkit.
import { Btf } from '../btf/btf.js'
import type { BtfReader } from '../btf/reader.js'
import { native, type ProgramInfo } from '../sys/index.js'
import { progInfo } from '../sys/generated/kernel-layouts.js'

const KERNEL_NAME_LEN = 15

/**
 * Readers of program BTF by ID, for a walk over many programs: the programs
 * of one object share one BTF, read and parsed once.
 */
export type BtfCache = Map<number, BtfReader>

function readBtf(id: number): BtfReader {
  const btf = Btf.fromId(id, { token: null })
  try {
    return btf.reader()
  } finally {
    btf.close()
  }
}
// struct bpf_func_info { __u32 insn_off; __u32 type_id; }
const FUNC_INFO_SIZE = 8

/**
 * The name of the program open at `fd` (whose info is `info`): the BTF name
 * of its main function when the kernel's copy may be cut short and that name
 * begins with it; the kernel's otherwise (and whenever reading the BTF
 * fails: it is only a longer spelling). Needs what reading its BTF by ID
 * needs (CAP_SYS_ADMIN) for names of 15 characters; none for shorter ones.
 */
export function programFullName(fd: number, info: ProgramInfo, cache?: BtfCache): string {
  if (info.name.length < KERNEL_NAME_LEN || info.btfId === 0) return info.name
  try {
    const record = new Uint8Array(FUNC_INFO_SIZE)
    const f = progInfo.fields
    // The kernel wants func_info_rec_size to say 8 (EINVAL otherwise), and
    // the native call writes only pointers and their counts: an 8-byte buffer
    // of 1-byte elements "counts" 8 into that field. Its pointer goes to
    // line_info, which the kernel leaves alone while nr_line_info is 0.
    native.objGetInfoWithBuffers(fd, new Uint8Array(progInfo.size), [
      [f.func_info.offset, record, f.nr_func_info.offset, FUNC_INFO_SIZE],
      [f.line_info.offset, new Uint8Array(FUNC_INFO_SIZE), f.func_info_rec_size.offset, 1],
    ])
    const typeId = new DataView(record.buffer).getUint32(4, true)
    if (typeId === 0) return info.name
    let reader = cache?.get(info.btfId)
    if (reader === undefined) {
      reader = readBtf(info.btfId)
      cache?.set(info.btfId, reader)
    }
    const name = reader.type(typeId).name
    return name.startsWith(info.name) ? name : info.name
  } catch {
    return info.name
  }
}
