// The manager's side of a delegation: answer a tenant's request with a
// bpffs mount configured by a policy.
import { Policy, type PolicyLike } from '../policy/index.js'
import { delegate } from './mount.js'
import { receiveMessage, sendMessage } from './protocol.js'
import type { FdSocket } from '../ipc/socket.js'
import { checkOptions } from '../sys/options.js'
import { socketArg } from './args.js'
import { PolicyError } from '../sys/errors.js'

export interface ServeOptions {
  /** Tell the tenant to attach the bpffs here in its mount namespace (it may choose otherwise). */
  mountAt?: string
  /** Permission bits of the bpffs root. */
  mode?: number
  signal?: AbortSignal
}

/**
 * Answers one delegation request on `socket` (from BpfToken.request or
 * requestDelegation): receives the tenant's bpf filesystem context, sets
 * the delegate_* options of `policy` on it (or of the tenant's smaller
 * wish), and sends back the detached mount. A tenant asking for more than
 * `policy` is refused. Resolves with what was granted.
 *
 * Privileges: CAP_SYS_ADMIN in the initial user namespace. Linux 6.9+.
 * Errors: those of `delegate` (the tenant is told, too), ProtocolError for
 * a malformed request, Error when the tenant asks for more than `policy`.
 */
export async function serveDelegation(socket: FdSocket, policy: PolicyLike, options: ServeOptions = {}): Promise<Policy> {
  socketArg('serveDelegation', socket)
  checkOptions('serveDelegation', options, ['mountAt', 'mode', 'signal'], { types: { mountAt: 'string', mode: 'number', signal: 'object' } })
  const offered = Policy.from(policy)
  const { message, fds } = await receiveMessage(socket, 'request', 1, options.signal)
  const [context] = fds
  try {
    let granted: Policy
    try {
      granted = decideGrant(offered, message.policy as PolicyLike | undefined)
    } catch (e) {
      if (e instanceof PolicyError) {
        await refuse(socket, e.message)
        throw new Error(`serveDelegation: ${e.message}`)
      }
      await refuse(socket, `invalid policy: ${(e as Error).message}`)
      throw e
    }
    let mount
    try {
      mount = delegate(granted, context, { mode: options.mode })
    } catch (e) {
      await refuse(socket, (e as Error).message)
      throw e
    }
    try {
      const mountAt = options.mountAt
      await sendMessage(socket, { type: 'grant', policy: granted.toJSON(), ...(mountAt ? { mountAt } : {}) }, [mount], options.signal)
    } finally {
      mount.close()
    }
    return granted
  } finally {
    context.close()
  }
}

/**
 * What a tenant gets when it asks for `wanted` (undefined: whatever is
 * offered) under `offered`: the one grant rule of serveDelegation and the
 * broker. A wish with token masks only lives under the offered capabilities
 * (a tenant cannot name its own); a wish that is not inside `offered` is
 * refused. Errors: TypeError/RangeError from Policy.from for a wish that is
 * no policy; PolicyError (rule 'delegation') for one asking for more.
 */
export function decideGrant(offered: Policy, wanted: PolicyLike | undefined): Policy {
  if (!(offered instanceof Policy)) throw new TypeError('decideGrant: offered must be a Policy (Policy.from)')
  if (wanted === undefined) return offered
  let wish = Policy.from(wanted)
  if (offered.hasCapabilities && !wish.hasCapabilities) wish = wish.withCapabilitiesOf(offered)
  if (!offered.includes(wish)) {
    throw new PolicyError('delegation', String(wish), `the tenant asked for ${wish}, more than the offered ${offered}`)
  }
  return wish
}

async function refuse(socket: FdSocket, message: string): Promise<void> {
  try {
    await sendMessage(socket, { type: 'refuse', message })
  } catch {
    // The tenant may be gone; the caller reports the cause itself.
  }
}
