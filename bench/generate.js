#!/usr/bin/env node
'use strict';
// Generation speed of moe-small against PyTorch and against the machine's memory bandwidth, in the same run (issue 9).
// Greedy decoding with the KV cache through the library's generateIds, batch 1, a `--prompt`-token random prompt
// (default 32), `--new` new tokens (default 256); one warm-up, then the median over `--repeats` generations of:
//   ttft_ms               prompt forward (prefill) + sampling of the first new token
//   decode_tokens_per_s   (new - 1) / (time from the first to the last new token)
//   e2e_tokens_per_s      new / (time from the start to the last new token)
// Bandwidth: bytes one decode step must read (the fp32 weights: embedding row, each layer's norms, attention
// projections, router and the 2 experts of 8 the token goes to, final norm, lm_head; plus the KV cache), and the
// machine's read bandwidth (a native sum of squares over 1 GiB; PyTorch's torch.sum when it runs, the larger is
// used). Their quotient is the bandwidth limit in tokens/s. bench/pytorch/bench_generate.py measures PyTorch.
// Usage: npm run bench:generate [-- --threads 2 --prompt 32 --new 256 --repeats 3 --noTorch]
// Prints a line per measurement and, last, one JSON object.
const os = require('node:os');
const { median, parseArgs, runPytorch } = require('./common');

function decodeWeightBytes(c) {
  const D = c.d_model, V = c.vocab_size, F = c.d_ff, L = c.n_layers;
  const kv = c.n_kv_heads * (D / c.n_heads);
  const attn = 2 * D * D + 2 * D * kv + (c.attention_bias ? 2 * D + 2 * kv : 0);
  const glu = c.activation === 'swiglu';
  const expert = (glu ? 3 : 2) * D * F + (c.ffn_bias ? (glu ? 2 : 1) * F + D : 0);
  const ffn = c.ffn === 'moe' ? c.n_experts * D + (c.router_bias ? c.n_experts : 0) + c.top_k * expert : expert;
  const perLayer = 2 * D + attn + ffn;
  return 4 * (D + L * perLayer + D + V * D + (c.lm_head_bias ? V : 0));
}

/** Read bandwidth in GB/s: the gradient-norm kernel (a pure streaming read) over `gib` GiB, median of 7. */
function readBandwidth(lib, gib) {
  const n = Math.floor((gib * 2 ** 30) / 4);
  const t = lib.Tensor.zeros([n]);
  lib.ops.randomUniform(t, 1, -1, 1);
  lib.ops.clipGradNorm([t], Infinity);
  const rates = [];
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    lib.ops.clipGradNorm([t], Infinity);
    rates.push((n * 4) / ((performance.now() - t0) / 1000) / 1e9);
  }
  t.dispose();
  return median(rates);
}

