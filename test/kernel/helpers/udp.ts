// UDP traffic across the test's own veth pair (privateNetns): a sender run in
// one namespace, a receiver in the other that reports how many datagrams it
// got. Port 7777 is what test/fixtures/bpf/attach-net.bpf.c counts.
import { spawn } from 'node:child_process'

export const TEST_PORT = 7777

const sendScript = `
const s = require('dgram').createSocket('udp4')
let n = Number(process.argv[1])
const next = (err) => { if (err) throw err; if (n-- > 0) s.send('bpfkit', ${TEST_PORT}, process.argv[2], next); else s.close() }
next()`

/** Node arguments that send `count` datagrams to `address`:7777 (run them with privateNetns' run or runPeer). */
export function sendArgs(count: number, address: string): string[] {
  return ['-e', sendScript, String(count), address]
}

const receiveScript = `
const s = require('dgram').createSocket('udp4')
let got = 0
s.on('message', () => got++)
s.bind(${TEST_PORT}, process.argv[1], () => {
  process.stdout.write('ready\\n')
  process.stdin.once('data', () => setTimeout(() => { process.stdout.write(got + '\\n'); process.exit(0) }, Number(process.argv[2])))
})`

/**
 * Starts a receiver bound to `address`:7777 inside namespace `netns` (a name
 * under /run/netns), runs `send` once it listens, and resolves to the number
 * of datagrams it got within `settleMs` after `send` returned.
 */
export async function receiveWhile(netns: string, address: string, send: () => void, settleMs = 500): Promise<number> {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', receiveScript, address, String(settleMs)], { stdio: ['pipe', 'pipe', 'inherit'] })
  let out = ''
  const lines = new Promise<string[]>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString()
      const l = out.split('\n').filter(Boolean)
      if (l.length >= 1 && l[0] === 'ready' && !(child as { sent?: boolean }).sent) {
        ;(child as { sent?: boolean }).sent = true
        try {
          send()
        } catch (e) {
          child.kill()
          reject(e)
          return
        }
        child.stdin.write('go\n')
      }
    })
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 ? resolve(out.split('\n').filter(Boolean)) : reject(new Error(`receiver exited with ${code}: ${out}`))))
  })
  const l = await lines
  return Number(l[1])
}
