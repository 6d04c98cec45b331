// Every bpfkit command, through main(): --help prints the command's own usage
// on stdout and exits 0; a malformed command line exits 2 with the reason and
// that usage on stderr, before anything touches the kernel (no root needed).
import { describe, expect, test } from 'vitest'
import { runCli } from '../kernel/helpers/cli.js'

const S = '/run/bpfkit-usage-test.sock'

// [command line for --help, the usage's first words, a malformed command line]
const commands: [string[], string, string[]][] = [
  [['list'], 'usage: bpfkit list', ['list', 'nope']],
  [['gen', 'types'], 'usage: bpfkit gen types', ['gen', 'types']],
  [['gen'], 'usage: bpfkit gen types', ['gen', 'skeleton']],
  [['policy'], 'usage: bpfkit policy check', ['policy', 'check', 'a.o']],
  [['policy', 'helpers'], 'usage: bpfkit policy check', ['policy', 'helpers', '--prog-type']],
  [['guard'], 'usage: bpfkit guard', ['guard', 'status', '--bogus']],
  [['guard', 'tenant', 'set'], 'usage: bpfkit guard', ['guard', 'tenant', 'set', 'web']],
  [['broker'], 'usage: bpfkit broker --config FILE', ['broker', '--config']],
  [['broker', 'gc'], 'usage: bpfkit broker --config FILE', ['broker', 'gc']],
  [['demo'], 'usage: bpfkit demo', ['demo', 'now']],
  [['feature'], 'usage: bpfkit feature probe', ['feature', 'probe', '--all']],
  [['feature', 'probe'], 'usage: bpfkit feature probe', ['feature']],
  [['load'], 'usage: bpfkit load OBJ.bpf.o', ['load', 'a.o', '--attach']],
  [['delegate'], 'usage: bpfkit delegate --policy P.json', ['delegate', '--', 'true']],
  [['prog'], 'usage: bpfkit prog', ['prog', 'frob']],
  [['link'], 'usage: bpfkit link', ['link', 'frob']],
  [['map'], 'usage: bpfkit map', ['map', 'frob']],
  [['btf'], 'usage: bpfkit btf', ['btf', 'frob']],
  [['top'], 'usage: bpfkit [--broker SOCK] top', ['top', '--bogus']],
  [['--broker', S, 'list'], 'usage: bpfkit --broker SOCK list', ['--broker', S, 'list', 'maps', 'progs']],
  [['--broker', S, 'show'], 'usage: bpfkit --broker SOCK show', ['--broker', S, 'show', 'map']],
  [['--broker', S, 'load'], 'usage: bpfkit --broker SOCK load', ['--broker', S, 'load', 'a.o', '--pin', 'x']],
  [['--broker', S, 'attach'], 'usage: bpfkit --broker SOCK attach', ['--broker', S, 'attach', '5', 'xdp']],
  [['--broker', S, 'pin'], 'usage: bpfkit --broker SOCK pin', ['--broker', S, 'pin', 'map', '3']],
  [['--broker', S, 'unpin'], 'usage: bpfkit --broker SOCK unpin', ['--broker', S, 'unpin']],
  [['--broker', S, 'release'], 'usage: bpfkit --broker SOCK release', ['--broker', S, 'release', 'map', '0x1']],
  [['--broker', S, 'dump'], 'usage: bpfkit --broker SOCK dump', ['--broker', S, 'dump', 'map']],
  [['--broker', S, 'top'], 'usage: bpfkit [--broker SOCK] top', ['--broker', S, 'top', '--bogus']],
]

describe('every command', () => {
  test.each(commands)('%j --help: its usage on stdout, exit 0', async (argv, usage) => {
    for (const help of ['--help', '-h']) {
      const r = await runCli(...argv, help)
      expect(r.code).toBe(0)
      expect(r.out.startsWith(usage), r.out).toBe(true)
      expect(r.err).toBe('')
    }
  })

  test.each(commands)('%j: a malformed line (%j) is exit 2 with the reason and the usage on stderr', async (_argv, usage, bad) => {
    const r = await runCli(...bad)
    expect(r.code).toBe(2)
    expect(r.out).toBe('')
    expect(r.err).toMatch(/^bpfkit: \S.*\n/)
    expect(r.err).toContain(usage)
  })
})

describe('bpfkit itself', () => {
  test('help, --help, -h: the overview on stdout, exit 0; help CMD is CMD --help', async () => {
    for (const argv of [['help'], ['--help'], ['-h']]) {
      const r = await runCli(...argv)
      expect(r.code).toBe(0)
      expect(r.out).toMatch(/^usage: bpfkit \[--broker SOCK\] <command>\n/)
      for (const cmd of ['list', 'feature probe', 'load OBJ.bpf.o', 'delegate --policy', 'gen types', 'guard start', 'demo']) expect(r.out).toContain(`  ${cmd}`)
    }
    expect((await runCli('help', 'load')).out).toMatch(/^usage: bpfkit load OBJ\.bpf\.o/)
  })

  test('no command, an unknown one, an unknown option before it: exit 2', async () => {
    const none = await runCli()
    expect(none.code).toBe(2)
    expect(none.err).toMatch(/^bpfkit: expected a command\nusage: bpfkit/)
    expect((await runCli('frobnicate')).err).toMatch(/^bpfkit: unknown command 'frobnicate'/)
    expect((await runCli('--json', 'list')).err).toMatch(/^bpfkit: unknown option '--json' \(before the command, only --broker SOCK\)/)
    for (const argv of [['frobnicate'], ['--json', 'list'], ['--broker'], ['--broker', S, 'guard', 'status']]) expect((await runCli(...argv)).code).toBe(2)
  })

  test('--broker belongs to bpfkit only before `--`: a delegated command keeps its own', async () => {
    // Without --policy, delegate's usage error shows the command line was parsed as delegate's, not as a broker command.
    const r = await runCli('delegate', '--', 'sh', '--broker', S)
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/^bpfkit: delegate: --policy P\.json is required/)
  })
})