async function main() {
  const o = parseArgs(process.argv.slice(2), { threads: 2, prompt: 32, new: 256, repeats: 3, seed: 0, noTorch: false });
  const lib = require('../dist');
  const { Transformer, preset, generateIds, ops } = lib;
  ops.setNumThreads(o.threads);
  const model = new Transformer(preset('moe-small'));
  model.init(o.seed);
  const c = model.config;
  if (o.prompt + o.new > c.max_seq_len) throw new Error(`--prompt + --new exceeds max_seq_len ${c.max_seq_len}`);
  let state = (o.seed + 7) >>> 0;
  const prompt = Int32Array.from({ length: o.prompt }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % c.vocab_size;
  });
  const run = async (n) => {
    const stamps = [];
    const tokens = [];
    const t0 = performance.now();
    for await (const step of generateIds(model, prompt, 1, { maxNewTokens: n, temperature: 0 })) {
      stamps.push((performance.now() - t0) / 1000);
      tokens.push(step[0]);
    }
    return { stamps, tokens };
  };
  const loadStart = os.loadavg()[0];
  await run(Math.min(16, o.new)); // warm-up: the modules' scratch buffers are allocated here
  const runs = [];
  let tokens = null;
  for (let r = 0; r < o.repeats; r++) {
    const { stamps, tokens: t } = await run(o.new);
    if (tokens === null) tokens = t;
    else if (t.join() !== tokens.join()) throw new Error('greedy generation is not reproducible between runs');
    const steps = stamps.slice(1).map((s, i) => s - stamps[i]);
    runs.push({
      ttft_ms: stamps[0] * 1e3,
      decode_tokens_per_s: o.new > 1 ? (o.new - 1) / (stamps[stamps.length - 1] - stamps[0]) : NaN,
      e2e_tokens_per_s: o.new / stamps[stamps.length - 1],
      step_ms_median: steps.length ? median(steps) * 1e3 : NaN,
    });
  }
  const result = Object.fromEntries(Object.keys(runs[0]).map((k) => [k, median(runs.map((r) => r[k]))]));
  model.dispose();
  const ownBandwidth = readBandwidth(lib, 1);
  const hd = c.d_model / c.n_heads;
  const kvBytes = c.n_layers * 2 * c.n_kv_heads * hd * 4 * (o.prompt + (o.new + 1) / 2);
  const bytesPerToken = decodeWeightBytes(c) + kvBytes;
  console.log(
    `wavemoe generate moe-small: decode ${result.decode_tokens_per_s.toFixed(1)} tokens/s (step median ${result.step_ms_median.toFixed(2)} ms), ` +
      `TTFT ${result.ttft_ms.toFixed(1)} ms (${o.prompt}-token prompt), end-to-end ${result.e2e_tokens_per_s.toFixed(1)} tokens/s`,
  );
  let torch = { skipped: '--noTorch' };
  if (!o.noTorch) {
    torch = runPytorch('bench_generate.py', ['--threads', String(o.threads), '--prompt', String(o.prompt), '--new', String(o.new), '--repeats', String(o.repeats), '--seed', String(o.seed)]);
  }
  const torchBandwidth = torch.bandwidth ? torch.bandwidth.read_gb_per_s : null;
  const bandwidth = Math.max(ownBandwidth, torchBandwidth ?? 0);
  const limit = (bandwidth * 1e9) / bytesPerToken;
  const ratio = torch.decode_tokens_per_s ? result.decode_tokens_per_s / torch.decode_tokens_per_s : null;
  console.log(
    `memory: ${(bytesPerToken / 1e6).toFixed(1)} MB read per token, read bandwidth ${bandwidth.toFixed(1)} GB/s ` +
      `(native ${ownBandwidth.toFixed(1)}${torchBandwidth ? `, torch ${torchBandwidth.toFixed(1)}` : ''}) -> limit ${limit.toFixed(0)} tokens/s; ` +
      `wavemoe reaches ${((100 * result.decode_tokens_per_s) / limit).toFixed(0)}% of it`,
  );
  if (ratio !== null) {
    console.log(
      `wavemoe / PyTorch: decode ${ratio.toFixed(2)} (${result.decode_tokens_per_s.toFixed(1)} vs ${torch.decode_tokens_per_s.toFixed(1)} tokens/s), ` +
        `TTFT ${(result.ttft_ms / torch.ttft_ms).toFixed(2)} of PyTorch's (${result.ttft_ms.toFixed(1)} vs ${torch.ttft_ms.toFixed(1)} ms)`,
    );
  } else {
    console.log(`PyTorch baseline skipped: ${torch.skipped}`);
  }
  console.log(
    JSON.stringify({
      bench: 'generate',
      model: 'moe-small',
      threads: o.threads,
      batch: 1,
      prompt_tokens: o.prompt,
      new_tokens: o.new,
      repeats: o.repeats,
      ...result,
      runs,
      first_tokens: tokens.slice(0, 16),
      bytes_per_token: bytesPerToken,
      read_gb_per_s: bandwidth,
      read_gb_per_s_native: ownBandwidth,
      read_gb_per_s_torch: torchBandwidth,
      bandwidth_limit_tokens_per_s: limit,
      fraction_of_bandwidth_limit: result.decode_tokens_per_s / limit,
      pytorch_decode_tokens_per_s: torch.decode_tokens_per_s ?? null,
      pytorch_ttft_ms: torch.ttft_ms ?? null,
      ratio_decode: ratio,
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
      loadavg_1m_start: loadStart,
      loadavg_1m_end: os.loadavg()[0],
      pytorch: torch,
    }),
  );
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
