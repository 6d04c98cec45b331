// Peers over a real unix socket connection: a child process that joins a
// scratch cgroup, then connects; identify() names it (pid, cgroup path and
// id, namespaces) and matchTenant picks its tenant, the admin, or refuses.
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { FdSocket } from '../../lib/ipc/index.js'
import { features } from '../../lib/index.js'
import { resolveConfig, type TenantConfig } from '../../lib/broker/config.js'
import { identify, matchTenant, peerAlive, type Peer } from '../../lib/broker/peer.js'
import { cgroup2Root, nsInode } from '../../lib/broker/procfs.js'
import { BrokerError } from '../../lib/broker/errors.js'
import type { PolicyDocument } from '../../lib/policy/index.js'
import { childCgroup } from './helpers/scratch.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

const policy: PolicyDocument = { cmds: ['map_create'], maps: ['hash'] }

// The child: waits for "go" on stdin, connects, says so, and stays until stdin closes.
const clientScript = `
const net = require('node:net')
let s
process.stdin.on('data', (d) => {
  if (!s && String(d).includes('go')) s = net.connect(process.argv[1], () => process.stdout.write('connected\\n'))
})
process.stdin.on('end', () => process.exit(0))
`

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
}

describe('identify and matchTenant', () => {
  skipAllIf(requireFeature(features.havePeerPidfd))
  let scratch: ReturnType<typeof childCgroup>
  let outer: string
  let inner: string
  let dir: string
  let path: string
  let server: Server
  const pending: ((s: FdSocket) => void)[] = []
  const peers: FdSocket[] = []
  const children: ChildProcess[] = []
  const rel = (p: string) => p.slice(cgroup2Root().length)

  beforeAll(async () => {
    scratch = childCgroup()
    outer = join(scratch.path, 't')
    inner = join(outer, 'inner')
    mkdirSync(inner, { recursive: true })
    dir = mkdtempSync(join(tmpdir(), 'bpfkit-peer-'))
    chmodSync(dir, 0o755)
    path = join(dir, 'broker.sock')
    server = createServer({ pauseOnConnect: true }, (sock) => {
      const s = FdSocket.from(sock)
      peers.push(s)
      pending.shift()?.(s)
    })
    await new Promise<void>((resolve) => server.listen(path, resolve))
    chmodSync(path, 0o777)
  })

  afterAll(async () => {
    for (const c of children) {
      c.kill('SIGKILL')
      await exited(c)
    }
    for (const s of peers) s.close()
    await new Promise((r) => server.close(r))
    rmSync(dir, { recursive: true, force: true })
    rmdirSync(inner)
    rmdirSync(outer)
    scratch[Symbol.dispose]()
  })

  /** A child placed into `cgroup` (when given) that then connects: the server's end of its connection. */
  async function connectFrom(cgroup: string | undefined, options: { uid?: number } = {}): Promise<{ child: ChildProcess; socket: FdSocket }> {
    const child = spawn(process.execPath, ['-e', clientScript, path], { stdio: ['pipe', 'pipe', 'inherit'], uid: options.uid, gid: options.uid })
    children.push(child)
    await new Promise((resolve, reject) => {
      child.once('spawn', resolve)
      child.once('error', reject)
    })
    if (cgroup !== undefined) writeFileSync(join(cgroup, 'cgroup.procs'), String(child.pid))
    const socket = new Promise<FdSocket>((resolve) => pending.push(resolve))
    child.stdin!.write('go\n')
    return { child, socket: await socket }
  }

  const tenant = (name: string, cgroupDir: string, extra: Partial<TenantConfig['match']> = {}): TenantConfig =>
    ({ name, match: { cgroup: rel(cgroupDir), ...extra }, policy })
  const config = (tenants: TenantConfig[], admin?: { uids: number[] }) => resolveConfig({ cgroupRoot: cgroup2Root(), tenants, admin })

  test('the peer: its pid, cgroup path and id, namespaces, a live pidfd', async () => {
    const { child, socket } = await connectFrom(inner)
    const peer = identify(socket, cgroup2Root())
    try {
      expect(peer).toMatchObject({
        pid: child.pid,
        uid: 0,
        gid: 0,
        cgroupPath: rel(inner),
        cgroupId: statSync(inner, { bigint: true }).ino,
        usernsIno: nsInode('self', 'user'),
        netnsIno: nsInode('self', 'net'),
      })
      expect(peer.cgroupPath).toMatch(/^\/bpfkit-test-[0-9-]+\/t\/inner$/)
      expect(peer.pidfd.kind).toBe('pidfd')
      expect(peerAlive(peer)).toBe(true)

      // The deepest cgroup wins, whatever the order.
      const both = [tenant('outer', outer), tenant('inner', inner)]
      expect(matchTenant(peer, config(both))).toEqual({ tenant: expect.objectContaining({ name: 'inner' }) })
      expect(matchTenant(peer, config([...both].reverse()))).toEqual({ tenant: expect.objectContaining({ name: 'inner' }) })
      // A subtree holds its descendants.
      expect(matchTenant(peer, config([tenant('outer', outer)]))).toEqual({ tenant: expect.objectContaining({ name: 'outer' }) })
      // Root inside a tenant's cgroup is that tenant, not the admin.
      expect('tenant' in matchTenant(peer, config([tenant('outer', outer)]))).toBe(true)
      // Every matcher must hold: a uid or user namespace that differs is no match.
      expect(matchTenant(peer, config([tenant('o', outer, { uid: [1000] })]))).toEqual({ admin: true })
      expect(matchTenant(peer, config([tenant('o', outer, { userns: 'non-initial' })]))).toEqual({ admin: true })
      expect(matchTenant(peer, config([tenant('o', outer, { userns: nsInode('self', 'user'), uid: [0] })]))).toEqual({ tenant: expect.objectContaining({ name: 'o' }) })
      // A sibling's cgroup is not a prefix match ('/t' must not take '/t2').
      mkdirSync(`${outer}2`)
      try {
        expect(matchTenant(peer, config([tenant('sibling', `${outer}2`)]))).toEqual({ admin: true })
      } finally {
        rmdirSync(`${outer}2`)
      }
      // Uid 0 in the initial user namespace, no tenant: the admin. Not an admin uid: refused, saying what was seen.
      expect(matchTenant(peer, config([]))).toEqual({ admin: true })
      const refused = matchTenant(peer, config([], { uids: [1000] }))
      expect(refused).toEqual({ refused: `no tenant matches pid ${child.pid} (uid 0, cgroup ${rel(inner)}, user namespace ${nsInode('self', 'user')})` })
    } finally {
      peer.pidfd.close()
    }
    expect(peerAlive(peer)).toBe(false)
  })

  test('equally specific matches are refused as ambiguous; uid 0 of another user namespace is no admin', async () => {
    const { socket } = await connectFrom(outer)
    const peer = identify(socket, cgroup2Root())
    try {
      const c = config([tenant('x', outer, { uid: [0] }), tenant('y', outer, { userns: nsInode('self', 'user') })])
      expect(matchTenant(peer, c)).toEqual({ refused: `pid ${peer.pid} matches tenants 'x' and 'y' equally: the configuration must tell them apart` })
      // More matchers at the same depth win.
      const d = config([tenant('x', outer, { uid: [0] }), tenant('y', outer, { userns: nsInode('self', 'user'), uid: [0] })])
      expect(matchTenant(peer, d)).toEqual({ tenant: expect.objectContaining({ name: 'y' }) })
      const elsewhere: Peer = { ...peer, usernsIno: peer.usernsIno + 1 }
      expect(matchTenant(elsewhere, config([]))).toEqual({ refused: expect.stringMatching(/^no tenant matches pid \d+ \(uid 0, cgroup \/bpfkit-test-[0-9-]+\/t, user namespace \d+\)$/) })
      // A userns-only tenant takes the peer wherever its cgroup is.
      expect(matchTenant(elsewhere, config([{ name: 'ns', match: { userns: elsewhere.usernsIno }, policy }]))).toEqual({ tenant: expect.objectContaining({ name: 'ns' }) })
    } finally {
      peer.pidfd.close()
    }
  })

  test('a peer that is not an admin uid and matches no tenant is refused', async () => {
    const { child, socket } = await connectFrom(undefined, { uid: 65534 })
    const peer = identify(socket, cgroup2Root())
    try {
      expect(peer).toMatchObject({ pid: child.pid, uid: 65534, gid: 65534 })
      expect(matchTenant(peer, config([tenant('outer', outer)]))).toEqual({ refused: expect.stringContaining(`no tenant matches pid ${child.pid} (uid 65534, cgroup `) })
      // Its uid is enough for a uid tenant.
      expect(matchTenant(peer, config([{ name: 'nobody', match: { uid: [65534] }, policy }]))).toEqual({ tenant: expect.objectContaining({ name: 'nobody' }) })
    } finally {
      peer.pidfd.close()
    }
  })

  test('a peer that exited before it was identified is refused (EACCES); a live one dies later: peerAlive false', async () => {
    const gone = await connectFrom(inner)
    gone.child.kill('SIGKILL')
    await exited(gone.child)
    const e = (() => {
      try {
        identify(gone.socket, cgroup2Root()).pidfd.close()
      } catch (err) {
        return err
      }
    })()
    expect(e).toBeInstanceOf(BrokerError)
    expect(e).toMatchObject({ code: 'EACCES', message: `the peer (pid ${gone.child.pid}) exited before it was identified` })

    const later = await connectFrom(inner)
    const peer = identify(later.socket, cgroup2Root())
    try {
      expect(peerAlive(peer)).toBe(true)
      later.child.kill('SIGKILL')
      await exited(later.child)
      expect(peerAlive(peer)).toBe(false)
    } finally {
      peer.pidfd.close()
    }
  })
})
