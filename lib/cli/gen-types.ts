// `bpfkit gen types <obj.o> [--name N]`: TypeScript declarations for a
// clang-built object (lib/collection/ts-types.ts), written to stdout, so that
// CollectionSpec.fromFile<N>('obj.o') is typed end to end.
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { ElfError } from '../collection/elf.js'
import { ParsedObject } from '../collection/object.js'
import { interfaceNameFor, isValidInterfaceName, renderCollectionTypes, type CollectionTypesInput } from '../collection/ts-types.js'
import { parseCommand, UsageError } from './args.js'

export interface GenTypesArgs {
  path: string
  name: string
}

export const genTypesUsage = `usage: bpfkit gen types <obj.o> [--name N]
  TypeScript declarations for a clang-built object's programs, maps and globals, to stdout,
  so that CollectionSpec.fromFile<N>('OBJ.o') is typed end to end
  --name N   the interface's name (default: made from the file name)`

/** `<obj.o> [--name N]` (or `--name=N`). Errors: UsageError. */
export function parseGenTypesArgs(args: readonly string[]): GenTypesArgs {
  const { values, positionals: [path] } = parseCommand({ name: 'gen types', usage: genTypesUsage, options: { name: { type: 'string' } }, positionals: [1, 1], names: ['OBJ.o'] }, args)
  const chosen = values.name ?? interfaceNameFor(path)
  if (!isValidInterfaceName(chosen)) {
    throw new UsageError(`gen types: '${chosen}' cannot name a TypeScript interface${values.name === undefined ? ` (made from ${basename(path)}); give one with --name` : ''}`, genTypesUsage)
  }
  return { path, name: chosen }
}

// The one reader of objects (lib/collection/object.ts) gives what the types
// are made from, so the types name exactly what CollectionSpec will hold.
/** The programs, maps (BTF-defined and legacy) and globals of an object, for renderCollectionTypes. Errors: ElfError. */
export function collectionTypesInput(bytes: Uint8Array, name: string, source: string): CollectionTypesInput {
  const object = new ParsedObject(Uint8Array.from(bytes), name)
  if (object.btf === undefined) throw new ElfError('object has no .BTF section: build it with clang -g to have types to generate')
  const maps = [...object.maps.values()].map(({ def }) => ({ name: def.name, type: def.type, keyTypeId: def.keyTypeId, valueTypeId: def.valueTypeId }))
  const variables = [...object.variables.values()].map((v) => ({ name: v.name, typeId: v.typeId }))
  return { name, source, btf: object.btf, programs: [...object.programs.keys()], maps, variables }
}

/** Writes the declarations for the object named in `args` to `out`. */
export function runGenTypes(args: readonly string[], out: (s: string) => void): number {
  const { path, name } = parseGenTypesArgs(args)
  const text = renderCollectionTypes(collectionTypesInput(readFileSync(path), name, basename(path)))
  out(text.replace(/\n$/, ''))
  return 0
}
