// The tenant's side of a delegation: ask the manager for a delegated bpffs.
import type { Fd } from '../sys/index.js'
import { Policy, type PolicyLike } from '../policy/index.js'
import { ProtocolError } from '../ipc/errors.js'
import { attachMount, openBpffsContext } from './mount.js'
import { receiveMessage, sendMessage } from './protocol.js'
import type { FdSocket } from '../ipc/socket.js'
import { checkOptions } from '../sys/options.js'
import { socketArg } from './args.js'

export interface RequestOptions {
  /** Ask for less than the manager offers (least privilege); the manager refuses more. */
  policy?: PolicyLike
  /** Attach the delegated bpffs here in the caller's mount namespace (overrides the manager's mountAt). */
  mountAt?: string
  signal?: AbortSignal
}

export interface Delegation {
  /** The detached mount (O_PATH). Closing it unmounts a mount never attached. */
  mount: Fd
  /** What the manager says it granted; a token made from the mount tells the kernel's view. */
  policy: Policy
  /** Where the mount was attached, if anywhere. */
  mountAt?: string
}

/**
 * Asks the manager at the other end of `socket` (serveDelegation) for a
 * delegated bpffs: opens a bpf filesystem context in the caller's user
 * namespace, sends it, and receives the mount configured with the policy.
 * Needs CAP_SYS_ADMIN over the caller's mount namespace (root in fresh user
 * and mount namespaces). Linux 6.9+ (the manager's delegate_* options).
 * Errors: BpfError from fsopen/move_mount (worded), DelegationRefusedError,
 * ProtocolError.
 */
export async function requestDelegation(socket: FdSocket, options: RequestOptions = {}): Promise<Delegation> {
  socketArg('requestDelegation', socket)
  checkOptions('requestDelegation', options, ['policy', 'mountAt', 'signal'], { types: { mountAt: 'string', signal: 'object' } })
  const wanted = options.policy === undefined ? undefined : Policy.from(options.policy)
  const context = openBpffsContext()
  try {
    await sendMessage(socket, { type: 'request', ...(wanted ? { policy: wanted.toJSON() } : {}) }, [context], options.signal)
  } finally {
    context.close()
  }
  const { message, fds } = await receiveMessage(socket, 'grant', 1, options.signal)
  const mount = fds[0]
  try {
    let policy: Policy
    try {
      policy = Policy.from(message.policy)
    } catch (e) {
      throw new ProtocolError(`the manager granted an invalid policy: ${(e as Error).message}`)
    }
    const mountAt = options.mountAt ?? message.mountAt
    if (mountAt !== undefined) attachMount(mount, mountAt)
    return { mount, policy, mountAt }
  } catch (e) {
    mount.close()
    throw e
  }
}
