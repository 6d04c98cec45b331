// The BPF objects of the collection rows, written as C and compiled with
// clang at bench time (the same bytes go to libbpf and to bpfkit):
// - many: 20 socket filters, 10 BTF-defined maps and globals in .data,
//   .rodata and .bss (three more maps);
// - core: 1,000 CO-RE field-offset relocations against this kernel's
//   vmlinux BTF, in 10 socket filters;
// - plain: the same programs with each relocated constant replaced by an
//   unrelocated one of the same instruction shape, so that core - plain is
//   what the relocations cost (vmlinux BTF included).
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BtfReader } from '../../dist/index.mjs'

const PROGRAMS = 20
const MAPS = 10
const CORE_PROGRAMS = 10
const RELOCATIONS = 1000

const header = `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
`

/** 20 programs, each looking up and updating one of 10 maps and reading the globals. */
export function manySource() {
  const out = [header, 'volatile const __u64 limit = 1000;', '__u64 total = 1;', '__u64 runs;', '']
  for (let m = 0; m < MAPS; m++) {
    out.push(`struct {
  __uint(type, ${m % 2 ? 'BPF_MAP_TYPE_ARRAY' : 'BPF_MAP_TYPE_HASH'});
  __uint(max_entries, ${64 * (m + 1)});
  __type(key, __u32);
  __type(value, __u64);
} map${m} SEC(".maps");
`)
  }
  for (let p = 0; p < PROGRAMS; p++) {
    out.push(`SEC("socket")
int prog${p}(struct __sk_buff *skb)
{
  __u32 key = ${p};
  __u64 one = 1, *v = bpf_map_lookup_elem(&map${p % MAPS}, &key);
  if (v)
    __sync_fetch_and_add(v, 1);
  else
    bpf_map_update_elem(&map${p % MAPS}, &key, &one, BPF_ANY);
  runs++;
  return total < limit ? skb->len : 0;
}
`)
  }
  out.push('char LICENSE[] SEC("license") = "GPL";', '')
  return out.join('\n')
}

/**
 * Named, non-bitfield integer members of structs that vmlinux names once
 * (a name given twice would make the relocation ambiguous), in type order:
 * `count` of them, ten per struct.
 */
export function kernelFields(btf, count = RELOCATIONS) {
  const fields = []
  for (let id = 1; id < btf.firstId + btf.count && fields.length < count; id++) {
    const t = btf.type(id)
    if (t.kind !== 'STRUCT' || !/^[a-z_][a-z0-9_]*$/.test(t.name) || t.name.includes('___')) continue
    const ints = btf.members(t).filter((m) => m.name && !m.bitSize && btf.resolve(m.type).kind === 'INT').slice(0, 10)
    if (ints.length < 10 || btf.findAll(t.name, 'STRUCT').length !== 1) continue
    for (const m of ints) fields.push({ struct: t.name, member: m.name })
  }
  if (fields.length < count) throw new Error(`vmlinux BTF has only ${fields.length} suitable struct fields for ${count} relocations`)
  return fields.slice(0, count)
}

/**
 * The CO-RE object (relocated = true) or its twin without relocations: each
 * program sums 100 field offsets, as `rX = <offset>` instructions that
 * libbpf and bpfkit rewrite, or the same instructions made by inline asm.
 */
export function coreSource(fields, relocated) {
  const structs = new Map()
  for (const f of fields) structs.set(f.struct, [...(structs.get(f.struct) ?? []), f.member])
  const out = [header, '#define PAI __attribute__((preserve_access_index))',
    // The same `rX = imm` the relocation makes, with nothing for a loader to do.
    '#define K(v) ({ long __k; asm volatile("%0 = %1" : "=r"(__k) : "i"(v)); __k; })', '']
  if (relocated) {
    for (const [s, members] of structs) out.push(`struct ${s}___b { ${members.map((m) => `long ${m};`).join(' ')} } PAI;`)
    out.push('')
  }
  const per = fields.length / CORE_PROGRAMS
  for (let p = 0; p < CORE_PROGRAMS; p++) {
    out.push(`SEC("socket")\nint core${p}(struct __sk_buff *skb)\n{\n  long sum = 0;`)
    fields.slice(p * per, (p + 1) * per).forEach((f, i) => {
      out.push(relocated ? `  sum += bpf_core_field_offset(struct ${f.struct}___b, ${f.member});` : `  sum += K(${i});`)
    })
    out.push('  return sum & 1;\n}\n')
  }
  out.push('char LICENSE[] SEC("license") = "GPL";', '')
  return out.join('\n')
}

/** clang: $BPF_CLANG, else clang-19, else clang; undefined when none runs. */
export function findClang() {
  for (const c of process.env.BPF_CLANG ? [process.env.BPF_CLANG] : ['clang-19', 'clang']) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' })
    if (r.status === 0) return { clang: c, version: r.stdout.split('\n')[0].trim() }
  }
  return undefined
}

function multiarch() {
  for (const [cmd, args] of [['gcc', ['-print-multiarch']], ['dpkg-architecture', ['-qDEB_HOST_MULTIARCH']]]) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' })
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim()
  }
  return 'x86_64-linux-gnu'
}

/** Writes and compiles the three objects in `dir`; returns their bytes and what they hold. */
export function buildObjects(clang, dir) {
  const btf = new BtfReader(readFileSync('/sys/kernel/btf/vmlinux'))
  const fields = kernelFields(btf)
  const sources = { many: manySource(), core: coreSource(fields, true), plain: coreSource(fields, false) }
  const objects = {}
  for (const [name, text] of Object.entries(sources)) {
    const src = join(dir, `${name}.bpf.c`)
    const obj = join(dir, `${name}.bpf.o`)
    writeFileSync(src, text)
    const r = spawnSync(clang, ['-target', 'bpf', `-I/usr/include/${multiarch()}`, '-g', '-O2', '-c', src, '-o', obj], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`compiling ${src} failed:\n${r.stderr}`)
    objects[name] = { file: obj, bytes: readFileSync(obj) }
  }
  return objects
}
