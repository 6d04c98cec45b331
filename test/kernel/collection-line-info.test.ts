// The object's BTF func and line info reach the kernel: a verifier refusal
// shows the C source line of the failing instruction, and the error names it.
import { describe, expect, test } from 'vitest'
import { VerifierError } from '../../lib/index.js'
import { fixtureSpec } from './helpers/collection.js'

describe('BTF line info', () => {
  test('a refused program: the verifier log shows its C lines, the failing one included', async () => {
    const spec = fixtureSpec('rejected')
    expect(spec.programs.unchecked_lookup.lineInfo?.some((l) => l.line?.includes('return *value + 1;'))).toBe(true)
    const err = await spec.load({ programs: ['unchecked_lookup'] }).catch((e) => e)
    expect(err).toBeInstanceOf(VerifierError)
    const log = (err as VerifierError).log.join('\n')
    expect(log).toMatch(/^; return \*value \+ 1;/m)
    expect(log).toMatch(/invalid mem access 'map_value_or_null'/)
    // The message leads with the program and the C line of the instruction the verifier stopped at.
    expect(err.message).toMatch(/^unchecked_lookup: rejected\.bpf\.c:21: return \*value \+ 1;/)
  })
})
