// Unix sockets: frames, SCM_RIGHTS fd passing, peer credentials.
export { FdSocket, maxFdsPerMessage } from './socket.js'
export type { Message, ReceiveOptions, SendOptions } from './socket.js'
export { ProtocolError } from './errors.js'
export { peerCredentials, peerPidfd, pidfdIsAlive } from './peer.js'
export type { PeerCredentials } from './peer.js'
export { unixSocketListening } from './listening.js'
