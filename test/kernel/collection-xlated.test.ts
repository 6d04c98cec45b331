// Cross-check with a real client: each fixture object loaded by bpfkit
// (CollectionSpec.fromFile(...).load()) and by libbpf (`bpftool prog loadall`,
// test/kernel/helpers/bpftool-loadall.ts) must give the kernel the same
// programs. Compared program by program, after verification:
// - the translated ("xlated") instructions, normalised only where two loads
//   must differ: map ids (named map#0, map#1, ... by first appearance),
//   and kernel addresses (ksyms); bpfkit lays .kconfig out as libbpf does, so
//   offsets into it are compared as they are;
// - the program tag, the kernel's hash of the instructions as submitted (map
//   references zeroed): equal tags mean the linker produced the same code
//   before the verifier rewrote it, dead branches included (see tagDiffers);
// - the map behind each map#k: same type, sizes, flags and kernel name;
// - the maps each program holds (prog info map_ids), where libbpf binds
//   more (see boundByLibbpf).
// SEC("?...") programs are not autoloaded by either loader (the helper hides
// them from bpftool 7.1, which would fail pinning them): externs' percpu_ksym
// and types' maybe_xdp are compared by neither.
// Both sides pin their LIBBPF_PIN_BY_NAME maps in a bpffs of their own (a
// private mount here, a private mount namespace for bpftool), never the host's.
import { existsSync } from 'node:fs'
import { release } from 'node:os'
import { describe, expect, test } from 'vitest'
import { BtfReader, features, type BpfMap, type BpfProgram, type Collection } from '../../lib/index.js'
import { native } from '../../lib/sys/index.js'
import { loadall, normaliseXlated, referencedMapIds, type LoadedMap, type LoadedProgram } from './helpers/bpftool-loadall.js'
import { fixture, fixtureSpec } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { privateBpffs } from './helpers/scratch.js'

let vmlinux: BtfReader | undefined
function kfuncsMissing(...names: string[]): string | undefined {
  vmlinux ??= BtfReader.fromFile()
  const missing = names.filter((n) => vmlinux!.find(n, 'FUNC') === undefined)
  return missing.length ? `kfuncs ${missing.join(', ')} (Linux 6.2 to 6.4) are not in this kernel's BTF` : undefined
}
/** Both loaders fill .kconfig from the running kernel's config. */
function configMissing(): string | undefined {
  const paths = [`/boot/config-${release()}`, '/proc/config.gz']
  return paths.some((p) => existsSync(p)) ? undefined : `no kernel config to read (${paths.join(', ')})`
}
const programType = (t: Parameters<typeof features.haveProgramType>[0]) => requireFeature(() => features.haveProgramType(t))

/**
 * The fixtures bpftool 7.1 (libbpf 1.1) loads, and why this kernel might not
 * load one (both loaders load every autoload program or nothing).
 */
const comparable: Record<string, () => string | undefined> = {
  data: () => programType('syscall'),
  externs: () => programType('syscall') ?? configMissing(),
  globals: () => undefined,
  kfuncs: () => programType('syscall') ?? requireFeature(features.haveKernelBtfIds) ?? kfuncsMissing(
    'bpf_task_from_pid', 'bpf_task_release', 'bpf_rcu_read_lock', 'bpf_rcu_read_unlock',
    'bpf_dynptr_adjust', 'bpf_dynptr_size', 'bpf_dynptr_slice', 'bpf_dynptr_from_skb', 'bpf_dynptr_from_xdp',
  ),
  'map-init': () => programType('syscall') ?? programType('sched_cls'),
  maps: () => undefined,
  minimal: () => undefined,
  pinning: () => programType('syscall'),
  subprogs: () => programType('syscall') ?? programType('sched_cls')
    ?? requireFeature(() => features.haveProgramHelper('syscall', 'loop'))
    ?? requireFeature(() => features.haveProgramHelper('syscall', 'for_each_map_elem')),
  'typed-maps': () => programType('syscall'),
  types: () => requireFeature(() => features.haveMapType('ringbuf')),
}

