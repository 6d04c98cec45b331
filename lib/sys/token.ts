// How creating calls find their token. The object layer sits below
// lib/delegation (where BpfToken lives), so it sees a token only through this
// interface: an owned fd, and a check that explains a refusal before the
// kernel silently ignores the token and answers EPERM.
import type { AttachTypeName, CommandName, MapTypeName, ProgTypeName } from './generated/kernel-enums.js'
import { describeValue } from './options.js'

/** What a creating call is about to ask the kernel, for a token to vet. */
export interface TokenRequest {
  cmd: CommandName
  mapType?: MapTypeName | number
  progType?: ProgTypeName | number
  /** Expected attach type; a program with none needs attach type 0 delegated. */
  attachType?: AttachTypeName | number
}

export interface TokenLike {
  /** The token's fd number; throws once the token is closed. */
  readonly fd: number
  /** Throws a PolicyError naming what the token does not delegate. */
  check?(request: TokenRequest): void
  /** Throws a PolicyError when a program loaded with the token uses what its delegation's capabilities do not grant. */
  assertProgram?(program: never): void
}

let processDefault: TokenLike | undefined

/**
 * Sets (or with undefined clears) a token every creating call uses when its
 * options name none. Opt-in: bpfkit never picks a token by itself.
 */
export function setDefaultToken(token: TokenLike | undefined): void {
  if (token !== undefined) tokenFdOf(token)
  processDefault = token
}

export function defaultToken(): TokenLike | undefined {
  return processDefault
}

/**
 * The token for a call: the one given, none when given `null`, else the
 * process-wide default. Checks the request against it and returns its fd.
 */
export function tokenFdFor(option: TokenLike | null | undefined, request: TokenRequest): number | undefined {
  const token = option === null ? undefined : (option ?? processDefault)
  if (token === undefined) return undefined
  checkTokenShape(token)
  token.check?.(request)
  return tokenFdOf(token)
}

// A mistyped token must not fall through to a call without one: that would
// create the object with the caller's own privileges instead of the token's.
function checkTokenShape(token: unknown): void {
  if (typeof token !== 'object' || token === null || !('fd' in token)) {
    throw new TypeError(`token must be a BpfToken (or null for none), got ${token === null ? 'null' : typeof token}`)
  }
}

function tokenFdOf(token: unknown): number {
  checkTokenShape(token)
  const fd = (token as TokenLike).fd // throws once the token is closed
  if (!Number.isInteger(fd) || fd < 3) throw new TypeError(`token fd must be an open descriptor number >= 3, got ${describeValue(fd)}`)
  return fd
}
