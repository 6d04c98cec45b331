// The kernel BTF type a tracing, LSM or iterator program is loaded for
// (attach_btf_id): libbpf finds it by the section's target name, with the
// prefix the kernel gives each kind of hook.
import type { SectionProgram } from './sections.js'
import type { KernelSymbols } from './externs.js'

const hooks: Record<string, { prefix: string; kind: 'FUNC' | 'TYPEDEF' }> = {
  trace_raw_tp: { prefix: 'btf_trace_', kind: 'TYPEDEF' },
  trace_fentry: { prefix: '', kind: 'FUNC' },
  trace_fexit: { prefix: '', kind: 'FUNC' },
  modify_return: { prefix: '', kind: 'FUNC' },
  trace_iter: { prefix: 'bpf_iter_', kind: 'FUNC' },
  lsm_mac: { prefix: 'bpf_lsm_', kind: 'FUNC' },
  lsm_cgroup: { prefix: 'bpf_lsm_', kind: 'FUNC' },
}

/** The attach target's BTF id (and module), or undefined for programs that take none. Errors: Error naming the missing target. */
export function attachBtfTarget(p: SectionProgram, kernel: KernelSymbols): { id: number; module: string | undefined } | undefined {
  const hook = p.expectedAttachType === undefined ? undefined : hooks[p.expectedAttachType]
  if (!hook || (p.type !== 'tracing' && p.type !== 'lsm')) return undefined
  if (p.attachTo === '') throw new TypeError(`SEC("${p.convention}") needs a target: the section must name the function or hook ("${p.convention.replace(/\+$/, '')}/<name>")`)
  const found = kernel.findType(hook.prefix + p.attachTo, hook.kind)
  if (!found) throw Object.assign(new Error(`attach target '${p.attachTo}' (BTF ${hook.kind} ${hook.prefix}${p.attachTo}) is not in this kernel's BTF`), { code: 'ESRCH' })
  return found
}
