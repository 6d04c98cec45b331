// BPF tokens (Linux 6.9+): made by a tenant from a bpffs delegated to its
// user namespace, handed to creating calls (BpfMap.create, BpfProgram.load,
// Btf.load, Btf.fromId) through the `token` option or setDefaultToken.
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { BpfError, Fd, native, NotSupportedError, SyscallError, tokenInfoByFd, type TokenLike, type TokenRequest } from '../sys/index.js'
import { haveBpfToken } from '../features/index.js'
import type { ProgramSpec } from '../prog/spec.js'
import { Policy, type PolicyMasks } from '../policy/index.js'
import { errnoOf } from '../ipc/errors.js'
import { openMountRoot } from './mount.js'
import { FdSocket } from '../ipc/socket.js'
import { requestDelegation, type RequestOptions } from './tenant.js'
import { fdNumberOf, stringArg } from './args.js'
import { describeValue } from '../sys/options.js'

/** libbpf's default bpffs, where it looks for a token when nothing says otherwise. */
export const defaultBpffsPath = '/sys/fs/bpf'

export interface TokenInfo {
  policy: Policy
  masks: PolicyMasks
  /** Where the kernel told: OBJ_GET_INFO_BY_FD (6.17+) or the fd's fdinfo lines. */
  source: 'info' | 'fdinfo'
}

const O_PATH = 0o10000000
const CAP_BPF = 39n

function hasCapBpf(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))
  return m !== null && (BigInt(`0x${m[1]}`) & (1n << CAP_BPF)) !== 0n
}

/**
 * A BPF token: an owned fd standing for the delegation of the bpffs it was
 * made from, valid only in the user namespace that made it and only together
 * with CAP_BPF (and whatever else a request needs) in that namespace.
 * `check` compares a request with what the token delegates, so bpfkit's
 * creating calls throw a PolicyError naming what is missing before the
 * kernel silently ignores the token and answers EPERM.
 */
export class BpfToken implements TokenLike {
  readonly #fd: Fd
  #policy: Policy | undefined

  private constructor(fd: Fd) {
    this.#fd = fd
  }

  /**
   * BPF_TOKEN_CREATE from a bpffs: a path to its mount point, or an fd of its
   * root directory (not the O_PATH fd fsmount returns; see openMountRoot).
   *
   * Privileges: run in the user namespace that owns the bpffs, with CAP_BPF
   * there. Linux 6.9+. Errors: NotSupportedError before 6.9; BpfError
   * EOPNOTSUPP (the bpffs belongs to the initial user namespace: tokens are
   * for user namespaces), ENOENT (the mount has no delegate_* options),
   * EPERM (the bpffs belongs to another user namespace, or no CAP_BPF),
   * EINVAL (not the root of a bpffs), EBADF (an O_PATH fd); each says which.
   */
  static create(bpffs: string | Fd | number): BpfToken {
    if (typeof bpffs === 'string') {
      stringArg('BpfToken.create', 'bpffs', bpffs)
      let dir: Fd
      try {
        dir = new Fd(native.openDirectory(undefined, bpffs), 'bpffs')
      } catch (e) {
        // Opening the directory is not a bpf() call: its failure is a SyscallError from openat.
        if (e instanceof SyscallError) {
          throw new BpfError('token_create', errnoOf(e), `token_create: ${e.code}: cannot open the bpffs at ${bpffs}${e.code === 'ENOTDIR' ? ' (not a directory)' : ''}`, e.syscall)
        }
        throw e
      }
      try {
        return BpfToken.fromBpffsFd(dir.fd, bpffs)
      } finally {
        dir.close()
      }
    }
    const fd = fdNumberOf('BpfToken.create', 'bpffs (a path, an Fd or a descriptor number)', bpffs)
    return BpfToken.fromBpffsFd(fd, `fd ${fd}`)
  }

  private static fromBpffsFd(fd: number, what: string): BpfToken {
    try {
      return new BpfToken(new Fd(native.tokenCreate(fd, 0), 'token'))
    } catch (e) {
      if (!(e instanceof BpfError)) throw e
      throw tokenCreateError(e, fd, what)
    }
  }

  /**
   * The tenant's whole side of a delegation over `socket` (an FdSocket, a
   * Node unix `net.Socket` to take over, or an fd number): opens a bpf
   * filesystem context, sends it to the manager (serveDelegation), receives
   * the configured mount, optionally attaches it at `mountAt`, and makes a
   * token from it. Needs its own user and mount namespaces, root in them
   * (CAP_SYS_ADMIN over the mount namespace, CAP_BPF). Linux 6.9+.
   * Errors: as openBpffsContext, requestDelegation and create.
   */
  static async request(socket: FdSocket | Socket | number, options: RequestOptions = {}): Promise<BpfToken> {
    if (socket === null || (typeof socket !== 'object' && typeof socket !== 'number')) {
      throw new TypeError(`BpfToken.request: socket must be an FdSocket, a unix net.Socket or a descriptor number, got ${describeValue(socket)}`)
    }
    const s = socket instanceof FdSocket ? socket : FdSocket.from(socket)
    const { mount, policy } = await requestDelegation(s, options)
    try {
      const root = openMountRoot(mount)
      try {
        const token = BpfToken.create(root)
        // The whole grant, capabilities included: the kernel's masks cannot say what programs may use inside.
        if (policy.hasCapabilities) token.#policy = policy
        return token
      } finally {
        root.close()
      }
    } finally {
      mount.close()
    }
  }

