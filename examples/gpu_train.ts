/**
 * GPU training from TypeScript: moe-small on the embedded Moby-Dick corpus, then moe-base, on a CUDA GPU, each with
 * the progress bar and logs of `wavemoe train` (this script runs that command for each model, so the logs are the
 * CLI's own), then its peak GPU memory.
 *
 *   npm run build:cuda                                    # once: the CUDA-enabled addon (needs nvcc)
 *   npm run example:gpu-train                              # moe-small 300 steps, then moe-base 100, on cuda:0
 *   npm run example:gpu-train -- --device cuda:1 --small-steps 500 --base-steps 200
 *
 * It loads build-cuda/Release/wavemoe.node unless WAVEMOE_ADDON names another addon. Each run writes checkpoints,
 * metrics.jsonl and loss.svg under examples-out/<preset>/. Without a GPU or a CUDA build it stops at once, saying why.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const root = path.resolve(__dirname, '..', '..'); // compiled to build/examples/
const cli = path.join(root, 'bin', 'wavemoe.js');

function main(): number {
  const { values } = parseArgs({
    options: {
      device: { type: 'string', default: 'cuda' },
      'small-steps': { type: 'string', default: '300' },
      'base-steps': { type: 'string', default: '100' },
      out: { type: 'string', default: 'examples-out' },
    },
  });
  const addon = process.env.WAVEMOE_ADDON ?? path.join(root, 'build-cuda', 'Release', 'wavemoe.node');
  if (!fs.existsSync(addon)) {
    process.stderr.write(`gpu_train: no CUDA-enabled addon at ${addon}: run \`npm run build:cuda\` first (needs nvcc)\n`);
    return 1;
  }
  const env = { ...process.env, WAVEMOE_ADDON: addon };
  const runs = [
    // moe-small: 16 × 256 tokens per step; moe-base at the 16 × 1024 (fits one 80 GB GPU in float32).
    { preset: 'moe-small', steps: values['small-steps']!, batch: '16', seqLen: '256' },
    { preset: 'moe-base', steps: values['base-steps']!, batch: '16', seqLen: '1024' },
  ];
  spawnSync(process.execPath, [cli, 'info'], { stdio: 'inherit', env });
  for (const r of runs) {
    process.stderr.write(`\n== ${r.preset}: ${r.steps} steps at batch ${r.batch} × ${r.seqLen} on ${values.device}\n`);
    const args = ['train', '--preset', r.preset, '--device', values.device!, '--steps', r.steps, '--batch', r.batch,
      '--seq-len', r.seqLen, '--eval-every', '50', '--save-every', '0', '--out', path.join(values.out!, r.preset)];
    const result = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit', env });
    if (result.status !== 0) return result.status ?? 1;
  }
  return 0;
}

process.exitCode = main();
