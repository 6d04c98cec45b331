// BTF objects: loaded from bytes, or opened by ID (the kernel's own vmlinux
// BTF included).
import { bpfObjectKind, btfInfoByFd, Fd, native, tokenFdFor, type BtfInfo, type TokenLike } from '../sys/index.js'
import { btfInfo } from '../sys/generated/kernel-layouts.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BtfReader } from './reader.js'

export interface BtfLoadOptions {
  /** Verifier log level for BTF (1 or 2); the log is kept in `log`. */
  logLevel?: number
  logSize?: number
  /** Token for a delegated load; null for none even if a default is set. */
  token?: TokenLike | null
}

const loadKeys = ['logLevel', 'logSize', 'token'] as const

export class Btf {
  readonly fd: Fd
  /** The kernel's BTF log when a log level was asked for. */
  readonly log: string

  private constructor(fd: Fd, log = '') {
    this.fd = fd
    this.log = log
  }

  /**
   * Loads raw BTF (header, types, strings). Errors: VerifierError with the BTF
   * log when the kernel rejects it; EPERM without CAP_BPF or a token.
   * Linux 4.18+; tokens 6.9+.
   */
  static async load(bytes: Uint8Array, options: BtfLoadOptions = {}): Promise<Btf> {
    const attrs = Btf.attrs(bytes, options)
    const r = await native.btfLoad(attrs)
    return new Btf(new Fd(r.fd, 'btf'), r.log)
  }

  /** Synchronous form of `load`. */
  static loadSync(bytes: Uint8Array, options: BtfLoadOptions = {}): Btf {
    const r = native.btfLoadSync(Btf.attrs(bytes, options))
    return new Btf(new Fd(r.fd, 'btf'), r.log)
  }

  private static attrs(bytes: Uint8Array, options: BtfLoadOptions) {
    checkOptions('Btf.load', options, loadKeys)
    return {
      btf: bytes,
      logLevel: options.logLevel,
      logSize: options.logSize,
      tokenFd: tokenFdFor(options.token, { cmd: 'btf_load' }),
    }
  }

  /**
   * Opens a loaded BTF object by ID (CAP_SYS_ADMIN, or a token on 6.18+).
   * ENOENT when no BTF has that ID.
   */
  static fromId(id: number, options: { token?: TokenLike | null } = {}): Btf {
    checkOptions('Btf.fromId', options, ['token'])
    const tokenFd = tokenFdFor(options.token, { cmd: 'btf_get_fd_by_id' })
    return new Btf(new Fd(native.btfGetFdById(id, 0, tokenFd), 'btf'))
  }

  /**
   * Takes ownership of an fd that refers to a loaded BTF object (closed with
   * the Btf): one received over a unix socket, or a dup of another Btf's.
   * Errors: TypeError when `fd` is not an owned Fd, or not a BTF object
   * (the fd is then closed); EBADF when the Fd is already closed. Linux
   * 4.18+; no privileges (the fd itself is the permission).
   */
  static fromFd(fd: Fd): Btf {
    if (!(fd instanceof Fd)) throw new TypeError(`Btf.fromFd: fd must be an owned Fd (new Fd(number, 'btf')), got ${describeValue(fd)}`)
    const n = fd.fd
    if (bpfObjectKind(n) !== 'btf') {
      fd.close()
      throw new TypeError(`Btf.fromFd: fd ${n} is not a BTF object`)
    }
    return new Btf(fd)
  }

  info(): BtfInfo {
    return btfInfoByFd(this.fd.fd)
  }

  get id(): number {
    return this.info().id
  }

  /** The raw BTF the kernel holds (BPF_OBJ_GET_INFO_BY_FD with a buffer; Linux 4.18+). */
  bytes(): Uint8Array {
    const bytes = new Uint8Array(this.info().size)
    native.objGetInfoWithBuffers(this.fd.fd, new Uint8Array(btfInfo.size), [[btfInfo.fields.btf.offset, bytes, btfInfo.fields.btf_size.offset, 1]])
    return bytes
  }

  /**
   * Its types. A kernel module's BTF is split BTF on vmlinux's, which is read
   * from /sys/kernel/btf/vmlinux (or `base` when given). Errors: ENOENT when
   * a module's base is missing; RangeError/TypeError for malformed BTF.
   */
  reader(base?: BtfReader): BtfReader {
    const info = this.info()
    const split = info.kernelBtf && info.name !== 'vmlinux'
    return new BtfReader(this.bytes(), split ? base ?? BtfReader.fromFile() : undefined)
  }

  close(): void {
    this.fd.close()
  }

  [Symbol.dispose](): void {
    this.close()
  }
}
