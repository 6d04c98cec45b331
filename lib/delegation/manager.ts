// The manager's side of a delegation: answer a tenant's request with a
// bpffs mount configured by a policy.
import { Policy, type PolicyLike } from '../policy/index.js'
import { delegate } from './mount.js'
import { receiveMessage, sendMessage } from './protocol.js'
import type { FdSocket } from '../ipc/socket.js'
import { checkOptions } from '../sys/options.js'
import { socketArg } from './args.js'

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
    let granted = offered
    if (message.policy !== undefined) {
      let wanted: Policy
      try {
        wanted = Policy.from(message.policy)
      } catch (e) {
        await refuse(socket, `invalid policy: ${(e as Error).message}`)
        throw e
      }
      // A tenant asking for smaller masks lives under the offered capabilities; it cannot name its own.
      if (offered.hasCapabilities && !wanted.hasCapabilities) wanted = wanted.withCapabilitiesOf(offered)
      if (!offered.includes(wanted)) {
        const why = `the tenant asked for ${wanted}, more than the offered ${offered}`
        await refuse(socket, why)
        throw new Error(`serveDelegation: ${why}`)
      }
      granted = wanted
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

async function refuse(socket: FdSocket, message: string): Promise<void> {
  try {
    await sendMessage(socket, { type: 'refuse', message })
  } catch {
    // The tenant may be gone; the caller reports the cause itself.
  }
}
