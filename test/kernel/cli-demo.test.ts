// `bpfkit demo`: the delegation story end to end, as a person reads it, and
// the tenant broker's part of it (list through the broker, a capability
// refusal; the guard's where it runs, else the probe's reason).
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { features } from '../../lib/index.js'
import { repoRoot } from './helpers/raw.js'
import { userNamespacesMissing } from './helpers/tenant.js'
import { requireFeature } from './helpers/requires.js'

const cli = join(repoRoot, 'dist/cli/main.js')

describe('bpfkit demo', () => {
  test('a tenant gets a token, uses it, meets both kinds of refusal, lists its own objects through the broker; the manager finds them', (ctx) => {
    const why = requireFeature(features.haveBpfToken) ?? userNamespacesMissing()
    if (why !== undefined) ctx.skip(why)
    const r = spawnSync(process.execPath, [cli, 'demo'], { encoding: 'utf8', timeout: 30_000 })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const out = r.stdout
    expect(out).toContain('mount options: delegate_cmds=map_create:prog_load,delegate_maps=hash:array,delegate_progs=socket_filter,delegate_attachs=cgroup_inet_ingress')
    expect(out).toMatch(/tenant  │ made a token from the delegated bpffs; the kernel says it delegates/)
    const mapId = /created hash map "demo_counts" with the token: id (\d+)/.exec(out)?.[1]
    const progId = /loaded socket_filter "demo_len" with the token: id (\d+)/.exec(out)?.[1]
    expect(mapId).toBeDefined()
    expect(progId).toBeDefined()
    expect(out).toContain('returned 50 (skb->len')
    expect(out).toContain('counted 100 runs in demo_counts[0]')
    expect(out).toContain("PolicyError: token does not delegate map type 'ringbuf'; it delegates map types: hash, array")
    expect(out).toMatch(/refused by the kernel\n\s+│\s+BpfError: map_create: EPERM/)
    // IDs are refused to it; the broker lists its own objects, found in its fdinfo, and no one else's.
    expect(out).toMatch(/tried to list map IDs: refused[^\n]*\n\s+│\s+BpfError: map_get_next_id: EPERM/)
    const userns = /registered tenant 'demo' with the broker: any process in user namespace (\d+)/.exec(out)?.[1]
    expect(userns).toBeDefined()
    const listed = /it knows this process as tenant 'demo' and lists its objects\n((?:\s+│ {3}.*\n)+)/.exec(out)?.[1]
    expect(listed).toBeDefined()
    const rows = listed!.split('\n').filter((l) => /│ {3}(map|prog) /.test(l)).map((l) => l.replace(/^\s+│ {3}/, ''))
    expect(rows).toEqual([`map  ${mapId}  hash  "demo_counts"  origin held`, `prog ${progId}  socket_filter  "demo_len"  origin held`])
    // The capability checker of the broker, not the client's (the request went as is).
    expect(out).toMatch(/load socket_filter "demo_time", which calls ktime_get_ns: refused by its capability checker\n\s+│\s+BrokerError EPERM: [^\n]*\n\s+│\s+insn 0: helper ktime_get_ns is not granted to socket_filter/)
    const guardWhy = requireFeature(features.haveGuardHooks) ?? requireFeature(features.haveBpfLsm)
    if (guardWhy === undefined) {
      expect(out).toContain('with the guard (BPF LSM) running: the kernel enforces the tenant\'s policy too')
      // The kernel's refusal (a BpfError of prog_load), not bpfkit's PolicyError: the tenant passed the bare token fd.
      expect(out).toMatch(/loaded "demo_time" itself, with the bare token fd \(no bpfkit check\): refused by the kernel \(the guard\)\n\s+│\s+BpfError EPERM: prog_load: EPERM/)
      // And the guard says it was its refusal, for that tenant and that helper.
      expect(out).toMatch(/manager │ the guard's events, read from its ring buffer:\n\s+│ {3}guard refused prog 'demo_time' of tenant 'demo': helper ktime_get_ns at insn 0 is not granted in context socket_filter\n/)
      expect(out).not.toContain('no guard runs here')
    } else {
      expect(out).toContain(`without the guard, which cannot run here: ${guardWhy}`)
      expect(out).toMatch(/tenant  │ no guard runs here: loading "demo_time" itself with its token, the kernel would check only the token's masks,/)
      expect(out).not.toContain('refused by the kernel (the guard)')
      expect(out).not.toContain("the guard's events")
    }
    expect(out).toContain(`map  ${mapId}  hash  "demo_counts"  key 4B  value 8B  max_entries 16`)
    expect(out).toMatch(new RegExp(`prog ${progId}  socket_filter  "demo_len"  tag [0-9a-f]{16}  uses maps ${mapId}`))
    expect(out).toContain('exited (status 0)')
  })

  test('without root it says why and exits 1', () => {
    // The user is nobody, with one capability: CAP_DAC_READ_SEARCH (ambient,
    // so it survives the exec into node), which lets it read the checkout
    // wherever it lives (a clone under root's mode-700 home, another user's
    // directory) and grants nothing else: no BPF, no mounts, no uid changes,
    // so the demo still meets a user without root. Copying the package to a
    // world-readable directory instead would hang on the package's file
    // layout (dist/, the addon, node-gyp-build) and on TMPDIR being readable
    // by nobody.
    const nobody = ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps', '+dac_read_search', '--ambient-caps', '+dac_read_search']
    const r = spawnSync('setpriv', [...nobody, '--', process.execPath, cli, 'demo'], { encoding: 'utf8' })
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/^bpfkit: the demo needs root: the manager sets delegate_\* options/)
  })

  test('extra arguments are a usage error', () => {
    const r = spawnSync(process.execPath, [cli, 'demo', 'now'], { encoding: 'utf8' })
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/^bpfkit: demo: unexpected argument now\nusage: bpfkit demo/)
  })
})
