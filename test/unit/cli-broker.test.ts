// The broker's command line: arguments (the global --broker, each tenant
// command, the daemon's), socket activation, and how object views print.
// Pure: no broker runs here (test/kernel/cli-broker.test.ts runs one).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { resolveConfig } from '../../lib/broker/config.js'
import { Policy } from '../../lib/policy/index.js'
import {
  activatedSocket, brokerSocketFor, brokerWordsFor, defaultBrokerSocket, formatBrokerError, formatView, formatViews, infoOf,
  parseBrokerArgs, parseDaemonArgs, takeBrokerOption, viewsJson,
} from '../../lib/cli/broker.js'
import { UsageError } from '../../lib/cli/args.js'
import type { ObjectView } from '../../lib/broker/protocol.js'
import { runCli } from '../kernel/helpers/cli.js'

const S = '/run/t/broker.sock'

// Views as the broker sends them: bigints as decimal strings (toWire).
const prog: ObjectView = {
  kind: 'prog', id: 41, origin: 'made', name: 'count_len', pins: ['count_len'],
  info: {
    id: 41, type: 'socket_filter', typeId: 1, name: 'count_len', tag: '0123456789abcdef', jitedSize: 96, xlatedSize: 120,
    mapIds: [40], btfId: 0, loadTime: '123456789', createdByUid: 0, gplCompatible: true, runTimeNs: '2500', runCount: '5',
    recursionMisses: '0', verifiedInsns: 14,
  },
}
const map: ObjectView = {
  kind: 'map', id: 40, origin: 'held', name: 'counts', pins: [],
  info: { id: 40, type: 'hash', typeId: 1, name: 'counts', keySize: 4, valueSize: 8, maxEntries: 16, flags: 0, btfId: 0, btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: '0' },
}
const link: ObjectView = {
  kind: 'link', id: 7, origin: 'cgroup', name: '', pins: [],
  info: { id: 7, type: 'cgroup', typeId: 3, progId: 41, attachType: 'cgroup_inet_ingress', cgroupId: '18446744073709551615' },
}
const btf: ObjectView = { kind: 'btf', id: 3, origin: 'pinned', name: '', pins: ['/sys/fs/bpf/t/b'], info: { id: 3, name: '', size: 512, kernelBtf: false } }

describe('the host commands\' words through the broker', () => {
  test('prog|map|link|btf list/show/dump become list KIND, show KIND ID, dump KIND ID; the rest stays', () => {
    expect(brokerWordsFor('prog', ['list', '--json'])).toEqual(['list', ['progs', '--json']])
    expect(brokerWordsFor('btf', ['list'])).toEqual(['list', ['btf']])
    expect(brokerWordsFor('map', ['show', '7'])).toEqual(['show', ['map', '7']])
    expect(brokerWordsFor('prog', ['dump', '3', '--json'])).toEqual(['dump', ['prog', '3', '--json']])
    expect(brokerWordsFor('prog', ['pin', '3', '/x'])).toBeUndefined()
    expect(brokerWordsFor('progs', ['list'])).toBeUndefined()
    expect(brokerWordsFor('list', ['progs'])).toBeUndefined()
    expect(brokerWordsFor(undefined, [])).toBeUndefined()
  })
})

