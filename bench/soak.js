#!/usr/bin/env node
'use strict';
// Soak test (issue 14): does memory stay flat over many training steps and many generations?
// Phase 1 trains a tiny MoE decoder for --steps optimizer steps on random-token batches from languageModelSource,
// alternating Trainer.trainStep (on this thread) and, where the Trainer has it, trainStepAsync (recorded and run on
// a background thread, as Trainer.run does), with an evaluation (evaluate / evaluateAsync) every --every steps.
// Phase 2 runs --generations short generations over a tiny MoE decoder, rotating through: pipelined sampling (generateIds, batch 1), greedy with a repetition penalty
// (batch 2, not pipelined), one aborted through an AbortSignal after its first token, one abandoned by `break`,
// a hand-driven decode whose KV caches start at 2 positions and grow (startDecode + decode), and, with the tokenizer
// (unless --noText), streamText over a second tiny model with the GPT-NeoX vocabulary, aborted half of the time.
// Every --every operations (after a forced GC) it prints resident memory (rss, and rss less V8's resident heap),
// V8's heap used and committed, external and arrayBuffers bytes, and the native allocator's live bytes and
// allocations (ops.allocStats). At the end: the least-squares slope of each, in bytes (or allocations) per step /
// generation, over the second half of each phase (after warm-up), and a verdict per phase: flat, or not flat (some
// slope above its tolerance, listed in the JSON; see TOLERANCE for why raw rss is reported but not judged).
// Usage: npm run bench:soak [-- --steps 10000 --generations 10000 --every 500 --threads 1 --noText]
// Prints a table per phase and, last, one JSON object.
const v8 = require('node:v8');
const vm = require('node:vm');
const os = require('node:os');
const { parseArgs, slope } = require('./common');

// Tolerances, per operation, over the second half. Native tensor memory must not move at all once warm; resident
// memory may drift by allocator noise.
const TOLERANCE = {
  native_live_bytes: 1, // bytes per op
  native_live_allocations: 0.001, // allocations per op (one per 1000 ops)
  external_bytes: 16,
  array_buffers_bytes: 16,
  heap_used_bytes: 64,
  // Resident memory outside V8's heap (rss less the heap's resident pages): the addon, malloc, libuv. Raw rss also
  // counts V8's young generation, which V8 grows in steps (up to --max-semi-space-size, 16 MiB per semi-space) while
  // allocation is heavy: raw rss rises in steps of a few MiB long after warm-up with nothing leaking (with node
  // --max-semi-space-size=1 it is flat), so it is reported but not judged. Outside the heap, glibc keeps freed pages
  // (fragmentation, per-thread arenas of the background threads): a slope of a few hundred bytes per generation with
  // nothing leaking (heaptrack: the same bytes leaked after 3000 and 9000 generations; gdb `call malloc_trim(0)` at
  // the end of 12000 generations gave back 6 MiB, more than they had grown). Tensor memory is judged exactly by the
  // native counters; this catches other native leaks of about 2 KiB per operation or more (smaller ones: heaptrack).
  rss_outside_v8_heap_bytes: 2048,
};
const REPORTED = ['rss_bytes', 'heap_total_bytes'];

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc'); // a real full GC, so samples do not depend on when V8 collects
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Collects garbage (and lets N-API finalizers, which run after GC, free their native memory), then samples. */
async function sample(lib, at) {
  for (let i = 0; i < 2; i++) {
    gc();
    await tick();
  }
  const m = process.memoryUsage();
  const heapResident = v8.getHeapStatistics().total_physical_size;
  const s = lib.ops.allocStats();
  return {
    at,
    rss_bytes: m.rss,
    heap_total_bytes: m.heapTotal,
    rss_outside_v8_heap_bytes: m.rss - heapResident,
    heap_used_bytes: m.heapUsed,
    external_bytes: m.external,
    array_buffers_bytes: m.arrayBuffers,
    native_live_bytes: s.liveBytes,
    native_live_allocations: s.liveAllocations,
  };
}

const MB = 2 ** 20;
function printRow(kind, r, seconds) {
  console.log(
    `${kind} ${String(r.at).padStart(6)}  rss ${(r.rss_bytes / MB).toFixed(1).padStart(6)} MB (outside V8 heap ${(r.rss_outside_v8_heap_bytes / MB).toFixed(1).padStart(6)})  ` +
      `heap ${(r.heap_used_bytes / MB).toFixed(2).padStart(6)} of ${(r.heap_total_bytes / MB).toFixed(1).padStart(5)} MB  ` +
      `external ${(r.external_bytes / MB).toFixed(3).padStart(7)} MB  arrayBuffers ${(r.array_buffers_bytes / MB).toFixed(3).padStart(7)} MB  ` +
      `native ${String(r.native_live_bytes).padStart(9)} B in ${String(r.native_live_allocations).padStart(4)} allocations  ${seconds.toFixed(1).padStart(6)} s`,
  );
}

