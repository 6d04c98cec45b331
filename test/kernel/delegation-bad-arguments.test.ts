// The public entry points of delegation, tokens, BTF objects, features and
// object info, walked with null, undefined and wrong types: every refusal
// names the call and the argument (or the kernel's real answer), never a
// JavaScript internal, and nothing is left open.
import { closeSync, openSync, readdirSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  attachMount, BpfToken, Btf, BtfBuilder, delegate, features, openMountRoot, requestDelegation, serveDelegation, spawnDelegated,
} from '../../lib/index.js'
import { FdSocket } from '../../lib/ipc/socket.js'
import { btfInfoByFd, linkInfoByFd, mapInfoByFd, progInfoByFd, setDefaultToken, tokenInfoByFd } from '../../lib/sys/index.js'
import { walkArguments, walkArgumentsAsync } from '../unit/walk-arguments.js'

let devNull: number
const openFds = () => readdirSync('/proc/self/fd').length
let before: number

beforeAll(() => {
  devNull = openSync('/dev/null', 'r')
  before = openFds()
})
afterAll(() => closeSync(devNull))

const intBtf = () => {
  const b = new BtfBuilder()
  b.int('int', 4, { signed: true })
  return b.bytes()
}

// A socket whose peer is gone: a delegation step over it fails at once, with a named error.
function deadSocket(): FdSocket {
  const [a, b] = FdSocket.pair()
  b.close()
  return a
}

describe('bad arguments are named, never JavaScript internals', () => {
  test('delegation mounts, tokens and BTF objects', () => {
    const policy = { cmds: ['map_create'] } as const
    const calls: Array<[string, (...a: unknown[]) => unknown, unknown[]]> = [
      ['delegate', (p, c, o) => delegate(p as never, c as never, o as never), [policy, devNull, {}]],
      ['attachMount', (m, p) => attachMount(m as never, p as never), [devNull, '/nonexistent/bpfkit']],
      ['openMountRoot', (m) => openMountRoot(m as never), [devNull]],
      // A policy that is never valid: no child is ever started.
      ['spawnDelegated', (c, a, o) => spawnDelegated(c as never, a as never, o as never), ['true', [], { policy: 'nothing' }]],
      ['BpfToken.create', (p) => BpfToken.create(p as never), ['/nonexistent/bpfkit']],
      ['BpfToken.fromFd', (fd) => BpfToken.fromFd(fd as never), [devNull]],
      ['BpfToken.fromEnv', (env) => BpfToken.fromEnv(env as never), [{ LIBBPF_BPF_TOKEN_PATH: '/nonexistent/bpfkit' }]],
      ['Btf.loadSync', (b, o) => Btf.loadSync(b as never, o as never), [intBtf(), {}]],
      ['Btf.fromId', (id, o) => Btf.fromId(id as never, o as never), [0x7ffffff0, {}]],
      ['setDefaultToken', (t) => setDefaultToken(t as never), [undefined]],
    ]
    for (const [name, call, valid] of calls) walkArguments(name, call, valid)
    expect(() => delegate(policy, null as never)).toThrow(new TypeError('delegate: fsContext must be an Fd or a descriptor number, got null'))
    expect(() => spawnDelegated('true', null as never, { policy })).toThrow(new TypeError('spawnDelegated: args must be an array of strings, got null'))
    expect(() => spawnDelegated('true', [], null as never)).toThrow(/spawnDelegated: options must be an object with policy/)
    expect(() => BpfToken.fromFd(null as never)).toThrow(new TypeError('BpfToken.fromFd: fd must be an Fd or a descriptor number, got null'))
  })

  test('delegation over sockets', async () => {
    const calls: Array<[string, (...a: unknown[]) => Promise<unknown>, () => unknown[]]> = [
      ['serveDelegation', (s, p, o) => serveDelegation(s as never, p as never, o as never), () => [deadSocket(), { cmds: ['map_create'] }, {}]],
      ['requestDelegation', (s, o) => requestDelegation(s as never, o as never), () => [deadSocket(), {}]],
      ['BpfToken.request', (s, o) => BpfToken.request(s as never, o as never), () => [deadSocket(), {}]],
      ['Btf.load', (b, o) => Btf.load(b as never, o as never), () => [intBtf(), {}]],
    ]
    for (const [name, call, valid] of calls) {
      const sockets: FdSocket[] = []
      await walkArgumentsAsync(name, async (...a) => {
        for (const x of a) if (x instanceof FdSocket) sockets.push(x)
        return call(...a)
      }, valid())
      for (const s of sockets) s.close()
    }
    await expect(serveDelegation(null as never, {})).rejects.toThrow(new TypeError('serveDelegation: socket must be an FdSocket, got null'))
    await expect(BpfToken.request(null as never)).rejects.toThrow(/BpfToken.request: socket must be an FdSocket/)
  })

  test('features and object info', () => {
    const calls: Array<[string, (...a: unknown[]) => unknown, unknown[]]> = [
      ['haveMapType', (t) => features.haveMapType(t as never), ['hash']],
      ['supportsMapType', (t) => features.supportsMapType(t as never), ['hash']],
      ['haveProgramType', (t) => features.haveProgramType(t as never), ['socket_filter']],
      ['haveProgramHelper', (t, h) => features.haveProgramHelper(t as never, h as never), ['socket_filter', 'map_lookup_elem']],
      ['haveBtfKind', (k) => features.haveBtfKind(k as never), ['func']],
      ['haveTokenInfo', (t) => features.haveTokenInfo(t as never), [undefined]],
      ['progInfoByFd', (fd) => progInfoByFd(fd as never), [devNull]],
      ['mapInfoByFd', (fd) => mapInfoByFd(fd as never), [devNull]],
      ['linkInfoByFd', (fd) => linkInfoByFd(fd as never), [devNull]],
      ['btfInfoByFd', (fd) => btfInfoByFd(fd as never), [devNull]],
      ['tokenInfoByFd', (fd) => tokenInfoByFd(fd as never), [devNull]],
    ]
    for (const [name, call, valid] of calls) walkArguments(name, call, valid)
    expect(() => features.haveTokenInfo(null as never)).toThrow(new TypeError('haveTokenInfo: token must be a BpfToken or { fd }, got null'))
  })

  test('nothing was left open', () => {
    expect(openFds()).toBe(before)
  })
})
