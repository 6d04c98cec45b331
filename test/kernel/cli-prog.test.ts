// `bpfkit prog`, through the real binary, on programs this test loads:
// list/show/dump as bpftool sees the same program, pin on a private bpffs,
// run through BPF_PROG_TEST_RUN; usage errors exit 2, failures exit 1.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { asm, BpfMap, BpfProgram, Btf } from '../../lib/index.js'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { privateBpffs } from './helpers/scratch.js'
import { bpftool } from './helpers/bpftool.js'
import { bpfkit, bpfkitJson as json, cliPath as cli } from './helpers/cli-binary.js'
import { runCli } from './helpers/cli.js'

const scratch = mkdtempSync(join(tmpdir(), 'bpfkit-cli-prog-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

// Unique per run, so names never match another process's programs.
const tag = (process.pid % 100000).toString(36)

/** BTF naming a program's main function `name` in full (the kernel keeps 15 characters of the program's own name). */
async function funcBtf(name: string) {
  const b = new BtfBuilder()
  const proto = b.funcProto(b.int('int', 4, { signed: true }), [{ name: 'skb', type: b.ptr(b.struct('__sk_buff', [])) }])
  const typeId = b.func(name, proto, 'global')
  return { btf: await Btf.load(b.bytes()), funcInfo: [{ insnOff: 0, typeId }] }
}

/**
 * A socket filter that looks its first key up in an array map and returns
 * `retval`: xlated code with a map reference. A name longer than 15
 * characters is given in full through BTF, as clang-built objects do.
 */
async function loadWithMap(name: string, retval = 0) {
  const map = BpfMap.create({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4, name: `m_${tag}` })
  const long = name.length > 15 ? await funcBtf(name) : undefined
  const prog = await BpfProgram.load({
    ...(long ?? {}),
    type: 'socket_filter', name: name.slice(0, 15), license: 'GPL', insns: [
      asm.mov64Imm(asm.R1, 0), asm.stxW(asm.R10, asm.R1, -4),
      asm.ldMapFd(asm.R1, map), asm.mov64Reg(asm.R2, asm.R10), asm.add64Imm(asm.R2, -4), asm.call('map_lookup_elem'),
      asm.mov64Imm(asm.R0, retval), asm.exit(),
    ],
  })
  return { map, prog, [Symbol.dispose]() { prog.close(); map.close(); long?.btf.close() } }
}

/** Two functions: main calls a subprogram, so the JIT makes two images. */
const withSubprog = (name: string) => BpfProgram.load({
  type: 'socket_filter', name, license: 'GPL', insns: [
    asm.callLocal('sub'), asm.exit(),
    asm.label('sub'), asm.mov64Imm(asm.R0, 0), asm.exit(),
  ],
})

describe('bpfkit prog show / list', () => {
  test('show by ID, name and pin prints the same program; list has it', async () => {
    using o = await loadWithMap(`show_${tag}`)
    using fs = privateBpffs()
    const info = o.prog.info()
    const byId = json('prog', 'show', String(info.id))
    expect(byId).toMatchObject({
      id: info.id, type: 'socket_filter', name: `show_${tag}`, tag: info.tag, gpl_compatible: true,
      bytes_xlated: info.xlatedSize, map_ids: [o.map.info().id], run_cnt: 0,
    })
    expect(json('prog', 'show', `show_${tag}`)).toEqual(byId)
    const pin = join(fs.path, 'p')
    o.prog.pin(pin)
    expect(json('prog', 'show', pin)).toEqual(byId)
    const listed = (json('prog', 'list') as Array<{ id: number }>).find((p) => p.id === info.id)
    expect(listed).toEqual(byId)
    const text = bpfkit('prog', 'show', String(info.id)).stdout
    expect(text).toContain(`${info.id}: socket_filter  name show_${tag}  tag ${info.tag}  gpl`)
    expect(text).toMatch(/memlock \d+B/)
  })

  test('--json has bpftool\'s keys and values for the same program, its whole name too', async (ctx) => {
    const name = `tool_with_a_long_name_${tag}`
    using o = await loadWithMap(name)
    const id = o.prog.info().id
    const ours = json('prog', 'show', String(id))
    expect(ours.name).toBe(name)
    expect(json('prog', 'show', name).id).toBe(id)
    expect(bpfkit('prog', 'show', name).stdout).toContain(`${id}: socket_filter  name ${name}  tag`)
    const tool = bpftool(ctx)
    const theirs = tool.json('prog', 'show', 'id', String(id))
    // Every key bpftool prints, bpfkit prints with the same value; loaded_at
    // is the boot time plus the load time, which each rounds its own way.
    const compared = Object.keys(theirs).filter((k) => k !== 'pids' && k !== 'pinned' && k !== 'orphaned')
    expect(compared).toEqual(expect.arrayContaining(['id', 'type', 'name', 'tag', 'gpl_compatible', 'bytes_xlated', 'map_ids']))
    for (const k of compared) {
      if (k === 'loaded_at') expect(Math.abs(ours.loaded_at - theirs.loaded_at), k).toBeLessThanOrEqual(2)
      else expect(ours[k], k).toEqual(theirs[k])
    }
  })
})

describe('bpfkit prog dump', () => {
  test('--xlated prints what bpftool prints; --json has one object per instruction', async (ctx) => {
    using o = await loadWithMap(`dump_${tag}`)
    const id = String(o.prog.info().id)
    const text = bpfkit('prog', 'dump', id, '--xlated')
    expect(text.status).toBe(0)
    expect(bpfkit('prog', 'dump', id).stdout).toBe(text.stdout)
    const lines = text.stdout.trimEnd().split('\n')
    expect(lines[0]).toBe('   0: (b7) r1 = 0')
    expect(lines).toContain(`   2: (18) r1 = map[id:${o.map.info().id}]`)
    expect(lines.at(-1)).toMatch(/: \(95\) exit$/)
    const insns = json('prog', 'dump', id, '--xlated') as Array<{ pc: number; code: number; disasm: string }>
    expect(insns.map((i) => `${String(i.pc).padStart(4)}: ${i.disasm}`)).toEqual(lines)
    expect(insns[0]).toMatchObject({ pc: 0, code: 0xb7, dst: 1, src: 0, off: 0, imm: 0 })

    const tool = bpftool(ctx)
    const theirs = tool.json('prog', 'dump', 'xlated', 'id', id) as Array<{ disasm: string }>
    expect(insns.length).toBe(theirs.length)
    // The opcode of every instruction agrees, and so does the text of all but
    // calls (bpftool names a call by its helper or kernel symbol).
    expect(insns.map((i) => i.disasm.slice(0, 4))).toEqual(theirs.map((i) => i.disasm.slice(0, 4)))
    const notCalls = (l: string[]) => l.filter((s) => !/\) call /.test(s))
    expect(notCalls(insns.map((i) => i.disasm))).toEqual(notCalls(theirs.map((i) => i.disasm)))
    expect(tool.text('prog', 'dump', 'xlated', 'id', id).trimEnd().split('\n').length).toBe(lines.length)
  })

  test('--jited-size: the JIT\'s length, per function (two for a program with a subprogram)', async (ctx) => {
    using prog = await withSubprog(`jit_${tag}`)
    const info = prog.info()
    const r = json('prog', 'dump', String(info.id), '--jited-size') as { jited: boolean; bytes_jited: number; functions: Array<{ bytes: number; name: string; address: string }> }
    expect(r.bytes_jited).toBe(info.jitedSize)
    if (!r.jited) ctx.skip('the JIT is off on this kernel (net.core.bpf_jit_enable=0): nothing to measure')
    expect(r.functions).toHaveLength(2)
    // Each image is padded to the JIT's alignment; their sum is the whole.
    expect(r.functions.reduce((n, f) => n + f.bytes, 0)).toBe(info.jitedSize)
    expect(r.functions[0].name).toMatch(new RegExp(`^bpf_prog_${info.tag}_jit_${tag}$`))
    expect(r.functions[0].address).toMatch(/^0x[0-9a-f]+$/)
    const text = bpfkit('prog', 'dump', `jit_${tag}`, '--jited-size').stdout
    expect(text).toContain(`${info.id}: jited ${info.jitedSize}B in 2 functions`)
    expect(bpftool(ctx).json('prog', 'show', 'id', String(info.id)).bytes_jited).toBe(info.jitedSize)
  })
})

describe('bpfkit prog pin / run', () => {
  test('pin: the program is reachable at the path, as bpftool sees it', async (ctx) => {
    using o = await loadWithMap(`pin_${tag}`)
    using fs = privateBpffs()
    const id = o.prog.info().id
    const path = join(fs.path, 'pinned')
    const r = bpfkit('prog', 'pin', `pin_${tag}`, path)
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toBe(`pinned program ${id} at ${path}\n`)
    using again = BpfProgram.fromPin(path)
    expect(again.info().id).toBe(id)
    // Pinning again at a taken path fails (EEXIST) and leaves the pin as it was.
    const twice = bpfkit('prog', 'pin', String(id), path)
    expect(twice.status).toBe(1)
    expect(twice.stderr).toMatch(/EEXIST/)
    expect(bpftool(ctx).json('prog', 'show', 'pinned', path).id).toBe(id)
  })

  test('pin outside a bpffs fails with exit 1 and makes nothing', async () => {
    using o = await loadWithMap(`pinx_${tag}`)
    const path = join(scratch, 'not-bpffs')
    const r = bpfkit('prog', 'pin', String(o.prog.info().id), path)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/^bpfkit: /)
    expect(existsSync(path)).toBe(false)
  })

  test('run: retval, duration and the data out, as text, as JSON and to a file; bpftool agrees on retval', async (ctx) => {
    using o = await loadWithMap(`run_${tag}`, 7)
    const id = String(o.prog.info().id)
    const packet = Buffer.from(Array.from({ length: 64 }, (_, i) => i))
    const data = join(scratch, 'packet')
    writeFileSync(data, packet)
    // A socket filter's test run treats the first 14 bytes as the Ethernet
    // header it strips and puts back (zeroed but for the protocol): the rest
    // comes back as it went in.
    const sameBody = (hex: string) => expect(Buffer.from(hex, 'hex').subarray(14)).toEqual(packet.subarray(14))
    const r = json('prog', 'run', `run_${tag}`, '--data', data, '--repeat', '5')
    expect(r).toMatchObject({ id: Number(id), retval: 7 })
    sameBody(r.data_out)
    expect(r.duration).toBeGreaterThanOrEqual(0)
    const text = bpfkit('prog', 'run', id, '--data', data)
    expect(text.status).toBe(0)
    expect(text.stdout).toMatch(/^retval 7  duration \d+ns\ndata out \(64B\):\n  0000: (.. ){14}0e 0f\n  0010: 10 11/)
    const outFile = join(scratch, 'out')
    expect(bpfkit('prog', 'run', id, '--data', data, '--data-out', outFile).status).toBe(0)
    sameBody(readFileSync(outFile).toString('hex'))
    const viaStdin = spawnSync(process.execPath, [cli, 'prog', 'run', id, '--data', '-', '--json'], { input: packet, encoding: 'utf8' })
    expect(JSON.parse(viaStdin.stdout)).toMatchObject({ retval: 7 })
    sameBody(JSON.parse(viaStdin.stdout).data_out)
    expect(bpftool(ctx).json('prog', 'run', 'id', id, 'data_in', data).retval).toBe(7)
  })
})

