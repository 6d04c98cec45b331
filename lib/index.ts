// bpfkit: the Linux bpf() syscall for Node.js.
export {
  BpfError, VerifierError, PolicyError, NotSupportedError, Fd, kernel,
  setDefaultToken, defaultToken,
} from './sys/index.js'
export type {
  ProgramInfo, MapInfo, LinkInfo, BtfInfo, TokenLike, TokenRequest,
  AttachTypeName, CommandName, HelperName, LinkTypeName, MapTypeName, ProgTypeName,
} from './sys/index.js'
export { Btf } from './btf.js'
export type { BtfLoadOptions } from './btf.js'
export * as ids from './ids.js'
