#!/usr/bin/env node
/**
 * Training and decoding on a real GPU against the CPU, for test/gpu/model.test.ts and test/gpu/run.js: runs in a
 * child process that loads the CUDA-enabled addon (WAVEMOE_ADDON) under dist/, builds each model twice from the same
 * seed (one moved to cuda:0), trains both for a few steps and compares, at every step, the loss and every gradient;
 * then compares the logits of KV-cache decoding. Prints one JSON object: per model the worst errors, each as a
 * fraction of its tolerance (<= 1 passes), so the caller needs no numbers of its own.
 *
 * Tolerances (float32): a loss within 1e-4 relative; a gradient tensor within 2e-3 · max|g_cpu| + 1e-7 per element
 * (the GPU sums in other orders, and after the first update the weights differ by AdamW-amplified roundoff); decode
 * logits within 1e-3 · max|logit| after 6 tokens. MoE routing can flip on a near-tie: the worst token shows as a
 * large gradient error, which is why the report names the step, tensor and index. bf16 (matmul precision): the
 * GPU's bf16 run against the CPU's fp32 run, every step's loss within 2% (what the CPU emulation of bf16 measured
 * on moe-small: bench/precision.js).
 */
'use strict';
const wm = require('../../dist/index.js');

const TOL = { lossRel: 1e-4, gradRel: 2e-3, gradAbs: 1e-7, logitRel: 1e-3, bf16LossRel: 0.02 };

function worstGrad(cpu, gpu) {
  let worst = { ratio: 0 };
  cpu.parameters().forEach((p, i) => {
    if (!p.grad) return;
    const a = p.grad.toArray(), b = gpu.parameters()[i].grad.toArray();
    let max = 0;
    for (const x of a) max = Math.max(max, Math.abs(x));
    const tol = TOL.gradRel * max + TOL.gradAbs;
    for (let j = 0; j < a.length; j++) {
      const r = Math.abs(a[j] - b[j]) / tol;
      if (!(r <= worst.ratio)) worst = { ratio: r, tensor: p.name, index: j, cpu: a[j], gpu: b[j] };
    }
  });
  return worst;
}

function compareModel(name, config, batch, seqLen, steps) {
  const tokens = Int32Array.from({ length: 20000 }, (_, i) => (i * 7919 + (i >> 3) * 31) % config.vocab_size);
  const source = () => wm.languageModelSource(tokens, tokens.subarray(0, 4000), batch, seqLen, 1);
  const cpu = new wm.Transformer(config), gpu = new wm.Transformer(config);
  cpu.init(7);
  gpu.init(7);
  gpu.to('cuda:0');
  const opts = { steps, lr: 1e-3, warmupSteps: 0, evalBatches: 1 };
  const a = new wm.Trainer(cpu, source(), opts), b = new wm.Trainer(gpu, source(), opts);
  const report = { name, steps: [], worstLoss: 0, worstGrad: { ratio: 0 } };
  for (let s = 0; s < steps; s++) {
    const x = a.trainStep(), y = b.trainStep();
    const lossRatio = Math.abs(x.loss - y.loss) / (TOL.lossRel * Math.abs(x.loss));
    const g = worstGrad(cpu, gpu);
    report.steps.push({ step: s + 1, cpuLoss: x.loss, gpuLoss: y.loss, lossRatio, gradRatio: g.ratio });
    report.worstLoss = Math.max(report.worstLoss, lossRatio);
    if (g.ratio > report.worstGrad.ratio) report.worstGrad = { ...g, step: s + 1 };
  }
  // KV-cache decoding: logits of each step, same tokens fed to both (the CPU's greedy choice)
  const stA = cpu.startDecode(1), stB = gpu.startDecode(1);
  let id = 5, worstLogit = 0;
  for (let t = 0; t < 6; t++) {
    const ia = wm.Tensor.from(Int32Array.of(id), [1, 1]), ib = ia.to('cuda:0');
    const la = cpu.decode(ia, stA).toArray(), lb = gpu.decode(ib, stB).toArray();
    let max = 0, best = 0;
    for (let j = 0; j < la.length; j++) {
      max = Math.max(max, Math.abs(la[j]));
      if (la[j] > la[best]) best = j;
    }
    for (let j = 0; j < la.length; j++) worstLogit = Math.max(worstLogit, Math.abs(la[j] - lb[j]) / (TOL.logitRel * max));
    id = best;
    ia.dispose();
    ib.dispose();
  }
  stA.dispose();
  stB.dispose();
  report.worstLogit = worstLogit;
  report.peakGpuBytes = wm.ops.fakeCuda ? 0 : wm.ops.cudaMemoryStats('cuda:0').peakBytesInUse;
  for (const t of [a, b, cpu, gpu]) t.dispose();
  return report;
}