describe('bpfkit prog: errors', () => {
  // Usage is checked before anything reaches the kernel: main() in-process is
  // enough, and spares a process per case (seconds each in an emulated VM).
  test('usage errors exit 2 with the command\'s usage; --help exits 0', async () => {
    for (const args of [['prog'], ['prog', 'frob'], ['prog', 'show'], ['prog', 'show', '1', '2'], ['prog', 'list', '--bogus'],
      ['prog', 'dump', '1', '--xlated', '--jited-size'], ['prog', 'run', '1'], ['prog', 'run', '1', '--data', 'x', '--repeat', '0'],
      ['prog', 'pin', '1']]) {
      const r = await runCli(...args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.err, args.join(' ')).toMatch(/usage: bpfkit prog/)
    }
    for (const args of [['prog', '--help'], ['prog', 'show', '--help'], ['prog', 'run', '-h']]) {
      const r = await runCli(...args)
      expect(r.code).toBe(0)
      expect(r.out).toMatch(/^usage: bpfkit prog/)
    }
    // And the real binary exits with that code.
    expect(bpfkit('prog', 'show').status).toBe(2)
  })

  test('an unknown ID or name, an ambiguous name, a missing data file: exit 1 with a message', async () => {
    using a = await loadWithMap(`twin_${tag}`)
    using b = await loadWithMap(`twin_${tag}`)
    const ids = [a.prog.info().id, b.prog.info().id]
    const twin = bpfkit('prog', 'show', `twin_${tag}`)
    expect(twin.status).toBe(1)
    expect(twin.stderr).toBe(`bpfkit: prog twin_${tag}: 2 programs named 'twin_${tag}': IDs ${ids.join(', ')}; name one by ID\n`)
    // The rest in-process (main() is what the binary runs).
    const none = await runCli('prog', 'dump', `none_${tag}`)
    expect(none.code).toBe(1)
    expect(none.err).toMatch(/no program named 'none_.*' is loaded/)
    expect((await runCli('prog', 'show', '4294967295')).err).toMatch(/no program has that ID/)
    const missing = await runCli('prog', 'run', String(ids[0]), '--data', join(scratch, 'missing'))
    expect(missing.code).toBe(1)
    expect(missing.err).toMatch(/cannot read --data/)
  })
})
