// attach and detach: a tenant's program on a hook inside its own scope only.
// Cgroup targets are resolved below the tenant's cgroup directory with
// openat2(RESOLVE_BENEATH | NO_SYMLINKS | NO_XDEV), never by string, so no
// `..`, symlink or mount can lead to another tenant's cgroup. Network devices
// are looked up and attached inside the tenant's own network namespace
// (interface indexes and link_create's target_ifindex are per namespace).
// The link is registered (pinned by the registry), so it outlives the
// broker's fd and the tenant's, until detach or release.
import { constants, fstatSync, openSync, statSync, unlinkSync } from 'node:fs'
import { attachNetkit, attachTcx, attachXdp, BpfLink } from '../../link/index.js'
import { pidfdIsAlive } from '../../ipc/index.js'
import { BpfError, Fd, native, progInfoByFd, SyscallError } from '../../sys/index.js'
import { openNetns } from '../../sys/netns.js'
import { openBeneath } from '../../sys/resolve.js'
import { brokerError } from '../errors.js'
import type { AttachRequest, AttachTarget, DetachRequest, Kind } from '../protocol.js'
import type { ResolvedTenant } from '../config.js'
import { visible } from '../scope.js'
import { requireTenant, type Handler, type HandlerContext, type HandlerResult } from '../state.js'
import { objectView, openVisible } from './view-object.js'
import { letGo, reserveQuota } from './quota-book.js'
import { openActionable } from './view.js'

type NetdevFamily = 'xdp' | 'tcx' | 'netkit'

// The attach types each network family takes, so that the policy check and
// the attach are about the same hook.
const netdevAttachTypes: Record<NetdevFamily, readonly string[]> = {
  xdp: ['xdp'],
  tcx: ['tcx_ingress', 'tcx_egress'],
  netkit: ['netkit_primary', 'netkit_peer'],
}

const EOPNOTSUPP = 95

function familyOf(target: AttachTarget): 'cgroup' | 'netdev' {
  return 'cgroup' in target ? 'cgroup' : 'netdev'
}

/** Refuses a target family the tenant's config does not allow, or an attach type its policy does not delegate. */
function checkAllowed(tenant: ResolvedTenant, req: AttachRequest): void {
  const family = familyOf(req.target)
  if (!tenant.attach[family]) {
    throw brokerError('EPERM', `tenant ${tenant.name} may not attach to ${family === 'cgroup' ? 'cgroups' : 'network devices'} (its config's attach.${family} is off)`, { rule: `attach.${family}` })
  }
  // A token's attach types are checked at program load; the broker asks the
  // same of the policy for the hook. prog_load is the command any program
  // the tenant can attach came through (the broker's load or its token's).
  const refusal = tenant.policy.explain({ cmd: 'prog_load', attachType: req.attachType as never }, 'policy')
  if (refusal) throw refusal
}

/** The tenant's cgroup directory `rel` (relative to its own), opened beneath it. */
function openTargetCgroup(tenant: ResolvedTenant, rel: string): Fd {
  const own = tenant.match.cgroup
  if (own === undefined) {
    throw brokerError('EPERM', `tenant ${tenant.name} is matched by no cgroup, so it has no cgroup to attach to`, { rule: 'attach.cgroup' })
  }
  if (typeof rel !== 'string' || rel.includes('\0')) throw brokerError('EINVAL', 'target.cgroup must be a path relative to your cgroup')
  // '' and '.' name the tenant's own cgroup; a leading '/' means the same root (the tenant's cgroup, as it sees it).
  const path = rel.replace(/^\/+/, '') || '.'
  const root = new Fd(openSync(own.dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW), 'cgroup')
  try {
    return openBeneath(root, path, { directory: true })
  } catch (e) {
    const code = (e as { code?: string }).code
    if (code === 'EXDEV') throw brokerError('EPERM', `cgroup '${rel}' is not below your cgroup (no '..', no mount crossings)`, { rule: 'attach.cgroup' })
    if (code === 'ELOOP') throw brokerError('EPERM', `cgroup '${rel}' goes through a symlink; give the path itself`, { rule: 'attach.cgroup' })
    if (code === 'ENOENT') throw brokerError('ENOENT', `no cgroup '${rel}' below your cgroup`)
    if (code === 'ENOTDIR') throw brokerError('EINVAL', `cgroup '${rel}' is not a directory`)
    throw e
  } finally {
    root.close()
  }
}

/** The tenant's network namespace, from its connecting process; refused once that process is gone (its pid may be another's). */
function openPeerNetns(ctx: HandlerContext): Fd {
  let ns: Fd
  try {
    ns = openNetns(`/proc/${ctx.peer.pid}/ns/net`, 'attach')
  } catch {
    throw brokerError('EACCES', 'your process exited: the broker cannot find your network namespace')
  }
  // Opened first, checked after: if the pid was still the peer's when checked, the namespace is the peer's.
  if (!pidfdIsAlive(ctx.peer.pidfd)) {
    ns.close()
    throw brokerError('EACCES', 'your process exited: the broker cannot find your network namespace')
  }
  // A tenant in the broker's own namespace (the host's) has no devices of its
  // own there: every interface of the node would be its target.
  if (fstatSync(ns.fd).ino === statSync('/proc/self/ns/net').ino) {
    ns.close()
    throw brokerError('EPERM', 'your process shares the broker\'s network namespace: network devices are targets only in a namespace of your own', { rule: 'attach.netdev' })
  }
  return ns
}

