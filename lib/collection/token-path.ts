// Which BPF token a collection loads with, found as libbpf finds it: the
// `token` option (null for none) or the process default, else the bpffs named by
// LIBBPF_BPF_TOKEN_PATH (empty: none), else /sys/fs/bpf when it is a bpffs
// with delegation set up. A path the user named that yields no token is an
// error; the default path failing only means no token, as with libbpf.
import { Fd, defaultToken, native, type TokenLike } from '../sys/index.js'

export const defaultTokenPath = '/sys/fs/bpf'

/** A token found for a load: close it once the load is done (what it made keeps working). */
export interface FoundToken {
  token: TokenLike | null | undefined
  close(): void
}

export function findToken(option: TokenLike | null | undefined, env: NodeJS.ProcessEnv = process.env): FoundToken {
  // The process default (setDefaultToken) counts as named, as for every other creating call.
  const named = option !== undefined ? option : defaultToken()
  if (named !== undefined) return { token: named, close() {} }
  const fromEnv = env.LIBBPF_BPF_TOKEN_PATH
  if (fromEnv === '') return { token: null, close() {} }
  const path = fromEnv ?? defaultTokenPath
  let fd: Fd
  // The default path fails on most machines (no delegation), and that
  // failure is dropped: its error is made without a stack trace, which was
  // most of what the attempt cost.
  const traces = Error.stackTraceLimit
  if (fromEnv === undefined) Error.stackTraceLimit = 0
  try {
    fd = tokenFromBpffs(path)
  } catch (e) {
    if (fromEnv !== undefined) {
      ;(e as Error).message = `LIBBPF_BPF_TOKEN_PATH=${fromEnv}: ${(e as Error).message}`
      throw e
    }
    // Without a token the load runs with this process's own privileges.
    return { token: undefined, close() {} }
  } finally {
    Error.stackTraceLimit = traces
  }
  return { token: { get fd() { return fd.fd } }, close: () => fd.close() }
}

function tokenFromBpffs(path: string): Fd {
  const dir = new Fd(native.openDirectory(undefined, path), 'bpffs')
  try {
    return new Fd(native.tokenCreate(dir.fd, 0), 'token')
  } finally {
    dir.close()
  }
}
