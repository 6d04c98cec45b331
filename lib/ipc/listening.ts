// Whether a unix socket path has a live listener: a stale socket file (its
// daemon died) refuses the connection, a live one accepts it. The broker
// replaces only a stale socket, and `bpfkit broker gc` refuses to run beside
// a live broker.
import { createConnection } from 'node:net'

/** True when something accepts connections on the unix socket at `path` (the probe connection is closed at once). */
export function unixSocketListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}
