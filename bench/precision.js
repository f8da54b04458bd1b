#!/usr/bin/env node
'use strict';
// The loss of a bf16 (and tf32) training run against the fp32 run: moe-small on Moby-Dick, same seed and batches,
// each precision in turn (ops.setMatmulPrecision through trainRun's `precision`). On the CPU the reduced precisions
// are emulated (same numbers as the GPU's tensor-core paths up to summation order; no speed-up), so this measures the
// numerical gap, not speed.
// Usage: npm run bench:precision [-- --steps 150 --batch 8 --seqLen 64 --evalEvery 50 --threads 2]
// Prints each run's validation losses and the largest relative gap to fp32, then one JSON object.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { trainRun } = require('../dist');
const { parseIntArgs } = require('./common');

async function curve(o, precision) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `wavemoe-bench-precision-${precision}-`));
  const points = [];
  const train = [];
  try {
    const r = await trainRun({
      preset: 'moe-small', outDir: out, steps: o.steps, batchSize: o.batch, seqLen: o.seqLen, lr: 1e-3,
      threads: o.threads, seed: 0, evalEvery: o.evalEvery, saveEvery: 0, precision,
      onStep: (m) => {
        train.push(m.loss);
        if (m.valLoss !== undefined) points.push({ step: m.step, valLoss: m.valLoss });
      },
    });
    r.model.dispose();
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  console.log(`${precision}: validation ${points.map((p) => `${p.step}:${p.valLoss.toFixed(4)}`).join('  ')}`);
  return { points, train };
}

async function main() {
  const o = parseIntArgs(process.argv.slice(2), { steps: 150, batch: 8, seqLen: 64, evalEvery: 50, threads: 2 }, 0);
  const runs = {};
  for (const p of ['fp32', 'bf16', 'tf32']) runs[p] = await curve(o, p);
  const gap = (p) => {
    const val = runs[p].points.map((x, i) => Math.abs(x.valLoss - runs.fp32.points[i].valLoss) / runs.fp32.points[i].valLoss);
    const train = runs[p].train.map((l, i) => Math.abs(l - runs.fp32.train[i]) / runs.fp32.train[i]);
    return { maxValidationGap: Math.max(...val), maxTrainGap: Math.max(...train), finalValidation: runs[p].points.at(-1).valLoss };
  };
  const summary = { bench: 'precision', preset: 'moe-small', ...o, fp32: { finalValidation: runs.fp32.points.at(-1).valLoss },
    bf16: gap('bf16'), tf32: gap('tf32') };
  console.log(`bf16 vs fp32: largest relative gap ${(100 * summary.bf16.maxValidationGap).toFixed(3)}% (validation), ` +
    `${(100 * summary.bf16.maxTrainGap).toFixed(3)}% (training loss, per step)`);
  console.log(JSON.stringify(summary));
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
