#!/usr/bin/env node
/**
 * Will a preset's training step fit a GPU? Measured on the CPU, where every tensor of a step is a native allocation
 * (ops.allocStats): one training step at two small sizes, each in its own process, gives the fixed memory (weights,
 * gradients, AdamW moments) and the memory per token of activations and scratch; both are then extrapolated to the
 * target batch. Attention is fused (no T x T matrix), so the step's memory is linear in the tokens: the two sizes
 * differ in both batch and length, and a third checks the line.
 *
 *   node bench/memory_fit.js [--preset moe-base] [--batch 16] [--seq-len 1024]
 *
 * The GPU stores the same tensors in float32 (bf16 is a matmul precision; storage stays float32), plus the caching
 * allocator's rounding (at most a quarter of a power of two per block) and cuBLAS's workspace: the estimate is
 * printed with and without that rounding. On a GPU, `npm run bench:gpu-train` measures the real peak. One JSON line last.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { parseArgs } = require('node:util');

const { values: o } = parseArgs({
  options: {
    preset: { type: 'string', default: 'moe-base' },
    batch: { type: 'string', default: '16' },
    'seq-len': { type: 'string', default: '1024' },
    child: { type: 'string' },
  },
});

if (o.child) {
  // One training step at batch x seq-len; prints the native bytes before and at the peak of the step.
  const wm = require(path.join(__dirname, '..', 'dist', 'index.js'));
  const [B, T] = o.child.split('x').map(Number);
  const config = wm.preset(o.preset);
  const model = new wm.Transformer(config);
  model.init(1);
  const tokens = Int32Array.from({ length: Math.max(8 * B * (T + 1), 4096) }, (_, i) => (i * 7919 + (i >> 3) * 31) % config.vocab_size);
  const data = wm.languageModelSource(tokens, tokens.subarray(0, 2 * B * (T + 1)), B, T, 1);
  const trainer = new wm.Trainer(model, data, { steps: 2, lr: 1e-4, warmupSteps: 0, evalBatches: 1 });
  const before = wm.ops.allocStats().liveBytes; // weights, gradients and moments (allocated with the trainer)
  const r = trainer.trainStep();
  process.stdout.write(JSON.stringify({ tokens: B * T, before, peak: wm.ops.allocStats().peakBytes, loss: r.loss }) + '\n');
  process.exit(0);
}

function measure(B, T) {
  const r = spawnSync(process.execPath, [__filename, '--preset', o.preset, '--child', `${B}x${T}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`step at ${B}x${T} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const GB = 1e9;
const a = measure(1, 64), b = measure(4, 64), c = measure(1, 256);
const perToken = (b.peak - a.peak) / (b.tokens - a.tokens);
const fixed = a.before;
const intercept = a.peak - a.before - perToken * a.tokens;
const predictedC = a.peak + perToken * (c.tokens - a.tokens);
const target = Number(o.batch) * Number(o['seq-len']);
const estimate = fixed + intercept + perToken * target;
const rounded = estimate * 1.25; // the allocator's worst-case size-class rounding
console.log(`${o.preset}: weights, gradients and AdamW moments ${(fixed / GB).toFixed(2)} GB; activations and scratch ` +
  `${(perToken / 1e6).toFixed(3)} MB per token (from 1x64 and 4x64; 1x256 measured ${(c.peak / GB).toFixed(3)} GB, the line predicts ` +
  `${(predictedC / GB).toFixed(3)} GB)`);
console.log(`training step at ${o.batch} x ${o['seq-len']} (${target} tokens): ${(estimate / GB).toFixed(1)} GB ` +
  `(${(rounded / GB).toFixed(1)} GB with the GPU allocator's worst-case rounding)`);
console.log(JSON.stringify({
  bench: 'memory_fit', preset: o.preset, batch: Number(o.batch), seq_len: Number(o['seq-len']),
  fixed_bytes: fixed, bytes_per_token: perToken, intercept_bytes: intercept,
  line_check: { tokens: c.tokens, measured_peak: c.peak, predicted_peak: predictedC },
  estimate_bytes: estimate, estimate_with_rounding_bytes: rounded,
}));
