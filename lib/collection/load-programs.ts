// One program of a load: its linked instructions completed (map fds, data
// addresses, .kconfig offsets, kernel symbols and kfuncs), loaded with the
// object's BTF func/line info, and a verifier refusal at a poisoned CO-RE
// instruction explained as the relocation it was.
import type { Btf } from '../btf/btf.js'
import { POISON_HELPER, type CoreResult } from '../btf/core.js'
import type { BpfMap } from '../map/map.js'
import type { FdRef } from '../map/values.js'
import { programFd } from '../link/program-ref.js'
import { programFunctionBtfId } from '../link/tracing.js'
import { ProgramSpec } from '../prog/spec.js'
import { VerifierError } from '../sys/index.js'
import { pseudo } from '../asm/opcodes.js'
import { ElfError } from './elf.js'
import type { KernelSymbols } from './externs.js'
import type { LinkedProgram } from './linker.js'
import { attachBtfTarget } from './attach-target.js'
import type { Loading } from './loading.js'

const INSN = 8
const CALL = 0x85
// libbpf's marker for an unresolved weak kfunc: a call the verifier rejects unless it is dead code.
const POISON_KFUNC = 2002000000

/** The program a freplace program replaces a global function of, and that function (default: the section's). */
export interface FreplaceTarget {
  program: FdRef
  function?: string
}

/** The ProgramSpec one program is loaded with: its linked instructions with every reference made an fd, id or address. */
export function programForLoad({ object, token, btf, has }: Loading, name: string, linked: LinkedProgram, maps: Record<string, BpfMap>,
  running: KernelSymbols, logLevel: number | undefined, structOps: ProgramSpec['structOps'], freplace?: FreplaceTarget): ProgramSpec {
  const { convention } = object.programs.get(name)!
  const bytes = linked.insns
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const fdArray: Btf[] = []
  for (const { index, ref } of linked.references) {
    const at = index * INSN
    if (ref.kind === 'map' || ref.kind === 'data') {
      const map = maps[ref.kind === 'map' ? ref.map : ref.section]
      bytes[at + 1] = (bytes[at + 1] & 0x0f) | ((ref.kind === 'map' ? pseudo.mapFd : pseudo.mapValue) << 4)
      v.setInt32(at + 4, map.fd, true)
      if (ref.kind === 'data') v.setUint32(at + 12, ref.offset, true)
      continue
    }
    const kc = object.kconfig.find((k) => k.name === ref.name)
    if (kc) {
      bytes[at + 1] = (bytes[at + 1] & 0x0f) | (pseudo.mapValue << 4)
      v.setInt32(at + 4, maps['.kconfig'].fd, true)
      v.setUint32(at + 12, kc.offset, true)
      continue
    }
    const sym = object.ksyms.get(ref.name)
    if (!sym) throw new ElfError(`program '${name}' uses extern '${ref.name}', which the object's BTF does not describe`)
    const target = running.resolve(sym)
    let btfFdIndex = 0
    if (target.kind === 'btf' && target.module !== undefined) {
      const mod = running.moduleBtf(target.module)
      if (!fdArray.includes(mod)) fdArray.push(mod)
      btfFdIndex = fdArray.indexOf(mod) + 1
    }
    if (ref.call) {
      if (target.kind === 'btf') {
        bytes[at + 1] = (bytes[at + 1] & 0x0f) | (pseudo.kfuncCall << 4)
        v.setInt32(at + 4, target.id, true)
        v.setInt16(at + 2, btfFdIndex, true)
      } else {
        bytes[at] = CALL
        bytes[at + 1] = 0
        v.setInt16(at + 2, 0, true)
        v.setInt32(at + 4, POISON_KFUNC + [...object.ksyms.keys()].indexOf(ref.name), true)
      }
    } else if (target.kind === 'btf') {
      bytes[at + 1] = (bytes[at + 1] & 0x0f) | (pseudo.btfId << 4)
      v.setInt32(at + 4, target.id, true)
      v.setInt32(at + 12, target.module === undefined ? 0 : running.moduleBtf(target.module).fd.fd, true)
    } else {
      const address = target.kind === 'address' ? target.address : 0n
      v.setUint32(at + 4, Number(address & 0xffffffffn), true)
      v.setUint32(at + 12, Number(address >> 32n), true)
    }
  }
  const attach = attachBtfTarget(convention, running)
  // freplace: the target program's own BTF names the function (Linux 5.6+).
  const ext = freplace && {
    attachProgFd: programFd(`freplace target of '${name}'`, freplace.program),
    attachBtfId: programFunctionBtfId(freplace.program, freplace.function ?? convention.attachTo),
  }
  return ProgramSpec.from({
    ...object.programOptions(name, linked),
    bytes,
    // What a token's capability check matches struct_ops programs by, as for the spec's.
    ...(structOps ? { structOps } : {}),
    attachBtfId: ext?.attachBtfId ?? attach?.id,
    attachProgFd: ext?.attachProgFd,
    attachBtfObjFd: attach?.module === undefined ? undefined : running.moduleBtf(attach.module).fd.fd,
    token,
    logLevel,
    // func_info names FUNC types: a kernel without them (sanitised to typedefs) gets neither func nor line info.
    ...(btf && has.btf?.func ? { btf, funcInfo: linked.funcInfo, lineInfo: linked.lineInfo } : {}),
    ...(fdArray.length ? { fdArray } : {}),
  })
}

/** A refusal of program `name` as the object's author reads it: a poisoned CO-RE relocation named, or the C line the verifier stopped at. */
export function explainRefusal(e: unknown, name: string, linked: LinkedProgram, core: Map<number, CoreResult[]>): unknown {
  return e instanceof VerifierError ? explainPoison(e, name, linked, core) ?? placeInSource(e, name, linked) : e
}

// A verifier rejection at a poisoned instruction is a failed CO-RE
// relocation: say which, and why, in the words of libbpf.
function explainPoison(e: VerifierError, name: string, linked: LinkedProgram, core: Map<number, CoreResult[]>): VerifierError | undefined {
  const at = e.log.map((l) => new RegExp(`^(\\d+): \\(85\\) call unknown#${POISON_HELPER}\\b`).exec(l)).find(Boolean)
  if (!at) return undefined
  const index = Number(at[1])
  for (const { fn, at: start } of linked.layout) {
    if (index < start || index >= start + fn.count) continue
    const off = (fn.start + index - start) * INSN
    const r = core.get(fn.section.index)?.find((x) => x.poisoned && x.insnOff === off)
    if (r) return new VerifierError(e.command, e.errno, e.log, `CO-RE relocation #${r.index} in ${name}: ${r.reason ?? 'cannot be satisfied by the target BTF'}; the verifier rejected the instruction it poisoned (insn ${index})`)
  }
  return undefined
}

// Any other refusal: the C line of the last instruction the verifier
// reached, from the object's line info, leads the message.
function placeInSource(e: VerifierError, name: string, linked: LinkedProgram): VerifierError {
  const last = e.log.map((l) => /^(\d+): \(/.exec(l)).filter(Boolean).at(-1)
  if (!last) return e
  const index = Number(last[1])
  const line = linked.lineInfo.filter((l) => l.insnOff <= index).at(-1)
  if (!line) return e
  return new VerifierError(e.command, e.errno, e.log, `${name}: ${line.fileName.replace(/^\.\//, '')}:${line.lineNum}: ${line.line.trim()}\n${e.message}`)
}

