// The messages between a tenant and its manager: JSON with the fds they are
// about. Version 1.
//
//   tenant  -> manager  { type: 'request', policy? }          + [bpf fs context]
//   manager -> tenant   { type: 'grant', policy, mountAt? }   + [detached mount]
//   manager -> tenant   { type: 'refuse', message }
import type { Fd } from '../sys/index.js'
import type { DelegationPolicy } from '../policy/index.js'
import { DelegationRefusedError } from './errors.js'
import { ProtocolError } from '../ipc/errors.js'
import type { FdSocket } from '../ipc/socket.js'

export const protocol = 'bpfkit-delegation/1'

export type DelegationMessage =
  | { protocol: typeof protocol; type: 'request'; policy?: DelegationPolicy }
  | { protocol: typeof protocol; type: 'grant'; policy: DelegationPolicy; mountAt?: string }
  | { protocol: typeof protocol; type: 'refuse'; message: string }

type Body = DelegationMessage extends infer M ? (M extends DelegationMessage ? Omit<M, 'protocol'> : never) : never

export function sendMessage(socket: FdSocket, body: Body, fds: readonly Fd[] = [], signal?: AbortSignal): Promise<void> {
  return socket.send(Buffer.from(JSON.stringify({ protocol, ...body })), fds, { signal })
}

/**
 * Receives one delegation message of an expected type with its fds; a
 * 'refuse' comes back as a DelegationRefusedError with the manager's words. Errors:
 * ProtocolError for anything else (fds already closed).
 */
export async function receiveMessage<T extends DelegationMessage['type']>(
  socket: FdSocket, type: T, fds: number, signal?: AbortSignal,
): Promise<{ message: Extract<DelegationMessage, { type: T }>; fds: Fd[] }> {
  // A refusal carries no fd, so the count is checked once the type is known.
  const m = await socket.receive({ maxFds: fds, maxBytes: 64 * 1024, signal })
  if (m === undefined) throw new ProtocolError(`the peer closed the socket before sending a '${type}' message`)
  const close = () => m.fds.forEach((f) => f.close())
  let parsed: unknown
  try {
    parsed = JSON.parse(m.data.toString('utf8'))
  } catch {
    close()
    throw new ProtocolError('the peer sent a message that is not JSON')
  }
  const msg = parsed as Partial<DelegationMessage>
  if (msg === null || typeof msg !== 'object' || msg.protocol !== protocol) {
    close()
    throw new ProtocolError(`the peer does not speak ${protocol}`)
  }
  if (msg.type === 'refuse' && type !== 'refuse') {
    close()
    throw new DelegationRefusedError(String((msg as { message?: unknown }).message))
  }
  if (msg.type !== type) {
    close()
    throw new ProtocolError(`expected a '${type}' message, got '${String(msg.type)}'`)
  }
  if (m.fds.length !== fds) {
    close()
    throw new ProtocolError(`a '${type}' message carries ${fds} fd${fds === 1 ? '' : 's'}, got ${m.fds.length}`)
  }
  return { message: msg as Extract<DelegationMessage, { type: T }>, fds: m.fds }
}
