// Names in a kernel's BTF that a policy may mention: kfuncs (FUNC records)
// and attach targets (functions, LSM hooks, raw tracepoints, iterators,
// struct_ops types). The running kernel's BTF is read once per process
// (openKernelBtf caches it, shared with CO-RE) and looked up through
// BtfReader.findAll's name index, never a scan; whole name lists are read
// only for globs and "did you mean" hints.
import { existsSync } from 'node:fs'
import type { BtfKindName } from '../btf/format.js'
import { BtfReader } from '../btf/reader.js'
import { openKernelBtf } from '../collection/kernel-btf.js'
import type { ProgTypeName } from '../sys/generated/kernel-enums.js'
import { closestEnumName } from '../sys/names.js'
import { describeValue } from '../sys/options.js'
import { globPattern } from '../sys/glob.js'

/** Another kernel's BTF: a reader, raw BTF bytes (or an ELF file with .BTF), or a path to either. */
export type KernelBtfSource = BtfReader | Uint8Array | string

const VMLINUX = '/sys/kernel/btf/vmlinux'

export interface KernelNames {
  /** For messages: "the running kernel's BTF". */
  readonly source: string
  hasFunction(name: string): boolean
  closestKfunc(name: string): string | undefined
  checkAttachTarget(pattern: string, progs: readonly ProgTypeName[] | undefined, where: string): void
}

// The running kernel's BTF is read once per process (openKernelBtf caches it,
// shared with CO-RE); lookups go through findAll's name index, never a scan.
export function kernelNames(source: KernelBtfSource | undefined): KernelNames | undefined {
  if (source === undefined) {
    if (!existsSync(VMLINUX)) return undefined
    const t = openKernelBtf()
    return new BtfNames(t.vmlinux, () => [...(t.modules?.() ?? [])].map((m) => m.btf), `the running kernel's BTF (${VMLINUX} and modules)`)
  }
  if (!(source instanceof BtfReader) && !(source instanceof Uint8Array) && typeof source !== 'string') {
    throw new TypeError(`kernelBtf must be a BtfReader, BTF bytes, a path or null, got ${describeValue(source)}`)
  }
  return new BtfNames(openKernelBtf(source).vmlinux, () => [], typeof source === 'string' ? `the kernel BTF ${source}` : 'the given kernel BTF')
}

/** Where attach targets of a program type live in BTF: a kind and a name prefix. */
export interface Space {
  kind: BtfKindName
  prefix: string
  what: string
}
const func: Space = { kind: 'FUNC', prefix: '', what: 'kernel function' }
const lsmHook: Space = { kind: 'FUNC', prefix: 'bpf_lsm_', what: 'LSM hook' }
const rawTp: Space = { kind: 'TYPEDEF', prefix: 'btf_trace_', what: 'raw tracepoint' }
const iterator: Space = { kind: 'FUNC', prefix: 'bpf_iter_', what: 'iterator' }
const structOps: Space = { kind: 'STRUCT', prefix: '', what: 'struct_ops type' }
// Program types whose attach targets BTF names; others (tracepoint, perf_event,
// cgroup...) attach to things BTF does not list, so their globs go unchecked.
const spacesOf: Partial<Record<ProgTypeName, Space[]>> = {
  kprobe: [func],
  tracing: [func, rawTp, iterator],
  lsm: [lsmHook],
  raw_tracepoint: [rawTp],
  raw_tracepoint_writable: [rawTp],
  struct_ops: [structOps],
}
const allSpaces = [func, lsmHook, rawTp, iterator, structOps]

/**
 * Where the attach targets of `progs` (every program type when undefined)
 * are named in BTF; undefined when one of them attaches to something BTF
 * does not list (tracepoint, perf_event, cgroup...).
 */
export function attachSpaces(progs: readonly ProgTypeName[] | undefined): readonly Space[] | undefined {
  if (progs === undefined) return allSpaces
  if (progs.some((p) => spacesOf[p] === undefined)) return undefined
  return [...new Set(progs.flatMap((p) => spacesOf[p]!))]
}

