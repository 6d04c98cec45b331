// The kernel configuration behind __kconfig externs.
import { describe, expect, it } from 'vitest'
import { kernelVersionCode, parseKernelConfig, readKernelConfig } from '../../lib/collection/kconfig.js'

describe('kernel config', () => {
  it('parses set, unset, numeric and string values', () => {
    const c = parseKernelConfig('#\n# comment\nCONFIG_BPF=y\nCONFIG_NET_MOD=m\n# CONFIG_KPROBES is not set\nCONFIG_HZ=250\nCONFIG_LSM="lockdown,bpf"\n')
    expect([...c]).toEqual([['CONFIG_BPF', 'y'], ['CONFIG_NET_MOD', 'm'], ['CONFIG_KPROBES', 'n'], ['CONFIG_HZ', '250'], ['CONFIG_LSM', '"lockdown,bpf"']])
  })

  it('names a malformed line', () => {
    expect(() => parseKernelConfig('CONFIG_A=y\nnonsense\n')).toThrow(/line 2 is neither/)
  })

  it("reads this kernel's configuration: BPF is on", () => {
    const c = readKernelConfig()
    if (c === undefined) return expect(readKernelConfig(['/nonexistent'])).toBeUndefined()
    expect(c.get('CONFIG_BPF')).toBe('y')
    expect(c.get('CONFIG_BPF_SYSCALL')).toBe('y')
  })

  it('computes LINUX_KERNEL_VERSION as the kernel does', () => {
    expect(kernelVersionCode('6.18.44-fc-v1272')).toBe((6 << 16) + (18 << 8) + 44)
    expect(kernelVersionCode('5.10')).toBe((5 << 16) + (10 << 8))
    expect(kernelVersionCode('4.9.300')).toBe((4 << 16) + (9 << 8) + 255)
    expect(() => kernelVersionCode('linux')).toThrow(RangeError)
  })
})
