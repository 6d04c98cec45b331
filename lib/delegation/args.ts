// Argument checks shared by the delegation entry points: a wrong value is a
// TypeError naming the call and the argument, never a JavaScript internal.
import { Fd } from '../sys/index.js'
import { describeValue } from '../sys/options.js'
import { FdSocket } from '../ipc/socket.js'

/** The fd number of an owned Fd or a plain descriptor number. */
export function fdNumberOf(where: string, what: string, v: unknown): number {
  if (v instanceof Fd) return v.fd // throws EBADF once closed
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v
  throw new TypeError(`${where}: ${what} must be an Fd or a descriptor number, got ${describeValue(v)}`)
}

/** The FdSocket a delegation step talks over. */
export function socketArg(where: string, v: unknown): FdSocket {
  if (!(v instanceof FdSocket)) throw new TypeError(`${where}: socket must be an FdSocket, got ${describeValue(v)}`)
  return v
}

export function stringArg(where: string, what: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw new TypeError(`${where}: ${what} must be a non-empty string, got ${describeValue(v)}`)
  return v
}
