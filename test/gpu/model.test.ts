/**
 * Training steps and KV-cache decoding on a GPU against the CPU (issue #13's test): tiny MoE, moe-small and
 * seed-wavelet-tiny, loss and every gradient at every step within the tolerances stated in model_child.js. Runs where
 * the CUDA-enabled addon is built and a GPU is usable; elsewhere one SKIPPED line.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { findCudaAddon } = require('./find_addon') as { findCudaAddon: () => { file: string; skip: string | null } };
const found = findCudaAddon();

type Report = { name: string; worstLoss: number; worstGrad: { ratio: number }; worstLogit: number };

if (found.skip) {
  test('GPU training against the CPU', () => {
    console.log(`SKIPPED GPU training comparison: ${found.skip}`);
  });
} else {
  let reports: Report[] = [];
  beforeAll(() => {
    const r = spawnSync(process.execPath, [path.join(__dirname, 'model_child.js')], {
      encoding: 'utf8',
      env: { ...process.env, WAVEMOE_ADDON: found.file },
      timeout: 600_000,
    });
    if (r.status !== 0) throw new Error(`model_child exited ${r.status}: ${r.stderr}`);
    reports = (JSON.parse(r.stdout) as { results: Report[] }).results;
  });
  test.each(['tiny-moe', 'moe-small', 'seed-wavelet-tiny'])('%s: losses, gradients and decode logits within tolerance', (name) => {
    const rep = reports.find((x) => x.name === name)!;
    expect({ loss: rep.worstLoss <= 1, grad: rep.worstGrad.ratio <= 1, logit: rep.worstLogit <= 1, rep }).toMatchObject({
      loss: true, grad: true, logit: true,
    });
  });
}