function attachNetdev(ctx: HandlerContext, prog: Fd, req: AttachRequest, target: { ifname: string; netdev: NetdevFamily }): BpfLink {
  const family = target.netdev
  const allowed = netdevAttachTypes[family]
  if (allowed === undefined) throw brokerError('EINVAL', `target.netdev must be 'xdp', 'tcx' or 'netkit', got '${String(family)}'`)
  if (typeof req.attachType !== 'string' || !allowed.includes(req.attachType)) {
    throw brokerError('EINVAL', `a ${family} target takes attach type ${allowed.map((t) => `'${t}'`).join(' or ')}, got '${String(req.attachType)}'`)
  }
  if (family !== 'xdp' && (req.flags ?? 0) !== 0) throw brokerError('EINVAL', `flags are not taken for ${family} targets (programs go last)`)
  const ns = openPeerNetns(ctx)
  try {
    const program = { fd: prog.fd }
    if (family === 'xdp') return attachXdp(program, target.ifname, { netns: ns.fd, flags: req.flags })
    if (family === 'tcx') return attachTcx(program, target.ifname, req.attachType === 'tcx_ingress' ? 'ingress' : 'egress', { netns: ns.fd })
    return attachNetkit(program, target.ifname, { side: req.attachType === 'netkit_peer' ? 'peer' : 'primary', netns: ns.fd })
  } finally {
    ns.close()
  }
}

function attachCgroup(tenant: ResolvedTenant, prog: Fd, req: AttachRequest, rel: string): BpfLink {
  const dir = openTargetCgroup(tenant, rel)
  try {
    return BpfLink.create({ fd: prog.fd }, { attachType: req.attachType as never, targetFd: dir.fd, flags: req.flags })
  } finally {
    dir.close()
  }
}

async function attach(ctx: HandlerContext, req: AttachRequest): Promise<HandlerResult> {
  const tenant = requireTenant(ctx)
  const { state } = ctx
  checkAllowed(tenant, req)
  using _quota = reserveQuota(state, tenant, { links: 1 })
  const prog = openVisible(ctx, 'prog', req.progId)
  let link: BpfLink
  let progName: string
  try {
    // Links have no name of their own: the record keeps the program's, as a label.
    progName = progInfoByFd(prog.fd).name
    const target = req.target
    link = 'cgroup' in target ? attachCgroup(tenant, prog, req, target.cgroup) : attachNetdev(ctx, prog, req, target as { ifname: string; netdev: NetdevFamily })
  } finally {
    prog.close()
  }
  // Until registered, the broker's fd is the only thing holding the link: any
  // failure below detaches it (a registered one is dropped again first).
  let out: Fd | undefined
  let id: number | undefined
  try {
    id = state.registry.add(tenant.name, 'link', link.fd, 'made', progName).id
    state.discovery.invalidate(tenant.name)
    out = new Fd(native.dupFd(link.fd), 'link')
    const owners = state.owners()
    const isVisible = (kind: Kind, id: number) => visible(owners, tenant.name, kind, id)
    const object = objectView(state, 'link', id, out, { owner: tenant.name, origin: 'made', pins: [] }, isVisible)
    return { reply: { object }, fds: [out] }
  } catch (e) {
    out?.close()
    if (id !== undefined) state.registry.remove('link', id)
    throw e
  } finally {
    link.close()
  }
}

/**
 * Ends one of the tenant's links: the kernel link is detached (LINK_DETACH)
 * while the broker still has it, then the record, its broker pin and the
 * tenant pins of it are dropped. A link the kernel cannot detach in place
 * (EOPNOTSUPP) ends when its last holder lets go.
 */
async function detach(ctx: HandlerContext, req: DetachRequest): Promise<HandlerResult> {
  const tenant = requireTenant(ctx)
  const { state } = ctx
  const id = req.linkId
  const record = state.registry.find('link', id)
  let fd: Fd | undefined
  if (record && record.tenant === tenant.name) {
    try {
      fd = state.registry.openObject(record)
    } catch {
      // Its pin is gone: nothing of the kernel's left to detach; the record goes below.
    }
  } else {
    // A link discovery found only on the tenant's cgroup is someone else's (the host's, a parent tenant's): seen, not detached.
    fd = openActionable(ctx, 'link', id)
  }
  try {
    if (fd) detachKernelLink(fd)
  } finally {
    fd?.close()
  }
  if (record && record.tenant === tenant.name) {
    removeTenantPins(state.config.tenantPinRoot, tenant.name, record.pins)
    // Detached, the link still counts while the tenant holds it (quotas.ts).
    letGo(state, record)
  }
  state.discovery.invalidate(tenant.name)
  return { reply: {} }
}

function detachKernelLink(fd: Fd): void {
  try {
    native.linkDetach(fd.fd)
  } catch (e) {
    if (e instanceof BpfError && Math.abs(e.errno) === EOPNOTSUPP) return
    if (e instanceof SyscallError && e.code === 'EOPNOTSUPP') return
    throw e
  }
}

/** Drops the tenant pins of an object that ends (best effort: a pin already gone is fine). */
export function removeTenantPins(tenantPinRoot: string, tenant: string, names: readonly string[]): void {
  for (const name of names) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) continue
    try {
      unlinkSync(`${tenantPinRoot}/${tenant}/${name}`)
    } catch {
      // already gone
    }
  }
}

export const attachHandlers: Record<'attach' | 'detach', Handler> = { attach, detach }
