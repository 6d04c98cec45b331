// Walks a public entry point's arguments with wrong values (null, undefined,
// wrong types), one position at a time, the others valid. Every refusal must
// be an Error of bpfkit's own making: never a message from the JavaScript
// engine ("Cannot read properties of null", "x is not iterable"), which names
// neither the argument nor the call.
import { expect } from 'vitest'

export const jsInternal = /Cannot read prop|is not iterable|is not a function|Cannot convert|Cannot destructure|is not a constructor|undefined is not|null is not/

export const wrongValues: readonly unknown[] = [null, undefined, 'x', -1, 1.5, {}, [], () => 0, 1n, [null]]

// What a call accepted and made (a map, a token, an fd) is closed at once.
function closeResult(r: unknown): void {
  if (r !== null && typeof r === 'object' && typeof (r as { close?: unknown }).close === 'function') (r as { close(): void }).close()
}

/** Calls `call` with each wrong value in each position; returns the errors thrown, for more checks. */
export function walkArguments(name: string, call: (...args: unknown[]) => unknown, valid: readonly unknown[]): Error[] {
  const errors: Error[] = []
  for (let i = 0; i < valid.length; i++) {
    for (const bad of wrongValues) {
      const args = [...valid]
      args[i] = bad
      try {
        closeResult(call(...args))
      } catch (e) {
        expect(e, `${name} argument ${i} = ${String(bad)}`).toBeInstanceOf(Error)
        expect((e as Error).message, `${name} argument ${i} = ${String(bad)}`).not.toMatch(jsInternal)
        errors.push(e as Error)
      }
    }
  }
  return errors
}

/** Async entry points: the same walk, awaiting each call (bounded, so a call that waits forever fails the walk). */
export async function walkArgumentsAsync(name: string, call: (...args: unknown[]) => Promise<unknown>, valid: readonly unknown[]): Promise<Error[]> {
  const errors: Error[] = []
  for (let i = 0; i < valid.length; i++) {
    for (const bad of wrongValues) {
      const args = [...valid]
      args[i] = bad
      try {
        closeResult(await call(...args))
      } catch (e) {
        expect(e, `${name} argument ${i} = ${String(bad)}`).toBeInstanceOf(Error)
        expect((e as Error).message, `${name} argument ${i} = ${String(bad)}`).not.toMatch(jsInternal)
        errors.push(e as Error)
      }
    }
  }
  return errors
}