describe('the global --broker option', () => {
  test('taken out before the command or among its arguments, in both spellings', () => {
    expect(takeBrokerOption(['--broker', S, 'list', 'maps'])).toEqual({ broker: S, argv: ['list', 'maps'] })
    expect(takeBrokerOption([`--broker=${S}`, 'show', 'map', '3'])).toEqual({ broker: S, argv: ['show', 'map', '3'] })
    expect(takeBrokerOption(['list', '--by-tenant', '--broker', S])).toEqual({ broker: S, argv: ['list', '--by-tenant'] })
    expect(takeBrokerOption(['list'])).toEqual({ broker: undefined, argv: ['list'] })
    expect(() => takeBrokerOption(['--broker'])).toThrow(/--broker needs the broker's socket path/)
    expect(() => takeBrokerOption(['--broker', '--json', 'list'])).toThrow(UsageError)
    expect(() => takeBrokerOption(['--broker=', 'list'])).toThrow(/needs the broker's socket path/)
    expect(() => takeBrokerOption(['--broker', 'a', '--broker', 'b', 'list'])).toThrow(/--broker given twice/)
  })

  test('which socket: --broker, then $BPFKIT_BROKER; list --by-tenant falls back to the default; other commands never', () => {
    expect(brokerSocketFor('list', [], S, {})).toBe(S)
    expect(brokerSocketFor('list', [], undefined, { BPFKIT_BROKER: '/env.sock' })).toBe('/env.sock')
    expect(brokerSocketFor('list', [], S, { BPFKIT_BROKER: '/env.sock' })).toBe(S)
    // Without either, `bpfkit list` is the host's ID walk.
    expect(brokerSocketFor('list', ['maps'], undefined, {})).toBeUndefined()
    expect(brokerSocketFor('list', [], undefined, { BPFKIT_BROKER: '' })).toBeUndefined()
    expect(brokerSocketFor('list', ['--by-tenant'], undefined, {})).toBe(defaultBrokerSocket)
    expect(defaultBrokerSocket).toBe('/run/bpfkit/broker.sock')
    for (const cmd of ['show', 'load', 'attach', 'pin', 'unpin', 'release']) expect(brokerSocketFor(cmd, [], undefined, { BPFKIT_BROKER: S })).toBe(S)
    // The variable does not capture the other commands; the option is an error there.
    expect(brokerSocketFor('guard', ['status'], undefined, { BPFKIT_BROKER: S })).toBeUndefined()
    expect(() => brokerSocketFor('guard', ['status'], S, {})).toThrow(/--broker applies to list, show, load, attach, pin, unpin, release, dump, top; not to 'guard'/)
    expect(() => brokerSocketFor(undefined, [], S, {})).toThrow(/not to nothing/)
  })
})

describe('parseBrokerArgs', () => {
  test('list: one kind or all, --json, --by-tenant', () => {
    expect(parseBrokerArgs('list', [], S)).toEqual({ cmd: 'list', socket: S, kinds: undefined, json: false, byTenant: false })
    expect(parseBrokerArgs('list', ['maps', '--json'], S)).toEqual({ cmd: 'list', socket: S, kinds: ['map'], json: true, byTenant: false })
    expect(parseBrokerArgs('list', ['--by-tenant', 'links'], S)).toMatchObject({ kinds: ['link'], byTenant: true })
    expect(parseBrokerArgs('list', ['btf'], S)).toMatchObject({ kinds: ['btf'] })
    expect(parseBrokerArgs('list', ['progs'], S)).toMatchObject({ kinds: ['prog'] })
  })

  test('show, pin, unpin, release: kinds in either number, IDs checked', () => {
    expect(parseBrokerArgs('show', ['map', '12'], S)).toEqual({ cmd: 'show', socket: S, kind: 'map', id: 12, json: false })
    expect(parseBrokerArgs('show', ['progs', '4294967295', '--json'], S)).toEqual({ cmd: 'show', socket: S, kind: 'prog', id: 4294967295, json: true })
    // A name is kept as it is and found in the tenant's view when the command runs.
    expect(parseBrokerArgs('show', ['map', 'counts.bss'], S)).toEqual({ cmd: 'show', socket: S, kind: 'map', id: 'counts.bss', json: false })
    expect(parseBrokerArgs('pin', ['link', '9', 'my-link'], S)).toEqual({ cmd: 'pin', socket: S, kind: 'link', id: 9, name: 'my-link' })
    expect(parseBrokerArgs('unpin', ['my-link'], S)).toEqual({ cmd: 'unpin', socket: S, name: 'my-link' })
    expect(parseBrokerArgs('release', ['btf', '3'], S)).toEqual({ cmd: 'release', socket: S, kind: 'btf', id: 3 })
    expect(parseBrokerArgs('dump', ['prog', '5', '--xlated', '--json'], S)).toEqual({ cmd: 'dump', socket: S, kind: 'prog', id: 5, json: true })
    expect(parseBrokerArgs('dump', ['maps', '6'], S)).toEqual({ cmd: 'dump', socket: S, kind: 'map', id: 6, json: false })
    expect(parseBrokerArgs('top', ['--once', '--sort', 'name'], S)).toEqual({ cmd: 'top', socket: S, top: { intervalMs: 1000, sort: 'name', count: 1, json: false } })
  })

  test('load and attach: one target family each', () => {
    expect(parseBrokerArgs('load', ['obj.o'], S)).toEqual({ cmd: 'load', socket: S, path: 'obj.o', json: false })
    expect(parseBrokerArgs('attach', ['41', 'cgroup_inet_ingress', '--cgroup', 'web'], S)).toEqual({
      cmd: 'attach', socket: S, progId: 41, attachType: 'cgroup_inet_ingress', target: { cgroup: 'web' }, json: false,
    })
    expect(parseBrokerArgs('attach', ['41', 'xdp', '--xdp=eth0', '--json'], S)).toMatchObject({ target: { ifname: 'eth0', netdev: 'xdp' }, json: true })
    expect(parseBrokerArgs('attach', ['--tcx', 'veth1', '5', 'tcx_ingress'], S)).toMatchObject({ progId: 5, target: { ifname: 'veth1', netdev: 'tcx' } })
    expect(parseBrokerArgs('attach', ['5', 'netkit_primary', '--netkit', 'nk0'], S)).toMatchObject({ target: { ifname: 'nk0', netdev: 'netkit' } })
    // The path is relative to the tenant's own cgroup: '.' is that cgroup itself (the broker resolves it beneath).
    expect(parseBrokerArgs('attach', ['5', 'cgroup_inet_egress', '--cgroup', '.'], S)).toMatchObject({ target: { cgroup: '.' } })
  })

  const bad: [string, string[], RegExp][] = [
    ['list', ['nope'], /list: expected one of progs\|maps\|links\|btf, got 'nope'/],
    ['list', ['maps', 'progs'], /list: unexpected argument progs/],
    ['list', ['map'], /expected one of progs\|maps\|links\|btf, got 'map'/],
    ['list', ['--json=1'], /list: --json takes no value/],
    ['list', ['--all'], /list: unknown option '--all' \(it takes --json, --by-tenant\)/],
    ['show', [], /show: expected KIND ID, missing KIND ID/],
    ['show', ['map'], /missing ID/],
    ['show', ['token', '3'], /show: expected a kind \(prog, map, link or btf\), got 'token'/],
    ['show', ['constructor', '3'], /got 'constructor'/],
    ['release', ['__proto__', '3'], /got '__proto__'/],
    ['show', ['map', '0'], /show: ID must be an ID \(1 to 4294967295\) or a name, got '0'/],
    ['show', ['map', '4294967296'], /got '4294967296'/],
    ['show', ['map', '0x10'], /got '0x10'/],
    ['show', ['map', '-1'], /show: unknown option '-1'/],
    ['show', ['map', '3', 'extra'], /show: unexpected argument extra/],
    ['load', [], /load: expected OBJ.o, missing OBJ.o/],
    ['load', ['a.o', '--pin', 'x'], /load: unknown option '--pin'/],
    ['attach', ['5', 'xdp'], /attach: name one target: --cgroup REL/],
    ['attach', ['5', 'xdp', '--xdp', 'eth0', '--tcx', 'eth0'], /got --xdp, --tcx/],
    ['attach', ['5', 'xdp', '--xdp'], /attach: --xdp needs a value/],
    ['attach', ['5', 'xdp', '--xdp', 'a', '--xdp', 'b'], /--xdp given twice/],
    ['attach', ['5five', 'xdp', '--xdp', 'a'], /attach: PROG_ID must be an ID \(1 to 4294967295\) or a name/],
    ['show', ['map', 'a-b'], /got 'a-b'/],
    ['attach', ['5', '--cgroup', 'a'], /attach: expected PROG_ID ATTACH_TYPE, missing ATTACH_TYPE/],
    ['pin', ['map', '3'], /pin: expected KIND ID NAME, missing NAME/],
    ['unpin', [], /unpin: expected NAME, missing NAME/],
    ['release', ['map'], /release: expected KIND ID, missing ID/],
    ['top', ['--interval', '31'], /top: through the broker, --interval is at most 30 seconds/],
    ['frob', [], /--broker: expected one of list, show, load, attach, pin, unpin, release, dump, top, got 'frob'/],
  ]
  test.each(bad)('%s %j is a usage error', (cmd, args, message) => {
    expect(() => parseBrokerArgs(cmd, args, S)).toThrow(UsageError)
    expect(() => parseBrokerArgs(cmd, args, S)).toThrow(message)
  })
})

describe('the daemon', () => {
  test('broker [gc] --config FILE [--socket PATH]', () => {
    expect(parseDaemonArgs(['--config', '/etc/bpfkit/broker.json'])).toEqual({ cmd: 'run', config: '/etc/bpfkit/broker.json' })
    expect(parseDaemonArgs(['--socket=/tmp/b.sock', '--config=c.json'])).toEqual({ cmd: 'run', config: 'c.json', socket: '/tmp/b.sock' })
    expect(parseDaemonArgs(['gc', '--config', 'c.json'])).toEqual({ cmd: 'gc', config: 'c.json' })
    expect(() => parseDaemonArgs([])).toThrow(/broker: --config FILE is required/)
    expect(() => parseDaemonArgs(['gc'])).toThrow(/broker gc: --config FILE is required/)
    expect(() => parseDaemonArgs(['--config', 'c.json', 'now'])).toThrow(/broker: unexpected argument now/)
    expect(() => parseDaemonArgs(['--config', 'c.json', 'gc'])).toThrow(/broker: unexpected argument gc/)
    expect(() => parseDaemonArgs(['--config', 'c.json', '--json'])).toThrow(/broker: unknown option '--json' \(it takes --config, --socket\)/)
    expect(() => parseDaemonArgs(['--config', 'a', '--config', 'b'])).toThrow(/broker: --config given twice/)
  })

  test('systemd socket activation: fd 3 when LISTEN_PID is us and LISTEN_FDS is 1', () => {
    expect(activatedSocket({ LISTEN_PID: '42', LISTEN_FDS: '1' }, 42)).toEqual({ fd: 3 })
    expect(activatedSocket({ LISTEN_PID: '43', LISTEN_FDS: '1' }, 42)).toBeUndefined()
    expect(activatedSocket({ LISTEN_FDS: '1' }, 42)).toBeUndefined()
    expect(activatedSocket({ LISTEN_PID: '42', LISTEN_FDS: '0' }, 42)).toBeUndefined()
    expect(activatedSocket({}, 42)).toBeUndefined()
    expect(() => activatedSocket({ LISTEN_PID: '42', LISTEN_FDS: '2' }, 42)).toThrow(/systemd passed 2 sockets/)
  })
})

describe('formatting views', () => {
  test('wire info becomes the library\'s info: bigints back, redacted fields empty', () => {
    const p = infoOf(prog) as { runCount: bigint; loadTime: bigint; mapIds: number[] }
    expect(p.runCount).toBe(5n)
    expect(p.loadTime).toBe(123456789n)
    expect((infoOf(link) as { cgroupId: bigint }).cgroupId).toBe(18446744073709551615n)
    // Redaction dropped the foreign map IDs: none shown, not a crash.
    const redacted: ObjectView = { ...prog, info: { ...prog.info, mapIds: undefined } }
    expect((infoOf(redacted) as { mapIds: number[] }).mapIds).toEqual([])
  })

  test('each kind as bpfkit list prints it, with the origin, pins and (admin) owner', () => {
    expect(formatView(prog)).toBe(
      '41: socket_filter  name count_len  tag 0123456789abcdef  gpl  origin made\n' +
      '\txlated 120B  jited 96B  map_ids 40\n\trun_time_ns 2500  run_cnt 5\n\tpinned count_len')
    expect(formatView(map)).toBe('40: hash  name counts  flags 0x0  origin held\n\tkey 4B  value 8B  max_entries 16')
    expect(formatView(link)).toBe('7: cgroup  prog 41  attach_type cgroup_inet_ingress  origin cgroup')
    expect(formatView(btf)).toBe('3: name <anon>  size 512B  origin pinned\n\tpinned /sys/fs/bpf/t/b')
    expect(formatView({ ...map, owner: 'web' })).toBe('40: hash  name counts  flags 0x0  owner web  origin held\n\tkey 4B  value 8B  max_entries 16')
    expect(formatView({ ...map, owner: 'shared' })).toMatch(/^40: hash  name counts  flags 0x0  owner shared  origin held/)
  })

  test('a listing: kinds in order with headers, IDs ascending; one kind without a header', () => {
    const other: ObjectView = { ...map, id: 2, name: 'a', info: { ...map.info, id: 2, name: 'a' } }
    const lines = formatViews([map, btf, prog, link, other])
    expect(lines.filter((l) => l.startsWith('#'))).toEqual(['# progs', '# maps', '# links', '# btf'])
    expect(lines.map((l) => l.split('\n')[0].split(':')[0])).toEqual(['# progs', '41', '# maps', '2', '40', '# links', '7', '# btf', '3'])
    expect(formatViews([map, other], ['map']).map((l) => l.split(':')[0])).toEqual(['2', '40'])
    expect(formatViews([], ['map'])).toEqual([])
  })

  test('JSON: one kind\'s array, or every kind\'s by name, as bpfkit list --json', () => {
    expect(viewsJson([map, prog], ['map'])).toEqual([map])
    expect(viewsJson([map, prog])).toEqual({ progs: [prog], maps: [map], links: [], btf: [] })
  })

  test('refusals: the code (and policy rule) and message, then each violation the message does not list', () => {
    expect(formatBrokerError('broker refused show', { code: 'ENOENT', message: 'no map 7 in your view' }))
      .toBe('broker refused show: ENOENT: no map 7 in your view')
    expect(formatBrokerError('broker refused load', {
      code: 'EPERM', rule: 'capabilities', message: "program 'bad' uses what the policy does not grant",
      violations: [{ message: 'insn 3: helper ktime_get_ns is not granted to socket_filter' }, { message: 'insn 9: kfunc x' }],
    })).toBe("broker refused load: EPERM (capabilities): program 'bad' uses what the policy does not grant\n  insn 3: helper ktime_get_ns is not granted to socket_filter\n  insn 9: kfunc x")
    // A message that already lists the violation does not repeat it.
    expect(formatBrokerError('x', { code: 'EPERM', rule: 'capabilities', message: 'refused:\n  insn 3 bad', violations: [{ message: 'insn 3 bad' }] }))
      .toBe('x: EPERM (capabilities): refused:\n  insn 3 bad')
    expect(formatBrokerError('x', { code: 'EPERM', message: "token does not delegate map type 'lru_hash'", rule: 'maps' }))
      .toBe("x: EPERM (maps): token does not delegate map type 'lru_hash'")
  })
})

describe('through main()', () => {
  test('usage errors exit 2 with the usage text; a broker that is not there exits 1 naming the socket', async () => {
    const r = await runCli('--broker', S, 'show', 'map')
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/^bpfkit: show: expected KIND ID, missing ID\nusage: bpfkit --broker SOCK show KIND ID \[--json\]/)
    const g = await runCli('--broker', S, 'guard', 'status')
    expect(g.code).toBe(2)
    expect(g.err).toMatch(/--broker applies to list/)
    const d = await runCli('broker')
    expect(d.code).toBe(2)
    expect(d.err).toMatch(/broker: --config FILE is required/)
    const none = await runCli('--broker', '/nonexistent/bpfkit-test.sock', 'list')
    expect(none.code).toBe(1)
    expect(none.err).toMatch(/\/nonexistent\/bpfkit-test\.sock/)
    expect(none.err).toMatch(/ENOENT/)
  })
})

describe('packaging', () => {
  const root = join(__dirname, '..', '..')
  const read = (path: string) => readFileSync(join(root, path), 'utf8')
  const directive = (text: string, key: string) => text.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1))

  test('systemd: the socket unit listens where the client looks; the service runs `bpfkit broker --config`, reloads with SIGHUP', () => {
    const socket = read('packaging/systemd/bpfkit-broker.socket')
    const service = read('packaging/systemd/bpfkit-broker.service')
    expect(directive(socket, 'ListenStream')).toEqual([defaultBrokerSocket])
    expect(directive(socket, 'SocketMode')).toEqual(['0666'])
    const [exec] = directive(service, 'ExecStart')
    const [bin, cmd, ...args] = exec.split(' ')
    expect(bin).toBe('/usr/bin/bpfkit')
    expect(cmd).toBe('broker')
    expect(parseDaemonArgs(args)).toEqual({ cmd: 'run', config: '/etc/bpfkit/broker.json' })
    expect(directive(service, 'ExecReload')).toEqual(['/bin/kill -HUP $MAINPID'])
    expect(directive(service, 'Requires')).toEqual(['bpfkit-broker.socket'])
    for (const cap of ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_DAC_READ_SEARCH']) {
      expect(directive(service, 'CapabilityBoundingSet')[0].split(' ')).toContain(cap)
    }
  })

  test('the example configs load: the DaemonSet\'s ConfigMap resolves, the systemd example\'s policies parse', () => {
    const yaml = read('packaging/kubernetes/bpfkit-broker-daemonset.yaml')
    // The block scalar under `broker.json: |`, to the next line indented less.
    const lines = yaml.split('\n')
    const start = lines.findIndex((l) => l.trim() === 'broker.json: |') + 1
    const indent = /^ */.exec(lines[start])![0].length
    const block = lines.slice(start, lines.findIndex((l, i) => i > start && l.trim() !== '' && /^ */.exec(l)![0].length < indent)).join('\n')
    const config = resolveConfig(JSON.parse(block))
    expect(config.socket).toBe(defaultBrokerSocket)
    expect(config.cgroupRoot).toBe('/host/sys/fs/cgroup')
    expect(config.socketMode).toBe(0o666)
    expect(config.tenants.map((t) => t.name)).toEqual(['example'])
    // The example pod runs as the uid the example tenant matches, and lists through the broker.
    const pod = read('packaging/kubernetes/tenant-pod-example.yaml')
    expect(pod).toContain(`runAsUser: ${config.tenants[0].match.uid![0]}`)
    expect(pod).toContain('command: ["bpfkit", "--broker", "/run/bpfkit/broker.sock", "list"]')
    const example = JSON.parse(read('packaging/systemd/broker.json.example'))
    for (const t of example.tenants) expect(Policy.from(t.policy)).toBeInstanceOf(Policy)
  })
})
