// Pinning, info, ID walks, fd by ID, BTF load, links and tokens through the
// native layer.
import { closeSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import {
  BpfError, btfInfoByFd, Fd, kernel, linkInfoByFd, mapInfoByFd, native, progInfoByFd, VerifierError,
} from '../../lib/sys/index.js'
import { inUserNamespace, intBtf, returnImm } from './helpers/raw.js'
import { childCgroup, privateBpffs } from './helpers/scratch.js'
import { skipUnless } from './helpers/requires.js'
import * as features from '../../lib/features/index.js'

const { mapTypes, progTypes, attachTypes } = kernel

function hashMap(name = 'sys_obj'): Fd {
  return new Fd(native.mapCreate({ mapType: mapTypes.hash, keySize: 4, valueSize: 4, maxEntries: 8, name }), 'map')
}
function socketFilter(name = 'sys_obj'): Fd {
  return new Fd(native.progLoadSync({ progType: progTypes.socket_filter, insns: returnImm(0), license: 'GPL', name }).fd, 'prog')
}

describe('obj_pin / obj_get', () => {
  test('pins a map in a private bpffs and opens it again', () => {
    using fs = privateBpffs()
    using m = hashMap('pinned')
    const path = join(fs.path, 'm')
    native.objPin(m.fd, path)
    using again = new Fd(native.objGet(path), 'map')
    expect(mapInfoByFd(again.fd).id).toBe(mapInfoByFd(m.fd).id)
    expect(() => native.objPin(m.fd, path)).toThrow(expect.objectContaining({ code: 'EEXIST', command: 'obj_pin' }))
    expect(() => native.objGet(join(fs.path, 'missing'))).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    expect(() => native.objGet('')).toThrow(TypeError)
  })
})

describe('obj_get_info_by_fd', () => {
  test('map and program info match what was created', () => {
    using m = hashMap('info_map')
    using p = socketFilter('info_prog')
    const mi = mapInfoByFd(m.fd)
    expect(mi).toMatchObject({ type: 'hash', name: 'info_map', keySize: 4, valueSize: 4, maxEntries: 8 })
    const pi = progInfoByFd(p.fd)
    expect(pi).toMatchObject({ type: 'socket_filter', name: 'info_prog', gplCompatible: true, mapIds: [] })
    expect(pi.tag).toMatch(/^[0-9a-f]{16}$/)
    expect(pi.xlatedSize).toBe(16)
  })

  test('a program lists the maps it uses', () => {
    using m = hashMap('used_map')
    // r1 = map (ld_imm64 pseudo map fd); r0 = 0; exit
    const insns = new Uint8Array(32)
    const v = new DataView(insns.buffer)
    insns[0] = 0x18
    insns[1] = (1 << 4) | 1 // src = BPF_PSEUDO_MAP_FD, dst = r1
    v.setInt32(4, m.fd, true)
    insns.set(returnImm(0), 16)
    using p = new Fd(native.progLoadSync({ progType: progTypes.socket_filter, insns, license: 'GPL' }).fd, 'prog')
    expect(progInfoByFd(p.fd).mapIds).toEqual([mapInfoByFd(m.fd).id])
  })

  test('the info buffer must not be empty; a closed fd is EBADF', () => {
    using m = hashMap()
    expect(() => native.objGetInfoByFd(m.fd, new Uint8Array(0))).toThrow(RangeError)
    const n = m.fd
    m.close()
    expect(() => native.objGetInfoByFd(n, new Uint8Array(8))).toThrow(expect.objectContaining({ code: expect.stringMatching(/^EBADFD?$/) }))
  })
})

describe('IDs', () => {
  test('GET_NEXT_ID and GET_FD_BY_ID find this test\'s objects', () => {
    using m = hashMap('walk_map')
    using p = socketFilter('walk_prog')
    const mapId = mapInfoByFd(m.fd).id
    const progId = progInfoByFd(p.fd).id
    const walk = (next: (id: number) => number) => {
      const ids: number[] = []
      for (let id = next(0); id !== 0; id = next(id)) ids.push(id)
      return ids
    }
    expect(walk(native.mapGetNextId)).toContain(mapId)
    expect(walk(native.progGetNextId)).toContain(progId)
    // vmlinux has a BTF ID from 5.11 on; before, only loaded BTF is listed.
    if (features.supportsKernelBtfIds()) expect(walk(native.btfGetNextId).length).toBeGreaterThan(0)
    using m2 = new Fd(native.mapGetFdById(mapId), 'map')
    expect(mapInfoByFd(m2.fd).name).toBe('walk_map')
    using p2 = new Fd(native.progGetFdById(progId), 'prog')
    expect(progInfoByFd(p2.fd).name).toBe('walk_prog')
    expect(() => native.mapGetFdById(0)).toThrow(RangeError)
    expect(() => native.progGetFdById(0xfffffff0)).toThrow(expect.objectContaining({ code: 'ENOENT', command: 'prog_get_fd_by_id' }))
    expect(() => (native.mapGetFdById as (...a: number[]) => number)(mapId, 0, 5)).toThrow(/does not take a token/)
  })

  test('the kernel BTF opens by ID and describes itself', (ctx) => {
    skipUnless(ctx, features.haveKernelBtfIds)
    const id = native.btfGetNextId(0)
    using b = new Fd(native.btfGetFdById(id), 'btf')
    const info = btfInfoByFd(b.fd)
    expect(info.id).toBe(id)
    expect(info.size).toBeGreaterThan(0)
  })
})

describe('btf_load', () => {
  test('loads raw BTF, async and sync', async () => {
    const r = await native.btfLoad({ btf: intBtf() })
    using b = new Fd(r.fd, 'btf')
    const info = btfInfoByFd(b.fd)
    expect(info.kernelBtf).toBe(false)
    expect(info.size).toBe(intBtf().length)
    using b2 = new Fd(native.btfLoadSync({ btf: intBtf(), logLevel: 1 }).fd, 'btf')
    expect(btfInfoByFd(b2.fd).id).toBeGreaterThan(info.id)
  })

  test('bad BTF is rejected with the BTF log', async () => {
    const bad = intBtf()
    bad[36 + 0] = 64 // int of 64 bits in a 4-byte type
    const err = await native.btfLoad({ btf: bad }).catch((e) => e)
    expect(err).toBeInstanceOf(VerifierError)
    expect(err).toMatchObject({ command: 'btf_load', code: 'EINVAL' })
    expect((err as VerifierError).log.length).toBeGreaterThan(0)
    expect(() => native.btfLoadSync({ btf: new Uint8Array(8) })).toThrow(/24-byte BTF header/)
  })
})

describe('links', () => {
  test('LINK_CREATE on a cgroup this test made, then LINK_DETACH', () => {
    using cg = childCgroup()
    const cgFd = openSync(cg.path, 'r')
    try {
      using p = new Fd(native.progLoadSync({
        progType: progTypes.cgroup_skb, expectedAttachType: attachTypes.cgroup_inet_ingress, insns: returnImm(1), license: 'GPL',
      }).fd, 'prog')
      using l = new Fd(native.linkCreate({ progFd: p.fd, targetFd: cgFd, attachType: attachTypes.cgroup_inet_ingress }), 'link')
      const info = linkInfoByFd(l.fd)
      expect(info).toMatchObject({ type: 'cgroup', progId: progInfoByFd(p.fd).id, attachType: 'cgroup_inet_ingress' })
      using l2 = new Fd(native.linkGetFdById(info.id), 'link')
      expect(linkInfoByFd(l2.fd).id).toBe(info.id)
      native.linkDetach(l.fd)
      // A detached cgroup link forgets its cgroup (cgroup_id, the first u64 of the union, is 0).
      const raw = new Uint8Array(64)
      native.objGetInfoByFd(l.fd, raw)
      expect(new DataView(raw.buffer).getBigUint64(16, true)).toBe(0n)
      using notLink = new Fd(native.mapCreate({ mapType: 1, keySize: 4, valueSize: 4, maxEntries: 1 }), 'map')
      expect(() => native.linkDetach(notLink.fd)).toThrow(BpfError)
      expect(() => native.linkCreate({ progFd: p.fd, targetFd: cgFd, targetIfindex: 1, attachType: 0 })).toThrow(/exclusive/)
    } finally {
      closeSync(cgFd)
    }
  })
})

describe('tokens and namespaces', () => {
  test('BPF_TOKEN_CREATE in the initial user namespace is EOPNOTSUPP with the cause', (ctx) => {
    expect(() => native.tokenCreate(-3)).toThrow(RangeError)
    skipUnless(ctx, features.haveBpfToken)
    using fs = privateBpffs()
    const dir = openSync(fs.path, 'r')
    try {
      expect(() => native.tokenCreate(dir)).toThrow(expect.objectContaining({ command: 'token_create', code: 'EOPNOTSUPP' }))
      expect(() => native.tokenCreate(dir)).toThrow(/initial user namespace/)
    } finally {
      closeSync(dir)
    }
    expect(() => native.tokenCreate(-3)).toThrow(RangeError)
  })

  test('in a new user namespace without a token, map_create is EPERM and says why', () => {
    const r = inUserNamespace('userns-no-token') as Record<string, string>
    expect(r).toMatchObject({ code: 'EPERM', command: 'map_create', walk: 'EPERM' })
    expect(r.message).toMatch(/no CAP_BPF .* no token/)
  })
})
