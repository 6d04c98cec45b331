// The target BTF CO-RE relocations are computed against. By default the
// running kernel's: /sys/kernel/btf/vmlinux, and each loaded module's BTF
// (/sys/kernel/btf/<module>, split on vmlinux), read only when a type is not
// found in vmlinux, as libbpf does. Or one given BTF (libbpf's
// btf_custom_path): raw BTF, or an ELF file with a .BTF section (a vmlinux
// image, a BPF object); modules are not consulted then.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { CoreTargets } from '../btf/core.js'
import { BtfReader } from '../btf/reader.js'
import { BTF_MAGIC } from '../btf/format.js'
import { describeValue } from '../sys/options.js'
import { ElfError, ElfFile } from './elf.js'

const SYS_BTF = '/sys/kernel/btf'
const EM_BPF = 247

let running: CoreTargets | undefined

/**
 * Errors: an Error with code ENOENT naming the file when it does not exist
 * (for the default, a kernel without CONFIG_DEBUG_INFO_BTF); TypeError for
 * data that is neither BTF nor ELF; ElfError for an ELF file without .BTF.
 */
export function openKernelBtf(source?: BtfReader | Uint8Array | string): CoreTargets {
  if (source === undefined) return (running ??= runningKernel())
  if (source instanceof BtfReader) return { vmlinux: source }
  if (source instanceof Uint8Array) return { vmlinux: parseBtfOrElf(source, 'kernelBtf bytes') }
  if (typeof source === 'string') return { vmlinux: parseBtfOrElf(readFile(source), source) }
  throw new TypeError(`openKernelBtf: source must be a BtfReader, a Uint8Array or a path, got ${describeValue(source)}`)
}

// The running kernel's vmlinux BTF, read once per process, and its modules, each read on first use.
function runningKernel(): CoreTargets {
  const vmlinuxPath = join(SYS_BTF, 'vmlinux')
  const vmlinux = new BtfReader(readFile(vmlinuxPath, 'the kernel has no BTF (CONFIG_DEBUG_INFO_BTF)'))
  let modules: { name: string; btf: BtfReader }[] | undefined
  return {
    vmlinux,
    modules: () => {
      if (modules === undefined) {
        const names = readdirSync(SYS_BTF).filter((n) => n !== 'vmlinux').sort()
        const list: { name: string; btf: BtfReader }[] = []
        for (const name of names) {
          let bytes: Uint8Array
          try {
            bytes = readFileSync(join(SYS_BTF, name))
          } catch (e) {
            // A module unloaded since the directory was read.
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue
            throw e
          }
          list.push({ name, btf: new BtfReader(bytes, vmlinux) })
        }
        modules = list
      }
      return modules
    },
  }
}

function readFile(path: string, hint?: string): Uint8Array {
  try {
    return readFileSync(path)
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    if (err.code !== 'ENOENT') throw e
    throw Object.assign(new Error(`kernel BTF ${path} does not exist${hint ? `: ${hint}` : ''}`), { code: 'ENOENT', path })
  }
}

function parseBtfOrElf(bytes: Uint8Array, what: string): BtfReader {
  if (bytes.length >= 4 && bytes[0] === (BTF_MAGIC & 0xff) && bytes[1] === BTF_MAGIC >> 8) return new BtfReader(bytes)
  if (bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46) return new BtfReader(btfSection(bytes, what))
  throw new TypeError(`${what} is neither raw BTF (magic 0xeb9f) nor an ELF file with a .BTF section`)
}

// The .BTF section of an ELF file: ElfFile for BPF objects; for other ELF
// files (a vmlinux image, which ElfFile refuses as not BPF) just the section
// headers are walked, every offset checked.
function btfSection(bytes: Uint8Array, what: string): Uint8Array {
  if (bytes.length >= 20 && bytes[18] === EM_BPF && bytes[19] === 0) {
    const elf = new ElfFile(bytes)
    const s = elf.section('.BTF')
    if (s === undefined) throw new ElfError(`${what} has no .BTF section`)
    return elf.data(s)
  }
  if (bytes.length < 64 || bytes[4] !== 2 || bytes[5] !== 1) throw new ElfError(`${what}: only 64-bit little-endian ELF files are read for BTF`)
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const u64 = (at: number) => {
    const x = v.getBigUint64(at, true)
    if (x > BigInt(bytes.length)) throw new ElfError(`${what}: a section header field at ${at} points past the end of the file`, { offset: at })
    return Number(x)
  }
  const shoff = u64(40)
  const shentsize = v.getUint16(58, true)
  const shnum = v.getUint16(60, true)
  const shstrndx = v.getUint16(62, true)
  if (shentsize < 64 || shoff + shnum * shentsize > bytes.length || shstrndx >= shnum) throw new ElfError(`${what}: section headers run past the end of the file`, { offset: shoff })
  const header = (i: number) => {
    const at = shoff + i * shentsize
    const offset = u64(at + 24)
    const size = u64(at + 32)
    if (offset + size > bytes.length && v.getUint32(at + 4, true) !== 8) throw new ElfError(`${what}: section ${i} runs past the end of the file`, { offset: at })
    return { name: v.getUint32(at, true), offset, size }
  }
  const names = header(shstrndx)
  for (let i = 0; i < shnum; i++) {
    const s = header(i)
    if (s.name >= names.size) continue
    const start = names.offset + s.name
    const end = bytes.indexOf(0, start)
    if (end < 0 || end > names.offset + names.size) continue
    if (Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1') === '.BTF') return bytes.subarray(s.offset, s.offset + s.size)
  }
  throw new ElfError(`${what} has no .BTF section`)
}
