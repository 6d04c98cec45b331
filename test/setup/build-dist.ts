// Child processes in other namespaces run the compiled package (they cannot
// load TypeScript), so the suite compiles lib/ to dist/ once before it runs,
// and the tenant fixtures (test/fixtures/tenant/*.ts) against it.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'

export default function setup(): void {
  const root = join(__dirname, '..', '..')
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' })
  execFileSync(process.execPath, [join(root, 'test/setup/build-fixtures.mjs')], { stdio: 'inherit' })
}
