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
  /** The positionals' names, for messages ("expected KIND ID, missing ID"). */
  names?: readonly string[]
}

type OptionValue<T> = T extends { type: 'boolean' }
  ? (T extends { multiple: true } ? boolean[] : boolean)
  : (T extends { multiple: true } ? string[] : string)
/** What parseCommand returns for options O: each one absent, or its value. */
export type Values<O> = { [K in keyof O]?: OptionValue<O[K]> }

const helpOption = { help: { type: 'boolean', short: 'h' } } as const

/**
 * Parses one command's arguments. Unknown options, a missing option value, a
 * value given twice and a wrong number of positionals are UsageErrors that
 * carry the command's usage; --help anywhere before `--` is HelpRequested.
 *
 * util.parseArgs splits the command line into tokens; the checks are made
 * here over those tokens rather than by its strict mode, so each message
 * names the command and what it takes, and an option value may start with
 * one dash (`--max-maps -1` is then refused as a number, not as an option).
 * A following `--option` is never taken as a value.
 */
export function parseCommand<O extends ParseArgsOptionsConfig>(spec: CommandSpec<O>, args: readonly string[]): { values: Values<O>; positionals: string[] } {
  const options: ParseArgsOptionsConfig = { ...spec.options, ...helpOption }
  const parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: false, tokens: true })
  const tokens = parsed.tokens ?? []
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) throw new HelpRequested(spec.usage)
  const given = new Set<string>()
  for (const t of tokens) {
    if (t.kind !== 'option') continue
    const o = Object.hasOwn(options, t.name) ? options[t.name] : undefined
    if (o === undefined) {
      const takes = Object.keys(spec.options).map((k) => `--${k}`)
      throw new UsageError(`${spec.name}: unknown option '${t.rawName}'${takes.length ? ` (it takes ${takes.join(', ')})` : ''}`, spec.usage)
    }
    if (o.type === 'boolean') {
      if (t.value !== undefined) throw new UsageError(`${spec.name}: ${t.rawName} takes no value`, spec.usage)
      continue
    }
    if (t.value === undefined || t.value === '' || (!t.inlineValue && t.value.startsWith('--'))) {
      throw new UsageError(`${spec.name}: ${t.rawName} needs a value`, spec.usage)
    }
    if (!o.multiple && given.has(t.name)) throw new UsageError(`${spec.name}: ${t.rawName} given twice`, spec.usage)
    given.add(t.name)
  }
  const [min, max] = spec.positionals ?? [0, 0]
  const positionals = parsed.positionals
  const n = positionals.length
  if (n > max) throw new UsageError(`${spec.name}: unexpected argument ${positionals.slice(max).join(' ')}`, spec.usage)
  if (n < min) {
    const names = spec.names
    if (names !== undefined && names.length >= min) throw new UsageError(`${spec.name}: expected ${names.join(' ')}, missing ${names.slice(n, min).join(' ')}`, spec.usage)
    const want = `${min === max ? '' : 'at least '}${min} argument${min === 1 ? '' : 's'}`
    throw new UsageError(`${spec.name}: expected ${want}, got ${n === 0 ? 'none' : positionals.map((p) => `'${p}'`).join(' ')}`, spec.usage)
  }
  const { help: _help, ...values } = parsed.values as Record<string, unknown>
  return { values: values as Values<O>, positionals }
}

/** A subcommand word: one of `choices`, or a UsageError naming them. */
export function subcommand<T extends string>(name: string, word: string | undefined, choices: readonly T[], usage: string): T {
  if (word === '--help' || word === '-h') throw new HelpRequested(usage)
  if (word !== undefined && (choices as readonly string[]).includes(word)) return word as T
  throw new UsageError(`${name}: expected ${choices.join('|')}, got ${word === undefined ? 'nothing' : `'${word}'`}`, usage)
}

/**
 * Runs the subcommand `args[0]` names, one of `handlers`' own keys, with the
 * arguments after it; any other word is subcommand()'s UsageError.
 */
export function runSubcommand<R>(name: string, args: readonly string[], handlers: Readonly<Record<string, (rest: string[], out: Out) => R>>, usage: string, out: Out): R {
  const cmd = subcommand(name, args[0], Object.keys(handlers), usage)
  return handlers[cmd](args.slice(1), out)
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

/** A 64-bit counter or id as a JSON number, as bpftool prints one, while exact; past 2^53 the bigint (toJson: a decimal string). */
export function u64Json(n: bigint): number | bigint {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
}