/**
 * Programs whose tag legitimately differs from libbpf 1.1's, and why. The
 * tag hashes what the loader submitted, before the verifier drops dead code.
 */
const tagDiffers: Record<string, string> = {
  // The call to the unresolved __weak bpfkit_no_such_kfunc (dead code behind
  // bpf_ksym_exists): bpfkit poisons it as libbpf 1.3+ does (poison_kfunc_call:
  // a helper call with imm 2002000000 + extern index), libbpf 1.1 leaves a
  // kfunc call with BTF id 0. Rewriting that one instruction of bpfkit's into
  // libbpf 1.1's form gives libbpf's tag exactly; the verifier drops the call
  // either way, so the xlated instructions are equal.
  'kfuncs/weak_kfuncs': 'an unresolved weak kfunc call: poisoned as libbpf 1.3+ does, not as libbpf 1.1 does',
}

/** The fixtures bpftool 7.1 (libbpf 1.1) refuses, and why: nothing of libbpf's to compare with. */
const refused: Record<string, string> = {
  core: "its local group's core_* types are in no kernel BTF: libbpf 1.1 relocates CO-RE against vmlinux only, fails those relocations (poisoned instructions) and the verifier refuses point_sum (bpfkit relocates them against a target BTF the unit tests supply)",
  'legacy-maps': "legacy struct bpf_map_def maps in SEC(\"maps\"): libbpf 1.0+ refuses them ('legacy map definitions in 'maps' section are not supported')",
  sections: "its kprobe.session/ section is newer than libbpf 1.1, which cannot guess that program's type and refuses the object",
  'subprogs-other': "a static subprogram in a program section ('other'): libbpf refuses static programs ('program 'static_other' is static and not supported')",
}

/** libbpf's programs for each fixture (plain data: nothing stays loaded), loaded once per fixture. */
const libbpfLoads = new Map<string, Map<string, LoadedProgram>>()
function libbpf(name: string, ctx: { skip(note?: string): never }): Map<string, LoadedProgram> {
  if (!libbpfLoads.has(name)) libbpfLoads.set(name, loadall(fixture(`${name}.bpf.o`), ctx))
  return libbpfLoads.get(name)!
}

/**
 * Loads `name` with bpfkit as libbpf does: the autoload programs, the
 * pinned-by-name maps in a bpffs (a private one, removed afterwards), and
 * hands the collection to `check`.
 */
async function withBpfkit(name: string, check: (coll: Collection) => void): Promise<void> {
  using fs = privateBpffs()
  using coll = await fixtureSpec(name).load({ pinPath: fs.path })
  check(coll)
}

/** A map as both sides can describe it; the name is compared on its own (see the naming test). */
function shape(m: LoadedMap): string {
  return `${m.type} key=${m.keySize} value=${m.valueSize} max_entries=${m.maxEntries} flags=0x${m.flags.toString(16)}`
}

function describeOurs(map: BpfMap<unknown, unknown>): LoadedMap {
  const i = map.info()
  return { name: i.name, type: i.type, keySize: i.keySize, valueSize: i.valueSize, maxEntries: i.maxEntries, flags: i.flags }
}

/** Our maps by kernel id, to name the maps a program's xlated instructions refer to. */
function ourMapsById(coll: Collection): Map<number, LoadedMap> {
  return new Map(Object.values(coll.maps).map((m) => [m.info().id, describeOurs(m)]))
}

function lookup(maps: ReadonlyMap<number, LoadedMap>, id: number, side: string): LoadedMap {
  const m = maps.get(id)
  if (m === undefined) throw new Error(`${side}: the program refers to map id ${id}, which is none of its maps`)
  return m
}

const BPF_F_RDONLY_PROG = 0x80
/**
 * libbpf (bpf_object_load_prog) binds every .rodata* map of the object to
 * every program it loads (BPF_PROG_BIND_MAP, Linux 5.10), so that a
 * program keeps its read-only data, bpf_metadata_* variables included, for
 * `bpftool prog show` even when its code does not use them. bpfkit does not:
 * these maps are in libbpf's map_ids only. Legitimately different.
 */
