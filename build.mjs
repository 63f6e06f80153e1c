// Bundles every script into one ESM file under dist/. Node 20 cannot run
// TypeScript, and a single pre-linked file keeps each stage's start-up close
// to `node -e 0` (no module resolution over node_modules on the hot path).
import { build } from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';

// dist/<name>.mjs for every scripts/<name>.mts and bench/<name>.mts.
const entryPoints = Object.fromEntries(['scripts', 'bench'].flatMap((dir) => readdirSync(dir)
  .filter((file) => file.endsWith('.mts'))
  .map((file) => [file.replace(/\.mts$/, ''), `${dir}/${file}`])));

rmSync('dist', { recursive: true, force: true });

await build({
  entryPoints,
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunks/[name]-[hash]',
  // Some bundled dependencies are CommonJS and call require() for node builtins.
  banner: { js: "import { createRequire as __nrCreateRequire } from 'node:module'; const require = __nrCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
