// Tenant-side test programs are typed TypeScript files in
// test/fixtures/tenant/ (checked by `npm run typecheck` with the rest of the
// tests). Children in other namespaces run plain Node, so each file is
// transpiled on its own (no second type check, no copy of lib/) to
// .cache/fixtures/tenant/<name>.js, and its imports of lib/ are pointed at
// the compiled package in dist/, which build-dist.ts has just made: the
// tenant then runs bpfkit exactly as users install it. The output sits as
// deep under the checkout as the sources, so '../../../lib/' becomes
// '../../../dist/'. Run by the suite's global setup and by test:vm (whose
// guests cannot afford the compile).
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export function buildFixtures(root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')) {
  const ts = createRequire(join(root, 'package.json'))('typescript')
  const from = join(root, 'test/fixtures/tenant')
  const to = join(root, '.cache/fixtures/tenant')
  mkdirSync(to, { recursive: true })
  for (const name of readdirSync(from).filter((n) => n.endsWith('.ts'))) {
    const source = readFileSync(join(from, name), 'utf8')
    const { outputText } = ts.transpileModule(source, {
      fileName: name,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    })
    const js = outputText.replace(/require\("\.\.\/\.\.\/\.\.\/lib\//g, 'require("../../../dist/')
    // Sibling fixtures ('./x.js') and the package are there; any other relative path is not.
    for (const [, spec] of js.matchAll(/require\("(\.[^"]*)"\)/g)) {
      if (!spec.startsWith('./') && !spec.startsWith('../../../dist/')) {
        throw new Error(`test/fixtures/tenant/${name}: imports ${spec}; a tenant fixture imports only ../../../lib/... and sibling fixtures`)
      }
    }
    writeFileSync(join(to, name.replace(/\.ts$/, '.js')), js)
  }
  return to
}

if (process.argv[1] === fileURLToPath(import.meta.url)) buildFixtures()