/** Slopes of every series over the samples of the second half (at >= total / 2), and the verdict. */
function analyse(samples, total) {
  const half = samples.filter((s) => s.at >= total / 2);
  const xs = half.map((s) => s.at);
  const slopes = {};
  const over = [];
  for (const key of [...Object.keys(TOLERANCE), ...REPORTED]) {
    const k = slope(xs, half.map((s) => s[key]));
    slopes[key] = k;
    if (key in TOLERANCE && k > TOLERANCE[key]) over.push(key);
  }
  return { samples_in_fit: half.length, slopes_per_op: slopes, flat: half.length >= 2 && over.length === 0, over_tolerance: over };
}

function printVerdict(kind, a, unit) {
  const s = a.slopes_per_op;
  console.log(
    `${kind}: slopes over the second half (${a.samples_in_fit} samples), per ${unit}: rss ${s.rss_bytes.toFixed(2)} B (outside V8 heap ${s.rss_outside_v8_heap_bytes.toFixed(2)} B), ` +
      `heap used ${s.heap_used_bytes.toFixed(2)} B (of committed ${s.heap_total_bytes.toFixed(2)} B), ` +
      `external ${s.external_bytes.toFixed(3)} B, arrayBuffers ${s.array_buffers_bytes.toFixed(3)} B, native ${s.native_live_bytes.toFixed(3)} B, ` +
      `${s.native_live_allocations.toFixed(5)} allocations -> ${a.flat ? 'FLAT' : `NOT FLAT (${a.over_tolerance.join(', ') || 'too few samples'})`}`,
  );
}

/** Deterministic pseudo-random integers in [0, n). */
function lcg(seed) {
  let state = seed >>> 0;
  return (n) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % n;
  };
}

