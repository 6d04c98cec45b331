// Extern symbols of a clang-built object (externs.bpf.c), resolved at load:
// __kconfig values from the running kernel's configuration, LINUX_KERNEL_VERSION,
// a __weak CONFIG_ no kernel has (0), typed __ksym per-CPU variables from
// kernel BTF, an untyped __ksym address from /proc/kallsyms and a __weak
// __ksym no kernel has (address 0). The expected values are read here the
// way the loader should read them, from the same files.
import { readFileSync } from 'node:fs'
import { release } from 'node:os'
import { describe, expect, test } from 'vitest'
import { CollectionSpec, features } from '../../lib/index.js'
import { readKernelConfig } from '../../lib/collection/kconfig.js'
import { expectNoNewFds, fixture, fixtureSpec, ownedFds, retval } from './helpers/collection.js'
import { requireFeature, skipAllIf, skipUnless } from './helpers/requires.js'

const config = readKernelConfig()
const configMissing = config === undefined ? `no kernel config to read (/boot/config-${release()}, /proc/config.gz)` : undefined

/** A kallsyms address, or undefined when the symbol is not listed or addresses are hidden (kptr_restrict). */
function kallsyms(name: string): bigint | undefined {
  for (const line of readFileSync('/proc/kallsyms', 'utf8').split('\n')) {
    const [addr, , sym] = line.split(' ')
    if (sym === name) return BigInt(`0x${addr}`) || undefined
  }
  return undefined
}

// KERNEL_VERSION(a, b, c) of '6.18.44-...', the patch level capped at 255.
function kernelVersion(): number {
  const [, a, b, c = '0'] = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release())!
  return (Number(a) << 16) + (Number(b) << 8) + Math.min(Number(c), 255)
}

const tristate = (v: string | undefined) => (v === 'y' ? 1 : v === 'm' ? 2 : 0)

describe('externs.bpf.c: the spec', () => {
  test('the kconfig externs get a .kconfig map; percpu_ksym is not autoloaded', () => {
    const spec = fixtureSpec('externs')
    expect(spec.maps['.kconfig']).toMatchObject({ type: 'array', maxEntries: 1 })
    expect(spec.programs.percpu_ksym).toMatchObject({ section: '?syscall', autoload: false, type: 'syscall' })
    expect(spec.programs.config_hz).toMatchObject({ section: 'syscall', autoload: true })
  })
})

describe('externs.bpf.c: loaded and run', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('syscall')) ?? configMissing)

  test('LINUX_KERNEL_VERSION is KERNEL_VERSION() of the running release', async () => {
    using coll = await fixtureSpec('externs').load({ programs: ['kernel_version'] })
    expect(await retval(coll.programs.kernel_version)).toBe(kernelVersion())
  })

  test('CONFIG_HZ, an int option', async () => {
    using coll = await fixtureSpec('externs').load({ programs: ['config_hz'] })
    expect(await retval(coll.programs.config_hz)).toBe(Number(config!.get('CONFIG_HZ')))
  })

  test('a bool (CONFIG_BPF_SYSCALL) and a tristate (CONFIG_BPF_JIT); the unknown __weak option reads 0', async () => {
    using coll = await fixtureSpec('externs').load({ programs: ['config_flags'] })
    // BPF_SYSCALL * 1000 + BPF_JIT (y 1, m 2) * 100 + (unknown != 0) * 10
    const expected = tristate(config!.get('CONFIG_BPF_SYSCALL')) * 1000 + tristate(config!.get('CONFIG_BPF_JIT')) * 100
    expect(expected).toBe(1100) // any kernel that runs these tests
    expect(await retval(coll.programs.config_flags)).toBe(expected)
  })

  test('a string option: CONFIG_LOCALVERSION, its length * 1000 + its first character', async () => {
    using coll = await fixtureSpec('externs').load({ programs: ['config_string'] })
    const raw = config!.get('CONFIG_LOCALVERSION') ?? '""'
    const value = JSON.parse(raw) as string
    expect(await retval(coll.programs.config_string)).toBe(value.length * 1000 + (value.charCodeAt(0) || 0))
  })

  test('the .kconfig map is one of the maps the programs use', async () => {
    using coll = await fixtureSpec('externs').load()
    expect(coll.maps['.kconfig']).toBeDefined()
    expect(coll.programs.config_hz.info().mapIds).toContain(coll.maps['.kconfig'].id)
  })

  test("an untyped __ksym is the symbol's address from /proc/kallsyms (low 32 bits)", async (ctx) => {
    const addr = kallsyms('schedule')
    if (addr === undefined) ctx.skip('/proc/kallsyms hides addresses (kptr_restrict) or lacks schedule')
    using coll = await fixtureSpec('externs').load({ programs: ['ksym_address'] })
    expect(await retval(coll.programs.ksym_address)).toBe(Number(addr! & 0xffffffffn))
  })

  test('a __weak __ksym no kernel has is address 0', async () => {
    using coll = await fixtureSpec('externs').load({ programs: ['weak_ksym'] })
    expect(await retval(coll.programs.weak_ksym)).toBe(1)
  })

  test('the default load leaves out the "?" program', async () => {
    using coll = await fixtureSpec('externs').load()
    expect(Object.keys(coll.programs).sort()).toEqual([
      'config_flags', 'config_hz', 'config_string', 'kernel_version', 'ksym_address', 'weak_ksym',
    ])
  })

  test('a typed per-CPU __ksym through bpf_this_cpu_ptr and bpf_per_cpu_ptr', async (ctx) => {
    skipUnless(ctx, () => features.haveProgramHelper('syscall', 'this_cpu_ptr'))
    // The verifier finds typed variables with kallsyms_lookup_name, which
    // lists data symbols only with CONFIG_KALLSYMS_ALL.
    if (kallsyms('cpu_number') === undefined) ctx.skip('kernel without CONFIG_KALLSYMS_ALL: typed __ksym variables cannot be resolved')
    using coll = await fixtureSpec('externs').load({ programs: ['percpu_ksym'] })
    // 1000 + (this CPU's copy == its number) * 100 + CPU 0's copy (0)
    expect(await retval(coll.programs.percpu_ksym)).toBe(1100)
  })
})

describe('externs-missing.bpf.c: strong externs the kernel lacks', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('syscall')))

  // The error names the missing symbol; which one when the loader resolves
  // all of an object's externs at once (as libbpf does) is up to it.
  const missing = /CONFIG_BPFKIT_MISSING_OPTION|bpfkit_missing_ksym|bpfkit_missing_kfunc/

  test.for(['needs_kconfig', 'needs_ksym', 'needs_kfunc'])('%s: the load fails naming the symbol, and leaves no fd', async (name) => {
    const before = ownedFds()
    await expect(CollectionSpec.fromFile(fixture('externs-missing.bpf.o')).load({ programs: [name] })).rejects.toThrow(missing)
    expectNoNewFds(before)
  })

  test('the spec reads fine: nothing is resolved before load', () => {
    const spec = CollectionSpec.fromFile(fixture('externs-missing.bpf.o'))
    expect(Object.keys(spec.programs).sort()).toEqual(['needs_kconfig', 'needs_kfunc', 'needs_ksym'])
    for (const p of Object.values(spec.programs)) expect(p.autoload).toBe(false)
  })
})
