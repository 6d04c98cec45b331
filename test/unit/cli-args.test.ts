// parseCommand: util.parseArgs's tokens checked so every command refuses the
// same mistakes with the same words (exit 2 through main).
import { describe, expect, test } from 'vitest'
import { HelpRequested, parseCommand, UsageError } from '../../lib/cli/args.js'

const spec = {
  name: 'thing pin', usage: 'usage: thing pin ID [PATH]',
  options: { pin: { type: 'string' }, json: { type: 'boolean' }, keep: { type: 'string', multiple: true } },
  positionals: [1, 2], names: ['ID', 'PATH'],
} as const

describe('parseCommand', () => {
  test('values, both spellings, repeated multiples, positionals after --', () => {
    expect(parseCommand(spec, ['7', '--pin', '/a', '--json'])).toEqual({ values: { pin: '/a', json: true }, positionals: ['7'] })
    expect(parseCommand(spec, ['--pin=/a', '7', 'p'])).toEqual({ values: { pin: '/a' }, positionals: ['7', 'p'] })
    expect(parseCommand(spec, ['7', '--keep', 'a', '--keep', 'b']).values.keep).toEqual(['a', 'b'])
    // One dash is a value (a negative number the command then refuses as such).
    expect(parseCommand(spec, ['7', '--pin', '-1']).values.pin).toBe('-1')
    expect(parseCommand(spec, ['7', '--', '--json'])).toEqual({ values: {}, positionals: ['7', '--json'] })
  })

  const bad: [string[], RegExp][] = [
    [[], /^thing pin: expected ID PATH, missing ID$/],
    [['1', '2', '3'], /^thing pin: unexpected argument 3$/],
    [['1', '--bogus'], /^thing pin: unknown option '--bogus' \(it takes --pin, --json, --keep\)$/],
    [['1', '-x'], /unknown option '-x'/],
    [['1', '--pin'], /^thing pin: --pin needs a value$/],
    [['1', '--pin='], /--pin needs a value/],
    [['1', '--pin', '--json'], /--pin needs a value/],
    [['1', '--json=yes'], /^thing pin: --json takes no value$/],
    [['1', '--pin', 'a', '--pin', 'b'], /^thing pin: --pin given twice$/],
  ]
  test.each(bad)('%j is a usage error carrying the usage', (args, message) => {
    let error: unknown
    try {
      parseCommand(spec, args)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(UsageError)
    expect((error as UsageError).message).toMatch(message)
    expect((error as UsageError).usage).toBe(spec.usage)
  })

  test('--help or -h wins over any mistake, but not after --', () => {
    for (const args of [['--help'], ['-h'], ['--bogus', '--help'], ['1', '2', '3', '-h']]) expect(() => parseCommand(spec, args)).toThrow(HelpRequested)
    expect(parseCommand(spec, ['1', '--', '--help']).positionals).toEqual(['1', '--help'])
  })

  test('without names, the count', () => {
    expect(() => parseCommand({ name: 'c', usage: '', options: {}, positionals: [2, Infinity] }, ['a'])).toThrow(/^c: expected at least 2 arguments, got 'a'$/)
  })
})
