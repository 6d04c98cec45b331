// What every bpfkit command shares: its arguments parsed by Node's
// util.parseArgs (strict, so an unknown option is a usage error, exit 2), its
// own --help (printed to stdout, exit 0), and where it prints.
import { parseArgs, type ParseArgsConfig } from 'node:util'

export type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>

/** Exit 2: the command line was wrong. `usage` is the command's own help, printed after the message. */
export class UsageError extends Error {
  constructor(message: string, readonly usage?: string) {
    super(message)
  }
}

/** Thrown by parseCommand on --help/-h: main prints `usage` to stdout and exits 0. */
export class HelpRequested extends Error {
  constructor(readonly usage: string) {
    super('help')
  }
}

/** Where a command prints its results, one line (or JSON document) per call. */
export type Out = (s: string) => void

export interface CommandSpec<O extends ParseArgsOptionsConfig> {
  /** The command's words, for messages: 'prog show'. */
  name: string
  /** The command's own help text (its usage line and what each option does). */
  usage: string
  options: O
  /** How many positionals the command takes: [min, max]; max Infinity for a list. Default [0, 0]. */
  positionals?: readonly [number, number]
}

type OptionValue<T> = T extends { type: 'boolean' }
  ? (T extends { multiple: true } ? boolean[] : boolean)
  : (T extends { multiple: true } ? string[] : string)
/** What parseCommand returns for options O: each one absent, or its value. */
export type Values<O> = { [K in keyof O]?: OptionValue<O[K]> }

const helpOption = { help: { type: 'boolean', short: 'h' } } as const

/**
 * Parses one command's arguments. Unknown options, a missing option value and
 * a wrong number of positionals are UsageErrors that carry the command's
 * usage; --help anywhere is HelpRequested.
 */
export function parseCommand<O extends ParseArgsOptionsConfig>(spec: CommandSpec<O>, args: readonly string[]): { values: Values<O>; positionals: string[] } {
  let parsed
  try {
    parsed = parseArgs({ args: [...args], options: { ...spec.options, ...helpOption }, allowPositionals: true, strict: true })
  } catch (e) {
    if (args.includes('--help') || args.includes('-h')) throw new HelpRequested(spec.usage)
    throw new UsageError(`${spec.name}: ${(e as Error).message}`, spec.usage)
  }
  if ((parsed.values as { help?: boolean }).help) throw new HelpRequested(spec.usage)
  const [min, max] = spec.positionals ?? [0, 0]
  const n = parsed.positionals.length
  if (n < min || n > max) {
    const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`
    const got = n === 0 ? 'none' : parsed.positionals.map((p) => `'${p}'`).join(' ')
    throw new UsageError(`${spec.name}: expected ${want} argument${want === '1' ? '' : 's'}, got ${got}`, spec.usage)
  }
  return { values: parsed.values as Values<O>, positionals: parsed.positionals }
}

/** A subcommand word: one of `choices`, or a UsageError naming them. */
export function subcommand<T extends string>(name: string, word: string | undefined, choices: readonly T[], usage: string): T {
  if (word === '--help' || word === '-h') throw new HelpRequested(usage)
  if (word !== undefined && (choices as readonly string[]).includes(word)) return word as T
  throw new UsageError(`${name}: expected ${choices.join('|')}, got ${word === undefined ? 'nothing' : `'${word}'`}`, usage)
}

/** A decimal integer argument (an ID, a count), or a UsageError. */
export function integerArg(name: string, what: string, s: string, min = 0): number {
  if (!/^\d+$/.test(s) || Number(s) < min || !Number.isSafeInteger(Number(s))) {
    throw new UsageError(`${name}: ${what} must be an integer >= ${min}, got '${s}'`)
  }
  return Number(s)
}

/** JSON with bigints as decimal strings, indented by `indent` spaces (0: one line). */
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), indent)
}
