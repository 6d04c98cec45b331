// Reads .BTF.ext, the section clang writes beside .BTF: per ELF section, the
// BTF function of each program and subprogram (func_info), the C source line
// of instructions (line_info) and the CO-RE relocations (core_relo). Offsets
// here are in bytes from the start of the ELF section, as clang writes them;
// the kernel wants instruction indices, which the loader computes when it
// places each function. Strings (section names, file names, lines, access
// strings) live in the .BTF string table, read through a BtfReader.
import { describeValue } from '../sys/options.js'
import type { BtfReader } from './reader.js'

export interface FuncInfoRecord {
  /** Byte offset of the function's first instruction in its ELF section. */
  insnOff: number
  /** The BTF FUNC type. */
  typeId: number
}

export interface LineInfoRecord {
  insnOff: number
  fileName: string
  line: string
  /** Offsets of fileName and line in the .BTF string table, which the kernel's bpf_line_info holds. */
  fileNameOff: number
  lineOff: number
  lineNum: number
  column: number
}

export interface CoreReloRecord {
  insnOff: number
  /** The local BTF type the access starts from. */
  typeId: number
  /** "0:1:2": the accessor path, indices of members and array elements. */
  accessStr: string
  /** enum bpf_core_relo_kind. */
  kind: number
}

export interface BtfExt {
  /** Records by ELF section name. */
  funcInfo: Map<string, FuncInfoRecord[]>
  lineInfo: Map<string, LineInfoRecord[]>
  coreRelos: Map<string, CoreReloRecord[]>
}

const BTF_EXT_MAGIC = 0xeb9f
const MIN_HEADER = 24
// The smallest record of each kind clang writes; larger ones are read by their prefix, as the kernel does.
const minRecord = { func: 8, line: 16, core: 16 } as const

/** Errors: RangeError naming the part of .BTF.ext that is malformed. */
export function readBtfExt(bytes: Uint8Array, btf: BtfReader): BtfExt {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`readBtfExt: bytes must be a Uint8Array, got ${describeValue(bytes)}`)
  if (bytes.length < MIN_HEADER) throw new RangeError(`.BTF.ext: ${bytes.length} bytes, shorter than its ${MIN_HEADER}-byte header`)
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (v.getUint16(0, true) !== BTF_EXT_MAGIC) throw new RangeError('.BTF.ext: bad magic (only little-endian objects are read)')
  const hdrLen = v.getUint32(4, true)
  if (hdrLen < MIN_HEADER || hdrLen > bytes.length) throw new RangeError(`.BTF.ext: header length ${hdrLen} is outside 24..${bytes.length}`)
  const part = (at: number) => (hdrLen >= at + 8 ? { off: v.getUint32(at, true), len: v.getUint32(at + 4, true) } : { off: 0, len: 0 })
  const read = <T>(what: keyof typeof minRecord, p: { off: number; len: number }, rec: (at: number) => T): Map<string, T[]> => {
    const out = new Map<string, T[]>()
    if (p.len === 0) return out
    const start = hdrLen + p.off
    const end = start + p.len
    if (end > bytes.length || p.len < 4) throw new RangeError(`.BTF.ext ${what} info (${p.len} bytes at ${p.off}) runs past the section's ${bytes.length} bytes`)
    const size = v.getUint32(start, true)
    if (size < minRecord[what] || size % 4 !== 0) throw new RangeError(`.BTF.ext ${what} info: record size ${size} is below ${minRecord[what]} or unaligned`)
    for (let at = start + 4; at < end;) {
      if (at + 8 > end) throw new RangeError(`.BTF.ext ${what} info: a section header at ${at - hdrLen} runs past the end`)
      const section = btf.string(v.getUint32(at, true))
      const count = v.getUint32(at + 4, true)
      at += 8
      if (count === 0 || count > (end - at) / size) throw new RangeError(`.BTF.ext ${what} info for ${section}: ${count} records of ${size} bytes do not fit`)
      const list = out.get(section) ?? []
      for (let i = 0; i < count; i++, at += size) list.push(rec(at))
      out.set(section, list)
    }
    return out
  }
  return {
    funcInfo: read('func', part(8), (at) => ({ insnOff: v.getUint32(at, true), typeId: v.getUint32(at + 4, true) })),
    lineInfo: read('line', part(16), (at) => {
      const lineCol = v.getUint32(at + 12, true)
      const fileNameOff = v.getUint32(at + 4, true)
      const lineOff = v.getUint32(at + 8, true)
      return { insnOff: v.getUint32(at, true), fileName: btf.string(fileNameOff), line: btf.string(lineOff), fileNameOff, lineOff, lineNum: lineCol >>> 10, column: lineCol & 0x3ff }
    }),
    coreRelos: read('core', part(24), (at) => ({
      insnOff: v.getUint32(at, true), typeId: v.getUint32(at + 4, true), accessStr: btf.string(v.getUint32(at + 8, true)), kind: v.getUint32(at + 12, true),
    })),
  }
}
