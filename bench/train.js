#!/usr/bin/env node
'use strict';
// Training speed of moe-small and seed-wavelet-tiny against PyTorch, in the same run (issue 9).
// One step = zero grads, forward, cross-entropy (+ MoE auxiliary losses), backward, global-norm clip at 1.0, AdamW
// (lr 3e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices) on one fixed batch of random tokens, through
// the library's Trainer. Timed steps alternate between trainStepAsync (recorded and run off the main thread, what
// Trainer.run uses; its median gives tokens/s) and trainStep (on the calling thread), so the cost of recording is
// measured in the same run. Each model runs in a child process so that its peak memory is its own; then
// bench/pytorch/bench_train.py measures the same models, shapes and optimizer (when python3-torch is installed).
// Usage: npm run bench:train [-- --threads 2 --batch 8 --seq 256 --model all|moe-small|seed-wavelet-tiny --noTorch]
// Prints one line per model and, last, one JSON object.
const { spawnSync } = require('node:child_process');
const { median, parseArgs, runPytorch, slope } = require('./common');

const PRESETS = ['moe-small', 'seed-wavelet-tiny'];
const STEPS = { 'moe-small': [2, 6], 'seed-wavelet-tiny': [3, 20] }; // [warm-up, timed]

/** Times one model in this process; prints its result as one JSON line. */
async function child(o) {
  const { Transformer, Trainer, preset, ops } = require('../dist');
  ops.setNumThreads(o.threads);
  const model = new Transformer(preset(o.model));
  model.init(o.seed);
  const V = model.config.vocab_size;
  let state = (o.seed + 1) >>> 0;
  const token = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % V;
  };
  const seq = Int32Array.from({ length: o.batch * (o.seq + 1) }, token);
  const inputs = new Int32Array(o.batch * o.seq);
  const targets = new Int32Array(o.batch * o.seq);
  for (let b = 0; b < o.batch; b++) {
    inputs.set(seq.subarray(b * (o.seq + 1), b * (o.seq + 1) + o.seq), b * o.seq);
    targets.set(seq.subarray(b * (o.seq + 1) + 1, (b + 1) * (o.seq + 1)), b * o.seq);
  }
  const data = { batchSize: o.batch, seqLen: o.seq, batch: () => ({ inputs, targets }), evalBatches: function* () {} };
  const [warmup, timed] = STEPS[o.model];
  // Timed steps alternate recorded and sync ones: at least one of each, so both medians exist.
  const steps = Math.max(2, o.steps || timed);
  const trainer = new Trainer(model, data, { steps: 1000, lr: 3e-4, minLr: 3e-4, warmupSteps: 0, weightDecay: 0.1, gradClip: 1 });
  const times = [];
  const syncTimes = [];
  const losses = [];
  const live = [];
  for (let i = 0; i < warmup + steps; i++) {
    const recorded = i % 2 === 0;
    const t0 = performance.now();
    const r = recorded ? await trainer.trainStepAsync() : trainer.trainStep();
    const dt = performance.now() - t0;
    losses.push(Number(r.loss.toFixed(4)));
    if (i >= warmup) {
      (recorded ? times : syncTimes).push(dt);
      live.push(ops.allocStats().liveBytes);
    }
  }
  const stats = ops.allocStats();
  const med = median(times);
  const syncMed = median(syncTimes);
  const params = model.parameters().reduce((n, p) => n + (p.grad ? p.value.numel : 0), 0);
  console.log(
    JSON.stringify({
      model: o.model,
      tokens_per_s: (o.batch * o.seq) / (med / 1000),
      step_ms_median: med,
      step_ms_min: Math.min(...times),
      sync_step_ms_median: syncMed,
      recorded_vs_sync: syncMed / med,
      step_ms: times.map((t) => Number(t.toFixed(1))),
      tokens_per_step: o.batch * o.seq,
      warmup_steps: warmup,
      timed_steps: times.length,
      timed_sync_steps: syncTimes.length,
      params,
      loss_ce: losses,
      peak_native_mb: stats.peakBytes / 2 ** 20,
      live_native_mb: stats.liveBytes / 2 ** 20,
      // Native bytes alive after each timed step: flat (slope 0) means no growth from step to step.
      live_native_slope_bytes_per_step: slope(live.map((_, i) => i), live),
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
      threads: ops.numThreads(),
      isa: ops.isa(),
    }),
  );
  trainer.optimizer.dispose();
  model.dispose();
}

