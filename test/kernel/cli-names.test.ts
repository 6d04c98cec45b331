// lib/cli/names.ts: an object named by ID, by pinned path or by name opens
// that object; unknown and ambiguous names say so and list the IDs.
import { describe, expect, test } from 'vitest'
import { Fd, kernel, mapInfoByFd, native, progInfoByFd } from '../../lib/sys/index.js'
import { NameError, nameForm, openNamed, resolveId } from '../../lib/cli/names.js'
import { returnImm } from './helpers/raw.js'
import { asm, BpfProgram, Btf } from '../../lib/index.js'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { privateBpffs } from './helpers/scratch.js'

// Unique per run, so a name never matches another process's objects.
const tag = (process.pid % 100000).toString(36)

function loadProg(name: string): Fd {
  return new Fd(native.progLoadSync({ progType: kernel.progTypes.socket_filter, insns: returnImm(0), license: 'GPL', name }).fd, 'prog')
}

describe('names', () => {
  test('a program by ID, by name and by pin opens that program', () => {
    using p = loadProg(`nm_${tag}`)
    using fs = privateBpffs()
    const id = progInfoByFd(p.fd).id
    native.objPin(p.fd, `${fs.path}/p`)
    for (const arg of [String(id), `nm_${tag}`, `${fs.path}/p`]) {
      const r = openNamed('prog', arg)
      try {
        expect(r.id).toBe(id)
        expect(progInfoByFd(r.fd.fd).id).toBe(id)
      } finally {
        r.fd.close()
      }
    }
    expect(resolveId('prog', `nm_${tag}`)).toBe(id)
  })

  test('a name longer than the kernel keeps matches its first 15 characters', () => {
    const full = `long_${tag}_abcdefghijklmnop`
    using p = loadProg(full.slice(0, 15))
    expect(resolveId('prog', full)).toBe(progInfoByFd(p.fd).id)
  })

  test('a program whose BTF names it in full is found by that name, not by another with the same first 15 characters', () => {
    const b = new BtfBuilder()
    const proto = b.funcProto(b.int('int', 4, { signed: true }), [{ name: 'skb', type: b.ptr(b.struct('__sk_buff', [])) }])
    const full = `whole_${tag}_name_of_it`
    const typeId = b.func(full, proto, 'global')
    using btf = Btf.loadSync(b.bytes())
    using p = BpfProgram.loadSync({
      type: 'socket_filter', name: full.slice(0, 15), license: 'GPL', btf, funcInfo: [{ insnOff: 0, typeId }], insns: [asm.mov64Imm(asm.R0, 0), asm.exit()],
    })
    expect(resolveId('prog', full)).toBe(p.info().id)
    expect(resolveId('prog', full.slice(0, 15))).toBe(p.info().id)
    expect(() => resolveId('prog', `${full.slice(0, 15)}_other`)).toThrow(/no program named/)
  })

  test('an ambiguous name lists the IDs; an unknown one says nothing has it', () => {
    using a = loadProg(`dup_${tag}`)
    using b = loadProg(`dup_${tag}`)
    const ids = [progInfoByFd(a.fd).id, progInfoByFd(b.fd).id]
    let err: unknown
    try {
      openNamed('prog', `dup_${tag}`)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(NameError)
    expect((err as NameError).ids).toEqual(ids)
    expect((err as Error).message).toContain(`IDs ${ids.join(', ')}`)
    expect(() => openNamed('prog', `none_${tag}`)).toThrow(/no program named 'none_.*' is loaded/)
    expect(() => openNamed('map', '4294967295')).toThrow(/no map has that ID/)
  })

  test('a pin of another kind, or no pin, is refused without leaking the fd', () => {
    using m = new Fd(native.mapCreate({ mapType: kernel.mapTypes.array, keySize: 4, valueSize: 4, maxEntries: 1, name: `nmm_${tag}` }), 'map')
    using fs = privateBpffs()
    native.objPin(m.fd, `${fs.path}/m`)
    expect(() => openNamed('prog', `${fs.path}/m`)).toThrow(/is a map, not a program/)
    expect(() => openNamed('map', `${fs.path}/nothing`)).toThrow(/nothing is pinned there/)
    const r = openNamed('map', `nmm_${tag}`)
    expect(r.id).toBe(mapInfoByFd(m.fd).id)
    r.fd.close()
  })

  test('a link is named by its program; BTF cannot be named by a path', () => {
    expect(() => nameForm('btf', './x')).toThrow(/cannot be pinned/)
    expect(nameForm('link', '7')).toEqual({ by: 'id', id: 7 })
    expect(nameForm('map', 'a.bss')).toEqual({ by: 'name', name: 'a.bss' })
    expect(() => nameForm('map', '')).toThrow(NameError)
  })
})