  /**
   * Adopts a token fd made elsewhere, e.g. received over a socket from the
   * process that created it; a token only works in the user namespace that
   * made it. Takes ownership of `fd` once it is known to be a token.
   * Errors: TypeError when the fd is not a BPF token (no allowed_* lines in
   * its fdinfo); the fd is then left to the caller.
   */
  static fromFd(fd: Fd | number): BpfToken {
    const n = fdNumberOf('BpfToken.fromFd', 'fd', fd)
    let text: string
    try {
      text = readFileSync(`/proc/self/fdinfo/${n}`, 'utf8')
    } catch (e) {
      throw new TypeError(`BpfToken.fromFd: fd ${n} is not open (${(e as Error).message})`)
    }
    let policy: Policy
    try {
      policy = Policy.fromFdinfo(text)
    } catch {
      throw new TypeError(`BpfToken.fromFd: fd ${n} is not a BPF token`)
    }
    // Ownership passes only once the fd is known to be a token.
    const token = new BpfToken(typeof fd === 'number' ? new Fd(fd, 'token') : fd)
    token.#policy = policy
    return token
  }

  /**
   * A token as libbpf finds one: from LIBBPF_BPF_TOKEN_PATH when set (then a
   * failure throws), none when it is set but empty, else from /sys/fs/bpf
   * when that bpffs is delegated (any failure there means no token).
   * Linux 6.9+; CAP_BPF in the token's user namespace, as for create.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): BpfToken | undefined {
    if (env === null || typeof env !== 'object') throw new TypeError(`BpfToken.fromEnv: env must be an environment object like process.env, got ${describeValue(env)}`)
    const path = env.LIBBPF_BPF_TOKEN_PATH
    if (path === '') return undefined
    if (path !== undefined) return BpfToken.create(path)
    try {
      return BpfToken.create(defaultBpffsPath)
    } catch (e) {
      if (e instanceof BpfError || e instanceof NotSupportedError) return undefined
      throw e
    }
  }

  /** The token's fd number; throws EBADF once closed. */
  get fd(): number {
    return this.#fd.fd
  }

  get closed(): boolean {
    return this.#fd.closed
  }

  /**
   * What the token delegates, as the kernel reports it: OBJ_GET_INFO_BY_FD
   * (bpf_token_info, Linux 6.17+), else the token's fdinfo allowed_* lines
   * (every kernel with tokens).
   */
  info(): TokenInfo {
    const fd = this.fd
    try {
      const masks = tokenInfoByFd(fd)
      return { policy: Policy.fromMasks(masks), masks, source: 'info' }
    } catch (e) {
      // Before 6.17 OBJ_GET_INFO_BY_FD does not know tokens (EINVAL).
      if (!(e instanceof BpfError && e.code === 'EINVAL')) throw e
    }
    const policy = Policy.fromFdinfo(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))
    return { policy, masks: policy.masks(), source: 'fdinfo' }
  }

  /** What the token delegates (read once from the kernel). */
  get policy(): Policy {
    this.#policy ??= this.info().policy
    return this.#policy
  }

  /** Throws a PolicyError naming what this token does not delegate for `request`. */
  check(request: TokenRequest): void {
    this.policy.check(request, 'token')
  }

  /**
   * Throws a ProgramPolicyError when the delegation's capability policy (a
   * token from BpfToken.request whose grant had capabilities) does not let
   * `program` use a helper, kfunc or map it uses; loads with this token call
   * it before the kernel is asked. Without capabilities it allows everything.
   */
  assertProgram(program: ProgramSpec): void {
    if (this.#policy?.hasCapabilities) this.#policy.assertProgram(program)
  }

  close(): void {
    this.#fd.close()
  }

  [Symbol.dispose](): void {
    this.close()
  }

  toString(): string {
    return this.#fd.closed ? 'BpfToken(closed)' : `BpfToken(fd ${this.#fd.fd}: ${this.policy})`
  }
}

function tokenCreateError(e: BpfError, fd: number, what: string): Error {
  let cause: string
  switch (e.code) {
    case 'EOPNOTSUPP':
      cause = `the bpffs at ${what} belongs to the initial user namespace; tokens are made in a user namespace from a bpffs delegated to it`
      break
    case 'ENOENT':
      cause = `the bpffs at ${what} has no delegate_* options, so there is nothing to delegate (a manager mounts it with a policy)`
      break
    case 'EPERM':
      cause = hasCapBpf()
        ? `the bpffs at ${what} belongs to another user namespace; a token is made in the user namespace the bpffs was created in`
        : 'the caller lacks CAP_BPF in its user namespace'
      break
    case 'EINVAL':
      try {
        haveBpfToken()
      } catch (probe) {
        if (probe instanceof NotSupportedError) return probe
      }
      cause = `${what} is not the root directory of a bpffs mount`
      break
    case 'EBADF': {
      let flags = 0
      try {
        flags = native.fdFlags(fd)
      } catch {
        // not open: the generic cause below
      }
      cause = (flags & O_PATH) !== 0
        ? `${what} is an O_PATH fd (fsmount returns one); open the mount's root first (openMountRoot)`
        : `${what} is not an open file descriptor`
      break
    }
    case 'EACCES':
      cause = `no permission to access the bpffs root at ${what}`
      break
    default:
      return e
  }
  return new BpfError('token_create', errnoOf(e), `token_create: ${e.code}: ${cause}`)
}
