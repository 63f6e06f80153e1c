// Bundles every script into one ESM file under dist/. Node 20 cannot run
// TypeScript, and a single pre-linked file keeps each stage's start-up close
// to `node -e 0` (no module resolution over node_modules on the hot path).
import { build } from 'esbuild';
import { readdirSync } from 'node:fs';

const entryPoints = ['scripts', 'bench']
  .flatMap((dir) => readdirSync(dir).filter((f) => f.endsWith('.mts')).map((f) => `${dir}/${f}`));

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
