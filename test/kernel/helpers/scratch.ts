// Places a test makes for itself and removes afterwards: a private bpffs
// mount and a child cgroup. Never the host's /sys/fs/bpf or root cgroup.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function privateBpffs(): { path: string; [Symbol.dispose](): void } {
  const path = mkdtempSync(join(tmpdir(), 'bpfkit-fs-'))
  execFileSync('mount', ['-t', 'bpf', 'bpf', path])
  return {
    path,
    [Symbol.dispose]() {
      execFileSync('umount', [path])
      rmSync(path, { recursive: true, force: true })
    },
  }
}

/** Where cgroup v2 is mounted: /sys/fs/cgroup on unified hosts, .../unified on hybrid ones. */
export function cgroup2Root(): string {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ')
    if (right?.startsWith('cgroup2 ')) return left.split(' ')[4]
  }
  throw new Error('no cgroup2 mount found')
}

export function childCgroup(): { path: string; [Symbol.dispose](): void } {
  const path = join(cgroup2Root(), `bpfkit-test-${process.pid}-${Date.now()}`)
  mkdirSync(path)
  return {
    path,
    [Symbol.dispose]() {
      rmdirSync(path)
    },
  }
}

/**
 * Two network namespaces of the test's own (`ip netns add`) joined by a veth
 * pair: veth0 (10.77.0.1/24) in the main one, veth1 (10.77.0.2/24) in the
 * peer, both up, lo up in both, so traffic between the addresses really
 * crosses the pair. `path` (/run/netns/NAME) opens to the namespace fd that
 * netns-scoped attach types take; `run` and `runPeer` execute a command
 * inside one (ip netns exec), e.g. a node one-liner that sends traffic.
 * Removing the namespaces removes the pair.
 */
/** Interfaces made from here on in the namespace have IPv6 off (a kernel without IPv6 has no such file). */
const NO_IPV6 = 'f=/proc/sys/net/ipv6/conf/default/disable_ipv6; if [ -e $f ]; then echo 1 > $f; fi'

export function privateNetns(): {
  name: string
  path: string
  peerName: string
  ifindex(dev?: string): number
  run(cmd: string, args: string[], input?: string): string
  runPeer(cmd: string, args: string[], input?: string): string
  [Symbol.dispose](): void
} {
  const name = `bpfkit-test-${process.pid}-${Date.now() % 1e6}-${Math.floor(Math.random() * 1e6)}`
  const peerName = `${name}-peer`
  const del = () => {
    for (const n of [name, peerName]) {
      try {
        execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' })
      } catch {
        // not made
      }
    }
  }
  try {
    execFileSync('ip', ['netns', 'add', name])
    execFileSync('ip', ['netns', 'add', peerName])
    const ip = (ns: string, ...args: string[]) => execFileSync('ip', ['-n', ns, ...args])
    // No IPv6 on the pair: its neighbour discovery and MLD packets come at
    // times of the kernel's choosing and would move the tests' counters.
    for (const ns of [name, peerName]) execFileSync('ip', ['netns', 'exec', ns, 'sh', '-c', NO_IPV6])
    ip(name, 'link', 'set', 'lo', 'up')
    ip(peerName, 'link', 'set', 'lo', 'up')
    ip(name, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1', 'netns', peerName)
    ip(name, 'addr', 'add', '10.77.0.1/24', 'dev', 'veth0')
    ip(peerName, 'addr', 'add', '10.77.0.2/24', 'dev', 'veth1')
    ip(name, 'link', 'set', 'veth0', 'up')
    ip(peerName, 'link', 'set', 'veth1', 'up')
  } catch (e) {
    del()
    throw e
  }
  const exec = (ns: string, cmd: string, args: string[], input?: string) =>
    execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { input, encoding: 'utf8' })
  return {
    name,
    path: `/run/netns/${name}`,
    peerName,
    ifindex(dev = 'veth0') {
      const [link] = JSON.parse(execFileSync('ip', ['-n', name, '-j', 'link', 'show', 'dev', dev]).toString()) as Array<{ ifindex: number }>
      return link.ifindex
    },
    run: (cmd, args, input) => exec(name, cmd, args, input),
    runPeer: (cmd, args, input) => exec(peerName, cmd, args, input),
    [Symbol.dispose]: del,
  }
}
