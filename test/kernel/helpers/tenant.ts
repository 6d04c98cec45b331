// A tenant: a child process that is root of fresh user and mount namespaces
// (util-linux unshare; Node itself cannot unshare a user namespace, being
// multi-threaded), running a snippet against the compiled package, with a
// socket to the test (the manager) on its fd 3.
import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { FdSocket } from '../../../lib/ipc/index.js'
import { repoRoot } from './raw.js'

const dist = (p: string) => JSON.stringify(join(repoRoot, 'dist', p))

// What every snippet can use.
const prelude = `
const bpfkit = require(${dist('index.js')})
const { native } = require(${dist('sys/index.js')})
const fs = require('fs')
const { spawnSync } = require('child_process')
const socket = bpfkit.FdSocket.from(3)
const json = (v) => JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? x.toString() : x))
const report = (v) => process.stdout.write(json(v) + '\\n')
const failure = (e) => ({ ok: false, name: e.name, code: e.code, message: e.message, rule: e.rule, requested: e.requested, command: e.command })
// Runs f; closes what it returns; the outcome as data.
const outcome = (f) => { try { const r = f(); if (r && typeof r.close === 'function') r.close(); return { ok: true } } catch (e) { return failure(e) } }
const outcomeAsync = async (f) => { try { const r = await f(); if (r && typeof r.close === 'function') r.close(); return { ok: true } } catch (e) { return failure(e) } }
const fdTargets = () => fs.readdirSync('/proc/self/fd').map((fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd) } catch { return '' } })
// Runs a snippet in a grandchild without CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN
// and CAP_SYS_ADMIN (dropped from the bounding and inheritable sets), with
// extraFd as its fd 3. Returns the JSON it printed.
const withoutCaps = (code, extraFd) => {
  const drop = '-bpf,-perfmon,-net_admin,-sys_admin'
  const pre = 'const bpfkit = require(' + ${JSON.stringify(dist('index.js'))} + '); const json = (v) => JSON.stringify(v);' +
    'const failure = (e) => ({ ok: false, name: e.name, code: e.code, message: e.message });' +
    'const outcome = (f) => { try { const r = f(); if (r && typeof r.close === "function") r.close(); return { ok: true } } catch (e) { return failure(e) } };'
  const r = spawnSync('setpriv', ['--bounding-set', drop, '--inh-caps', drop, '--', process.execPath, '-e', pre + code],
    { stdio: ['ignore', 'pipe', 'pipe', extraFd], encoding: 'utf8' })
  if (r.status !== 0) throw new Error('capless child failed: ' + r.stderr)
  return JSON.parse(r.stdout.trim().split('\\n').pop())
}
`

export interface Tenant {
  /** The manager's end of the tenant's socket. */
  socket: FdSocket
  pid: number
  /** The last JSON line the snippet printed, once it exited with status 0. */
  result: Promise<any>
}

/**
 * Starts `snippet` (the body of an async function) in a tenant. The snippet
 * sees bpfkit, native, socket, report(value), outcome(fn), withoutCaps(...).
 */
export function startTenant(snippet: string, unshareArgs: string[] = ['--mount']): Tenant {
  const code = `${prelude}\n;(async () => {\n${snippet}\n})().then(() => socket.close(), (e) => { console.error(e && e.stack || e); process.exit(1) })`
  return spawnTenant(['-e', code], unshareArgs)
}

/**
 * Starts the tenant fixture test/fixtures/tenant/<name>.ts (see kit.ts there)
 * in a tenant. `R` is the type of what it reports.
 */
export function startTenantFixture<R = any>(name: string, unshareArgs: string[] = ['--mount']): Tenant & { result: Promise<R> } {
  return spawnTenant([tenantFixture(name)], unshareArgs)
}

function spawnTenant(nodeArgs: string[], unshareArgs: string[]): Tenant {
  const [mine, theirs] = FdSocket.pair()
  const child = spawn('unshare', ['--user', '--map-root-user', ...unshareArgs, process.execPath, ...nodeArgs], {
    stdio: ['ignore', 'pipe', 'pipe', theirs.fd],
  })
  theirs.close()
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => { stdout += d })
  child.stderr!.on('data', (d) => { stderr += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), 25_000)
  const result = new Promise((resolve, reject) => {
    child.on('exit', (status, signal) => {
      clearTimeout(timer)
      mine.close()
      if (status !== 0) return reject(new Error(`tenant failed (${status ?? signal}): ${stderr}`))
      const last = stdout.trim().split('\n').pop()
      resolve(last ? JSON.parse(last) : undefined)
    })
  })
  // Awaiting is up to the test; an unobserved failure must not crash the run.
  result.catch(() => {})
  return { socket: mine, pid: child.pid as number, result }
}

/**
 * The compiled form of the tenant fixture test/fixtures/tenant/<name>.ts
 * (built by the suite's global setup, test/setup/build-fixtures.mjs), to
 * run with node in a child process.
 */
export function tenantFixture(name: string): string {
  return join(repoRoot, '.cache', 'fixtures', 'tenant', `${name}.js`)
}

/** Why util-linux cannot make a tenant's namespaces here, or undefined when it can (a probe, so tests say why they skip). */
export function userNamespacesMissing(): string | undefined {
  if (namespaces === undefined) {
    const r = spawnSync('unshare', ['--user', '--map-root-user', '--mount', 'true'], { encoding: 'utf8' })
    namespaces = r.status === 0 ? null
      : `unshare --user --map-root-user --mount fails here: ${r.error?.message ?? r.stderr.trim()}`
  }
  return namespaces ?? undefined
}
let namespaces: string | null | undefined

/** Whether util-linux can make the namespaces here. */
export function userNamespacesWork(): boolean {
  return userNamespacesMissing() === undefined
}
