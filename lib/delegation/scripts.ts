// Where bpfkit's own helper scripts are: next to this file in the built
// package (dist/), or under dist/ when lib/ runs from source (tests).
import { existsSync } from 'node:fs'
import { join } from 'node:path'

export function builtScript(relative: string): string {
  const here = join(__dirname, '..', relative)
  if (!__filename.endsWith('.ts')) return here
  const built = join(__dirname, '..', '..', 'dist', relative)
  if (!existsSync(built)) throw new Error(`${built} is missing: build the package first (npm run build:ts)`)
  return built
}
