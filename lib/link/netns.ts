// Programs on a network namespace: sk_lookup (which socket a connection or
// datagram arriving in the namespace goes to, Linux 5.9) and flow_dissector
// (how the namespace's packets are parsed for hashing, Linux 5.8 as a link).
// Both are netns links (LINK_CREATE with the namespace's fd as target): the
// attachment follows the link, not the process that made it, and the
// namespace is named by a path (/run/netns/NAME, /proc/PID/ns/net) or an open
// fd, so a daemon attaches to namespaces it never entered.
import { closeSync, fstatSync, openSync, readlinkSync, statSync } from 'node:fs'
import { haveNetnsLinks, haveSkLookup } from '../features/attach-sockets.js'
import { Fd, createBpfError, kernel, native } from '../sys/index.js'
import type { FdRef } from '../map/values.js'
import { describeValue } from '../sys/options.js'
import { BpfLink } from './link.js'
import { programFd, programType } from './program-ref.js'

/** The program types a namespace takes, with their attach type (the same name) and the feature that carries them. */
const NETNS_PROGRAMS: Readonly<Record<string, () => void>> = {
  flow_dissector: haveNetnsLinks,
  sk_lookup: haveSkLookup,
}

// What the kernel would answer with a bare EINVAL, named: a file that is no
// namespace (namespaces live on the nsfs filesystem, the device of our own
// /proc/self/ns/net), or a namespace of another kind (opened through /proc,
// its fd reads back as "mnt:[...]"; one bind-mounted elsewhere reads as its
// path, and only the kernel can tell its kind).
function assertNetnsFd(fd: number, what: string): void {
  let target: string
  let dev: number
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`)
    dev = fstatSync(fd).dev
  } catch {
    throw new TypeError(`attachNetns: ${what} is not an open file descriptor`)
  }
  const kind = /^([a-z_]+):\[\d+\]$/.exec(target)?.[1]
  if (dev !== statSync('/proc/self/ns/net').dev || (kind !== undefined && kind !== 'net')) {
    throw new TypeError(`attachNetns: ${what} is not a network namespace (it is ${target})`)
  }
}

/**
 * Attaches a flow_dissector or sk_lookup program to a network namespace,
 * named by a path (/run/netns/NAME as `ip netns add` makes, /proc/PID/ns/net)
 * or an open namespace fd (which stays the caller's). The attach type follows
 * from the program type. Returns a netns link: `info()` gives the attach type
 * (and the namespace's inode), `update(program)` swaps the program in place,
 * closing (unless pinned) detaches.
 *
 * sk_lookup programs run in a chain (several may be attached); a namespace
 * takes one flow dissector, and none while one is attached to the initial
 * namespace (which then overrides all).
 *
 * Errors: TypeError for a program of another type or a target that is not a
 * network namespace; ENOENT for a missing path; NotSupportedError naming 5.8
 * (netns links) or 5.9 (sk_lookup); BpfError E2BIG when the namespace
 * already has a flow dissector, EEXIST when the initial namespace has one
 * (or, attaching to the initial one, another namespace has), EPERM without
 * CAP_NET_ADMIN over the namespace.
 */
export function attachNetns(program: FdRef, netns: string | number): BpfLink {
  const progFd = programFd('attachNetns', program)
  const type = programType('attachNetns', program)
  const feature = NETNS_PROGRAMS[type]
  if (feature === undefined) throw new TypeError(`attachNetns: a ${type} program does not attach to a network namespace (flow_dissector and sk_lookup do)`)
  if (typeof netns === 'number') {
    if (!Number.isInteger(netns) || netns < 0) throw new RangeError(`attachNetns: netns fd must be a non-negative integer, got ${netns}`)
  } else if (typeof netns !== 'string') {
    throw new TypeError(`attachNetns: netns must be a path or a namespace fd, got ${describeValue(netns)}`)
  }
  feature()
  const nsFd = typeof netns === 'number' ? netns : openSync(netns, 'r')
  try {
    assertNetnsFd(nsFd, typeof netns === 'number' ? `fd ${netns}` : netns)
    const fd = native.linkCreate({ progFd, targetFd: nsFd, attachType: kernel.attachTypes[type as 'flow_dissector' | 'sk_lookup'] })
    return BpfLink.fromLinkFd(new Fd(fd, 'link'))
  } catch (e) {
    // The kernel's "too many programs" for a hook that takes one.
    if (type === 'flow_dissector' && (e as { code?: string }).code === 'E2BIG') {
      throw createBpfError('link_create', 7, undefined, undefined, 'the namespace already has a flow dissector (one per namespace): update that link instead')
    }
    throw e
  } finally {
    if (typeof netns !== 'number') closeSync(nsFd)
  }
}