function boundByLibbpf(m: LoadedMap): boolean {
  return (m.flags & BPF_F_RDONLY_PROG) !== 0 && m.name.includes('.rodata')
}

describe.each(Object.entries(comparable))('%s.bpf.o: bpfkit and libbpf load the same programs', (name, needs) => {
  skipAllIf(needs())

  test('the same programs: libbpf loads exactly bpfkit\'s autoload ones', async (ctx) => {
    const theirs = libbpf(name, ctx)
    await withBpfkit(name, (coll) => {
      expect(Object.keys(coll.programs).sort()).toEqual([...theirs.keys()].sort())
    })
  })

  // Runs `check` for each program both loaders loaded (the program list test reports any other).
  const eachPair = async (ctx: { skip(note?: string): never }, check: (prog: string, p: BpfProgram, other: LoadedProgram, ours: Map<number, LoadedMap>) => void) => {
    const theirs = libbpf(name, ctx)
    await withBpfkit(name, (coll) => {
      const ours = ourMapsById(coll)
      for (const [prog, p] of Object.entries(coll.programs)) {
        const other = theirs.get(prog)
        if (other !== undefined) check(prog, p, other, ours)
      }
    })
  }

  test('every program\'s xlated instructions equal libbpf\'s', (ctx) => eachPair(ctx, (prog, p, other) => {
    // Map ids are per load: named map#0, map#1, ... by first appearance on each side (a later test checks they are the same maps).
    expect.soft(normaliseXlated(native.progGetXlatedInsns(p.fd)), prog).toEqual(normaliseXlated(other.xlated))
  }))

  test('every program\'s tag equals libbpf\'s: the same instructions went in', (ctx) => eachPair(ctx, (prog, p, other) => {
    if (tagDiffers[`${name}/${prog}`] === undefined) expect.soft(p.info().tag, prog).toBe(other.tag)
  }))

  test('map#k is the same kind of map on both sides', (ctx) => eachPair(ctx, (prog, p, other, ours) => {
    const mine = referencedMapIds(native.progGetXlatedInsns(p.fd)).map((id) => shape(lookup(ours, id, 'bpfkit')))
    expect.soft(mine, prog).toEqual(referencedMapIds(other.xlated).map((id) => shape(lookup(other.maps, id, 'libbpf'))))
  }))

  test('the maps the code refers to have libbpf\'s kernel names', (ctx) => eachPair(ctx, (prog, p, other, ours) => {
    const mine = referencedMapIds(native.progGetXlatedInsns(p.fd)).map((id) => lookup(ours, id, 'bpfkit').name)
    expect.soft(mine, prog).toEqual(referencedMapIds(other.xlated).map((id) => lookup(other.maps, id, 'libbpf').name))
  }))

  test('each program holds the maps libbpf\'s does, but for the .rodata maps libbpf binds to all', (ctx) => eachPair(ctx, (prog, p, other, ours) => {
    const mine = p.info().mapIds.map((id) => lookup(ours, id, 'bpfkit'))
    const libbpfs = other.mapIds.map((id) => lookup(other.maps, id, 'libbpf'))
    // A .rodata map bpfkit's program holds (its code uses it) is one libbpf's holds too; the other bound ones are libbpf's alone.
    const held = new Set(mine.map(shape))
    expect.soft(mine.map(shape).sort(), prog).toEqual(libbpfs.filter((m) => !boundByLibbpf(m) || held.has(shape(m))).map(shape).sort())
  }))
})

describe.each(Object.entries(refused))('%s.bpf.o: nothing to compare', (name, why) => {
  test('bpftool 7.1 (libbpf 1.1) refuses the object', (ctx) => {
    ctx.skip(`libbpf cannot load ${name}.bpf.o: ${why}`)
  })
})