function main() {
  const o = parseArgs(process.argv.slice(2), { threads: 2, batch: 8, seq: 256, model: 'all', seed: 0, steps: 0, noTorch: false, child: false });
  if (o.child) {
    child(o).catch((err) => {
      console.error(err.message);
      process.exit(1);
    });
    return;
  }
  const models = o.model === 'all' ? PRESETS : [o.model];
  if (!models.every((m) => PRESETS.includes(m))) throw new Error(`--model must be all or one of ${PRESETS.join(', ')}`);
  const os = require('node:os');
  const loadStart = os.loadavg()[0];
  const ours = [];
  for (const model of models) {
    const args = [__filename, '--child', '--model', model, '--threads', String(o.threads), '--batch', String(o.batch), '--seq', String(o.seq), '--seed', String(o.seed)];
    if (o.steps) args.push('--steps', String(o.steps));
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`${model}: child exited with status ${r.status}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop());
    ours.push(res);
    console.log(
      `wavemoe train ${model.padEnd(18)} ${res.tokens_per_s.toFixed(1).padStart(9)} tokens/s  step ${res.step_ms_median.toFixed(1).padStart(8)} ms ` +
        `(median of ${res.timed_steps}, min ${res.step_ms_min.toFixed(1)})  peak native ${res.peak_native_mb.toFixed(0)} MB, RSS ${res.peak_rss_mb.toFixed(0)} MB  ` +
        `loss ${res.loss_ce[0]} -> ${res.loss_ce[res.loss_ce.length - 1]}; on the calling thread ${res.sync_step_ms_median.toFixed(1)} ms (recorded/sync speed ${res.recorded_vs_sync.toFixed(3)})`,
    );
  }
  let torch = { skipped: '--noTorch' };
  if (!o.noTorch) {
    const args = ['--threads', String(o.threads), '--batch', String(o.batch), '--seq', String(o.seq), '--seed', String(o.seed)];
    if (models.length === 1) args.push('--model', models[0]);
    if (o.steps) args.push('--steps', String(o.steps));
    torch = runPytorch('bench_train.py', args);
  }
  const byModel = new Map(Object.values(torch.models || {}).map((r) => [r.model, r]));
  const models_ = ours.map((r) => {
    const t = byModel.get(r.model);
    const ratio = t ? r.tokens_per_s / t.tokens_per_s : null;
    if (t) console.log(`${r.model}: wavemoe / PyTorch = ${ratio.toFixed(2)} (${r.tokens_per_s.toFixed(1)} vs ${t.tokens_per_s.toFixed(1)} tokens/s; peak RSS ${r.peak_rss_mb.toFixed(0)} vs ${t.peak_rss_mb.toFixed(0)} MB)`);
    return {
      model: r.model,
      wavemoe_tokens_per_s: r.tokens_per_s,
      pytorch_tokens_per_s: t ? t.tokens_per_s : null,
      ratio,
      wavemoe_peak_rss_mb: r.peak_rss_mb,
      wavemoe_peak_native_mb: r.peak_native_mb,
      wavemoe_live_native_slope_bytes_per_step: r.live_native_slope_bytes_per_step,
      wavemoe_recorded_vs_sync: r.recorded_vs_sync,
      pytorch_peak_rss_mb: t ? t.peak_rss_mb : null,
    };
  });
  if (torch.skipped) console.log(`PyTorch baseline skipped: ${torch.skipped}`);
  console.log(
    JSON.stringify({
      bench: 'train',
      threads: o.threads,
      batch: o.batch,
      seq_len: o.seq,
      loadavg_1m_start: loadStart,
      loadavg_1m_end: os.loadavg()[0],
      models: models_,
      wavemoe: ours,
      pytorch: torch,
    }),
  );
}

try {
  main();
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