// Tiny MoE trained in bf16 on the GPU and in fp32 on the CPU: the worst per-step loss gap as a fraction of its tolerance.
function compareBf16(config, batch, seqLen, steps) {
  const tokens = Int32Array.from({ length: 20000 }, (_, i) => (i * 7919 + (i >> 3) * 31) % config.vocab_size);
  const source = () => wm.languageModelSource(tokens, tokens.subarray(0, 4000), batch, seqLen, 1);
  const cpu = new wm.Transformer(config), gpu = new wm.Transformer(config);
  cpu.init(9);
  gpu.init(9);
  gpu.to('cuda:0');
  const opts = { steps, lr: 1e-3, warmupSteps: 0, evalBatches: 1 };
  const a = new wm.Trainer(cpu, source(), opts), b = new wm.Trainer(gpu, source(), opts);
  let worst = 0;
  const losses = [];
  for (let s = 0; s < steps; s++) {
    wm.ops.setMatmulPrecision('fp32');
    const x = a.trainStep();
    wm.ops.setMatmulPrecision('bf16');
    const y = b.trainStep();
    losses.push([x.loss, y.loss]);
    worst = Math.max(worst, Math.abs(x.loss - y.loss) / (TOL.bf16LossRel * x.loss));
  }
  wm.ops.setMatmulPrecision('fp32');
  for (const t of [a, b, cpu, gpu]) t.dispose();
  return { name: 'tiny-moe-bf16', worstLoss: worst, worstGrad: { ratio: 0 }, worstLogit: 0, steps: losses, peakGpuBytes: 0 };
}

// Host waits of recorded (async) training steps on the GPU, gradient accumulation 2: each step should wait once, at
// its end, where its loss and gradient norm are read (issue #13). null on the fake device (nothing to count).
async function trainingWaits(config) {
  if (wm.ops.fakeCuda) return null;
  const tokens = Int32Array.from({ length: 20000 }, (_, i) => (i * 7919 + (i >> 3) * 31) % config.vocab_size);
  const model = new wm.Transformer(config);
  model.init(3);
  model.to('cuda:0');
  const trainer = new wm.Trainer(model, wm.languageModelSource(tokens, tokens.subarray(0, 4000), 4, 33, 1),
    { steps: 10, lr: 1e-3, warmupSteps: 0, gradAccum: 2, evalBatches: 1 });
  const perStep = [];
  for (let s = 0; s < 4; s++) {
    const before = wm.ops.cudaMemoryStats('cuda:0').hostWaits;
    const r = await trainer.trainStepAsync();
    if (!Number.isFinite(r.loss) || !Number.isFinite(r.gradNorm)) throw new Error(`step ${s + 1}: loss ${r.loss}, norm ${r.gradNorm}`);
    if (s > 0) perStep.push(wm.ops.cudaMemoryStats('cuda:0').hostWaits - before); // step 1 warms the caches
  }
  trainer.dispose();
  model.dispose();
  return { perStep, max: Math.max(...perStep) };
}

async function main() {
  // WAVEMOE_FAKE_CUDA=cpu-kernels runs this harness on the fake device (CPU kernels, exact): a check of the harness
  // itself, so that a GPU session does not find its bugs (test/gpu/model.test.ts does that on every run).
  if (!wm.ops.fakeCuda && (!wm.ops.cuda || !wm.ops.cudaInfo().available)) {
    process.stdout.write(JSON.stringify({ skipped: wm.ops.cudaInfo().reason ?? 'no CUDA build' }) + '\n');
    return;
  }
  const tiny = wm.validateConfig({ vocab_size: 211, d_model: 64, n_layers: 2, n_heads: 4, d_ff: 96, max_seq_len: 64, ffn: 'moe', n_experts: 4, top_k: 2 });
  const results = [
    compareModel('tiny-moe', tiny, 4, 33, 4),
    compareModel('moe-small', wm.preset('moe-small'), 2, 64, 3),
    compareModel('seed-wavelet-tiny', wm.preset('seed-wavelet-tiny'), 4, 64, 3),
    compareBf16(tiny, 4, 33, 8),
  ];
  const waits = await trainingWaits(tiny);
  process.stdout.write(JSON.stringify({ results, waits }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
