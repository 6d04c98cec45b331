// Walks a public entry point's arguments with wrong values (null, undefined,
// wrong types), one position at a time, the others valid. Every refusal must
// be an Error of bpfkit's own making: never a message from the JavaScript
// engine ("Cannot read properties of null", "x is not iterable"), which names
// neither the argument nor the call. What a call accepts is closed at once.
import { expect } from 'vitest'

export const jsInternal = /Cannot read prop|is not iterable|is not a function|Cannot convert|Cannot destructure|is not a constructor|undefined is not|null is not/

export const wrongValues: readonly unknown[] = [null, undefined, 'x', -1, 1.5, {}, [], () => 0, 1n, [null]]

// Every argument list of the walk: `valid` with one position replaced by one wrong value.
function* cases(valid: readonly unknown[]): Generator<{ args: unknown[]; label: string }> {
  for (let i = 0; i < valid.length; i++) {
    for (const bad of wrongValues) {
      const args = [...valid]
      args[i] = bad
      yield { args, label: `argument ${i} = ${typeof bad === 'function' ? 'a function' : String(bad)}` }
    }
  }
}

function closeResult(r: unknown): void {
  if (r !== null && typeof r === 'object' && typeof (r as { close?: unknown }).close === 'function') (r as { close(): void }).close()
}

function checkRefusal(name: string, label: string, e: unknown): Error {
  expect(e, `${name} ${label}`).toBeInstanceOf(Error)
  expect((e as Error).message, `${name} ${label}`).not.toMatch(jsInternal)
  return e as Error
}

/** Calls `call` with each wrong value in each position; returns the errors thrown, for more checks. */
export function walkArguments(name: string, call: (...args: unknown[]) => unknown, valid: readonly unknown[]): Error[] {
  const errors: Error[] = []
  for (const { args, label } of cases(valid)) {
    try {
      closeResult(call(...args))
    } catch (e) {
      errors.push(checkRefusal(name, label, e))
    }
  }
  return errors
}

/** The same walk for calls that return promises: a rejection counts as the refusal. */
export async function walkArgumentsAsync(name: string, call: (...args: unknown[]) => Promise<unknown>, valid: readonly unknown[]): Promise<Error[]> {
  const errors: Error[] = []
  for (const { args, label } of cases(valid)) {
    try {
      closeResult(await call(...args))
    } catch (e) {
      errors.push(checkRefusal(name, label, e))
    }
  }
  return errors
}
