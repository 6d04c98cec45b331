// The tcx/netkit ordering options become LINK_CREATE's flags and relative
// part: which anchor sets BPF_F_BEFORE/AFTER, BPF_F_ID and BPF_F_LINK.
import { describe, expect, test } from 'vitest'
import { orderAttrs } from '../../lib/link/tcx.js'
import { kernel } from '../../lib/sys/index.js'

const { BPF_F_BEFORE, BPF_F_AFTER, BPF_F_ID } = kernel.attachFlags
const { BPF_F_LINK } = kernel.flags

describe('orderAttrs', () => {
  test('no ordering: last, no relative part', () => {
    expect(orderAttrs('t', {})).toEqual({ flags: 0, relative: undefined })
  })

  test("'all': first or last, with no relative object", () => {
    expect(orderAttrs('t', { before: 'all' })).toEqual({ flags: BPF_F_BEFORE, relative: undefined })
    expect(orderAttrs('t', { after: 'all', expectedRevision: 4n })).toEqual({ flags: BPF_F_AFTER, relative: { expectedRevision: 4n } })
  })

  test('a program by fd, a program id, a link id', () => {
    expect(orderAttrs('t', { before: { fd: 7 } })).toEqual({ flags: BPF_F_BEFORE, relative: { fd: 7 } })
    expect(orderAttrs('t', { after: { programId: 12 } })).toEqual({ flags: BPF_F_AFTER | BPF_F_ID, relative: { id: 12 } })
    expect(orderAttrs('t', { before: { linkId: 3 }, expectedRevision: 9 })).toEqual({ flags: BPF_F_BEFORE | BPF_F_ID | BPF_F_LINK, relative: { id: 3, expectedRevision: 9 } })
  })

  test('refusals name the option', () => {
    expect(() => orderAttrs('attachTc', { before: 'all', after: 'all' })).toThrow('attachTc: before and after are exclusive')
    expect(() => orderAttrs('attachTc', { before: 5 as never })).toThrow(/attachTc: before must be 'all', a BpfProgram/)
    expect(() => orderAttrs('attachTc', { after: null as never })).toThrow(/after must be/)
    expect(() => orderAttrs('attachTc', { after: { programId: 0 } })).toThrow(/after.programId must be a positive integer/)
    expect(() => orderAttrs('attachTc', { before: { linkId: 1.5 } })).toThrow(/before.linkId must be a positive integer/)
    expect(() => orderAttrs('attachTc', { expectedRevision: -1 })).toThrow(/expectedRevision must be a non-negative integer/)
    expect(() => orderAttrs('attachTc', { expectedRevision: '3' as never })).toThrow(TypeError)
  })
})
