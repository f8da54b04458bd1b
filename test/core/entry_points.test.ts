// The package's entry points: `require('wavemoe')` and `import { ... } from 'wavemoe'` give the same API (ESM sees
// the CommonJS build's named exports), through the `exports` map of package.json.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../..');
const names = ['Tensor', 'ops', 'runAsync', 'Transformer', 'preset', 'Trainer', 'generate', 'streamText', 'Tokenizer', 'loadModel'];

function run(args: string[]): string {
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.trim();
}

test('CommonJS require and ESM import of the package name expose the same named exports', () => {
  const list = JSON.stringify(names);
  const cjs = run(['-e', `const w = require('wavemoe'); console.log(${list}.map((n) => n + ':' + typeof w[n]).join(','))`]);
  const esm = run([
    '--input-type=module',
    '-e',
    `import * as w from 'wavemoe'; import { Tensor } from 'wavemoe'; const t = Tensor.zeros([2, 3]); if (t.numel !== 6) throw new Error('bad tensor'); console.log(${list}.map((n) => n + ':' + typeof w[n]).join(','))`,
  ]);
  expect(esm).toBe(cjs);
  expect(cjs).not.toMatch(/undefined/);
});
