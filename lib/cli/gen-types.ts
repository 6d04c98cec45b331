// `bpfkit gen types <obj.o> [--name N]`: TypeScript declarations for a
// clang-built object (lib/collection/ts-types.ts), written to stdout, so that
// CollectionSpec.fromFile<N>('obj.o') is typed end to end.
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { ElfError } from '../collection/elf.js'
import { ParsedObject } from '../collection/object.js'
import { interfaceNameFor, isValidInterfaceName, renderCollectionTypes, type CollectionTypesInput } from '../collection/ts-types.js'
import { UsageError } from './args.js'

export interface GenTypesArgs {
  path: string
  name: string
}

/** `<obj.o> [--name N]` (or `--name=N`). Errors: UsageError. */
export function parseGenTypesArgs(args: readonly string[]): GenTypesArgs {
  const positional: string[] = []
  let name: string | undefined
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a === '--name' || a.startsWith('--name=')) {
      if (name !== undefined) throw new UsageError('gen types: --name given twice')
      name = a === '--name' ? args[++i] : a.slice('--name='.length)
      if (name === undefined || name === '') throw new UsageError('gen types: --name needs a value')
    } else if (a.startsWith('-') && a !== '-') {
      throw new UsageError(`gen types: unknown option '${a}'`)
    } else {
      positional.push(a)
    }
  }
  if (positional.length !== 1) throw new UsageError(`gen types: expected one object file, got ${positional.length === 0 ? 'none' : positional.join(' ')}`)
  const path = positional[0]
  const chosen = name ?? interfaceNameFor(path)
  if (!isValidInterfaceName(chosen)) {
    throw new UsageError(`gen types: '${chosen}' cannot name a TypeScript interface${name === undefined ? ` (made from ${basename(path)}); give one with --name` : ''}`)
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