const namesCache = new WeakMap<BtfReader, Map<string, string[]>>()

class BtfNames implements KernelNames {
  readonly #vmlinux: BtfReader
  readonly #modules: () => BtfReader[]
  #moduleList: BtfReader[] | undefined
  readonly source: string

  constructor(vmlinux: BtfReader, modules: () => BtfReader[], source: string) {
    this.#vmlinux = vmlinux
    this.#modules = modules
    this.source = source
  }

  // Modules are read only when vmlinux misses, as libbpf looks kfuncs up.
  #has(name: string, kind: BtfKindName): boolean {
    if (this.#vmlinux.findAll(name, kind).length > 0) return true
    return this.#readers().slice(1).some((m) => m.findAll(name, kind).length > 0)
  }

  #readers(): BtfReader[] {
    this.#moduleList ??= this.#modules()
    return [this.#vmlinux, ...this.#moduleList]
  }

  hasFunction(name: string): boolean {
    return this.#has(name, 'FUNC')
  }

  // Kernels built with pahole 1.25+ tag each kfunc with a "bpf_kfunc" decl tag:
  // the hint comes from those few hundred; without tags, from every function.
  closestKfunc(name: string): string | undefined {
    const tagged = new Set<string>()
    for (const btf of this.#readers()) {
      for (const id of btf.findAll('bpf_kfunc', 'DECL_TAG')) tagged.add(btf.type(btf.type(id).sizeOrType).name)
    }
    return closestOf(tagged.size > 0 ? [...tagged] : this.#names('FUNC'), name)
  }

  checkAttachTarget(pattern: string, progs: readonly ProgTypeName[] | undefined, where: string): void {
    // uprobe paths ('/bin/sh:main') and tracepoint categories ('sched/x') are not in BTF.
    if (pattern.includes('/') || pattern.includes(':')) return
    const spaces = attachSpaces(progs)
    if (spaces === undefined) return
    const name = pattern.replace(/\+.*$/, '') // kprobe 'func+0x10'
    const glob = /[*?]/.test(name)
    const re = glob ? globPattern(name) : undefined
    for (const s of spaces) {
      if (!glob && this.#has(s.prefix + name, s.kind)) return
      if (re && this.#names(s.kind).some((n) => n.startsWith(s.prefix) && re.test(n.slice(s.prefix.length)))) return
    }
    const whats = [...new Set(spaces.map((s) => s.what))].join(' or ')
    const near = glob ? undefined : closestOf(spaces.flatMap((s) => this.#names(s.kind).filter((n) => n.startsWith(s.prefix)).map((n) => n.slice(s.prefix.length))), name)
    throw new TypeError(`${where}: no ${whats} ${glob ? 'matches' : 'named'} '${pattern}' in ${this.source}${hint(near)}`)
  }

  // Every name of one kind: read once per BTF, for globs and hints only.
  #names(kind: BtfKindName): string[] {
    const out: string[] = []
    for (const btf of this.#readers()) {
      let byKind = namesCache.get(btf)
      if (!byKind) namesCache.set(btf, (byKind = new Map()))
      let names = byKind.get(kind)
      if (!names) {
        names = []
        for (let id = btf.firstId; id <= btf.count; id++) {
          const t = btf.type(id)
          if (t.kind === kind && t.name !== '') names.push(t.name)
        }
        byKind.set(kind, names)
      }
      for (const n of names) out.push(n)
    }
    return out
  }
}

// closestEnumName over names of about the same length (the others cannot be close).
export function closestOf(names: readonly string[], name: string): string | undefined {
  const slack = Math.max(2, Math.floor(name.length / 3))
  const near = names.filter((n) => Math.abs(n.length - name.length) <= slack)
  return closestEnumName(Object.fromEntries(near.map((n) => [n, 0])), name)
}


function hint(name: string | undefined): string {
  return name === undefined ? '' : ` (did you mean '${name}'?)`
}