async function soakTraining(lib, o) {
  const { Transformer, Trainer, validateConfig, languageModelSource } = lib;
  const config = validateConfig({ vocab_size: 64, d_model: 32, n_layers: 2, n_heads: 2, d_ff: 32, max_seq_len: 32, ffn: 'moe', n_experts: 4, top_k: 2, ffn_bias: true, router_bias: true });
  const model = new Transformer(config);
  model.init(o.seed);
  const rand = lcg(o.seed + 1);
  const tokens = Int32Array.from({ length: 20000 }, () => rand(config.vocab_size));
  const source = languageModelSource(tokens.subarray(0, 16000), tokens.subarray(16000), 4, 16, o.seed);
  const trainer = new Trainer(model, source, { steps: o.steps, lr: 1e-3, warmupSteps: 10, evalBatches: 2 });
  const samples = [await sample(lib, 0)];
  const t0 = performance.now();
  printRow('train', samples[0], 0);
  let loss = { first: NaN, last: NaN };
  const async = typeof trainer.trainStepAsync === 'function';
  for (let i = 1; i <= o.steps; i++) {
    const r = async && i % 2 === 0 ? await trainer.trainStepAsync() : trainer.trainStep();
    if (i === 1) loss.first = r.loss;
    loss.last = r.loss;
    if (!Number.isFinite(r.loss)) throw new Error(`training step ${i}: loss ${r.loss}`);
    if (i % o.every === 0 || i === o.steps) {
      if (async && (i / o.every) % 2 === 0) await trainer.evaluateAsync();
      else trainer.evaluate();
      const s = await sample(lib, i);
      samples.push(s);
      printRow('train', s, (performance.now() - t0) / 1000);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  trainer.dispose();
  model.dispose();
  return { samples, seconds, loss, config, async };
}

function isAbort(err) {
  return err instanceof Error && err.name === 'AbortError';
}

async function soakGeneration(lib, o) {
  const { Transformer, Tensor, validateConfig, generateIds, streamText, Tokenizer } = lib;
  const config = validateConfig({ vocab_size: 64, d_model: 32, n_layers: 2, n_heads: 2, d_ff: 32, max_seq_len: 48, ffn: 'moe', n_experts: 4, top_k: 2 });
  const model = new Transformer(config);
  model.init(o.seed);
  let text = null;
  if (!o.noText) {
    const tokenizer = await Tokenizer.load({});
    const textModel = new Transformer(validateConfig({ vocab_size: 50254, d_model: 16, n_layers: 1, n_heads: 2, d_ff: 32, max_seq_len: 48, ffn: 'moe', n_experts: 2, top_k: 1 }));
    textModel.init(o.seed);
    text = { tokenizer, model: textModel };
  }
  const rand = lcg(o.seed + 2);
  const prompt = (batch, T) => Int32Array.from({ length: batch * T }, () => rand(config.vocab_size));
  const counts = { sampled: 0, penalty: 0, aborted: 0, abandoned: 0, manual_kv_growth: 0, text: 0, text_aborted: 0 };
  let tokens = 0;
  const KINDS = text ? 6 : 5;

  const one = async (g) => {
    const kind = g % KINDS;
    if (kind === 0) {
      // Pipelined sampling, batch 1, prompt of 1..8 tokens.
      for await (const step of generateIds(model, prompt(1, 1 + rand(8)), 1, { maxNewTokens: 4, temperature: 1, topK: 10, topP: 0.9, seed: g })) tokens += step.length;
      counts.sampled++;
    } else if (kind === 1) {
      // Greedy with a repetition penalty: not pipelined, the history tensor is refreshed every step.
      for await (const step of generateIds(model, prompt(2, 3), 2, { maxNewTokens: 4, temperature: 0, repetitionPenalty: 1.3 })) tokens += step.length;
      counts.penalty++;
    } else if (kind === 2) {
      // Aborted after the first token: the generator must free its caches and tensors.
      const ac = new AbortController();
      try {
        for await (const step of generateIds(model, prompt(1, 4), 1, { maxNewTokens: 8, signal: ac.signal, seed: g })) {
          tokens += step.length;
          ac.abort();
        }
        throw new Error('the aborted generation did not throw');
      } catch (err) {
        if (!isAbort(err)) throw err;
      }
      counts.aborted++;
    } else if (kind === 3) {
      // Abandoned: the caller breaks out of the loop (the generator's finally must clean up).
      for await (const step of generateIds(model, prompt(1, 5), 1, { maxNewTokens: 8, seed: g })) {
        tokens += step.length;
        break;
      }
      counts.abandoned++;
    } else if (kind === 4) {
      // Hand-driven decode with KV caches that start at 2 positions and grow (2 -> 4 -> 8).
      const state = model.startDecode(1, null, 2);
      const ids = Tensor.from(prompt(1, 3), [1, 3]);
      const next = Tensor.zeros([1, 1], 'int32');
      try {
        model.decode(ids, state);
        for (let i = 0; i < 4; i++) {
          next.copyFrom(Int32Array.of(rand(config.vocab_size)));
          model.decode(next, state);
          tokens++;
        }
        if (state.self[0].capacity < 7) throw new Error(`the KV cache did not grow (capacity ${state.self[0].capacity})`);
      } finally {
        state.dispose();
        ids.dispose();
        next.dispose();
      }
      counts.manual_kv_growth++;
    } else {
      // Text through the tokenizer: streamText, aborted after the first piece every other time.
      const ac = new AbortController();
      const abort = Math.floor(g / KINDS) % 2 === 1;
      try {
        for await (const piece of streamText(text.model, text.tokenizer, 'Call me', { maxNewTokens: 4, seed: g, signal: ac.signal })) {
          tokens++;
          if (abort && piece) ac.abort();
        }
      } catch (err) {
        if (!isAbort(err)) throw err;
      }
      if (abort) counts.text_aborted++;
      else counts.text++;
    }
  };

  const samples = [await sample(lib, 0)];
  printRow('gen  ', samples[0], 0);
  const t0 = performance.now();
  for (let g = 1; g <= o.generations; g++) {
    await one(g);
    if (g % o.every === 0 || g === o.generations) {
      const s = await sample(lib, g);
      samples.push(s);
      printRow('gen  ', s, (performance.now() - t0) / 1000);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  model.dispose();
  text?.model.dispose();
  return { samples, seconds, counts, tokens, config };
}

async function main() {
  const o = parseArgs(process.argv.slice(2), { steps: 10000, generations: 10000, every: 500, threads: 1, seed: 0, noText: false });
  if (o.every < 1) throw new Error('--every needs an integer >= 1');
  const lib = require('../dist');
  lib.ops.setNumThreads(o.threads);
  const loadStart = os.loadavg()[0];
  const start = performance.now();
  const baseline = await sample(lib, 0);
  const result = { bench: 'soak', threads: lib.ops.numThreads(), isa: lib.ops.isa(), steps: o.steps, generations: o.generations, every: o.every, tolerance_per_op: TOLERANCE };
  if (o.steps > 0) {
    const t = await soakTraining(lib, o);
    const a = analyse(t.samples, o.steps);
    printVerdict('train', a, 'step');
    result.train = { ...a, async_steps: t.async, seconds: t.seconds, ms_per_step: (1000 * t.seconds) / o.steps, loss_first: t.loss.first, loss_last: t.loss.last, samples: t.samples };
  }
  if (o.generations > 0) {
    const g = await soakGeneration(lib, o);
    const a = analyse(g.samples, o.generations);
    printVerdict('gen', a, 'generation');
    result.generate = { ...a, seconds: g.seconds, ms_per_generation: (1000 * g.seconds) / o.generations, kinds: g.counts, tokens: g.tokens, samples: g.samples };
  }
  const end = await sample(lib, 0);
  // Everything is disposed at the end: the native allocator must be back where it started.
  result.native_live_bytes_start = baseline.native_live_bytes;
  result.native_live_bytes_end = end.native_live_bytes;
  result.native_live_allocations_end = end.native_live_allocations;
  result.flat = (result.train?.flat ?? true) && (result.generate?.flat ?? true) && end.native_live_bytes === baseline.native_live_bytes;
  result.seconds = (performance.now() - start) / 1000;
  result.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
  result.loadavg_1m_start = loadStart;
  result.loadavg_1m_end = os.loadavg()[0];
  console.log(`native memory after disposing everything: ${end.native_live_bytes} B in ${end.native_live_allocations} allocations (start ${baseline.native_live_bytes} B)`);
  console.log(`verdict: ${result.flat ? 'memory is flat' : 'memory is NOT flat'} (${result.seconds.toFixed(0)} s)`);
  console.log(JSON.stringify(result));
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
