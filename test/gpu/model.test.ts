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

// The harness itself, on the fake device with the CPU kernels (exact): every comparison must be 0 or, for bf16, the
// rounding's small gap; so a bug in the harness shows here, not in a rare GPU session.
test('the comparison harness runs on the fake device (CPU kernels) and finds the CPU equal to itself', () => {
  const r = spawnSync(process.execPath, [path.join(__dirname, 'model_child.js')], {
    encoding: 'utf8',
    env: { ...process.env, WAVEMOE_FAKE_CUDA: 'cpu-kernels', WAVEMOE_ADDON: '' },
    timeout: 600_000,
  });
  if (r.status !== 0) throw new Error(`model_child exited ${r.status}: ${r.stderr}`);
  const reports = (JSON.parse(r.stdout) as { results: Report[] }).results;
  expect(reports.map((x) => x.name)).toEqual(['tiny-moe', 'moe-small', 'seed-wavelet-tiny', 'tiny-moe-bf16']);
  for (const rep of reports.slice(0, 3)) expect([rep.name, rep.worstLoss, rep.worstGrad.ratio, rep.worstLogit]).toEqual([rep.name, 0, 0, 0]);
  const bf16 = reports[3]!;
  expect(bf16.worstLoss).toBeGreaterThan(0); // bf16 really ran
  expect(bf16.worstLoss).toBeLessThanOrEqual(1);
});

if (found.skip) {
  test('GPU training against the CPU', () => {
    console.log(`SKIPPED GPU training comparison: ${found.skip}`);
  });
} else {
  let reports: Report[] = [];
  let waits: { perStep: number[]; max: number } | null = null;
  beforeAll(() => {
    const r = spawnSync(process.execPath, [path.join(__dirname, 'model_child.js')], {
      encoding: 'utf8',
      env: { ...process.env, WAVEMOE_ADDON: found.file },
      timeout: 600_000,
    });
    if (r.status !== 0) throw new Error(`model_child exited ${r.status}: ${r.stderr}`);
    ({ results: reports, waits } = JSON.parse(r.stdout) as { results: Report[]; waits: typeof waits });
  });
  test('a recorded training step waits for the GPU at most once (where its loss is read)', () => {
    expect(waits).not.toBeNull();
    expect(waits!.max).toBeLessThanOrEqual(1);
  });
  test.each(['tiny-moe', 'moe-small', 'seed-wavelet-tiny', 'tiny-moe-bf16'])('%s: losses, gradients and decode logits within tolerance', (name) => {
    const rep = reports.find((x) => x.name === name)!;
    expect({ loss: rep.worstLoss <= 1, grad: rep.worstGrad.ratio <= 1, logit: rep.worstLogit <= 1, rep }).toMatchObject({
      loss: true, grad: true, logit: true,
    });
  });
}
