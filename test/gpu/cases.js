/**
 * The GPU comparison cases, shared by the jest suite (test/gpu/ops.test.ts) and the plain-Node runner
 * (test/gpu/run.js, for machines with a GPU and Node but no node_modules). Each case describes an op once; the
 * harness runs it with every tensor on the CPU and again with every tensor on the GPU, from the same random inputs,
 * in ONE addon (the CUDA-enabled build does both), and compares every output it returns.
 *
 * Sizes are awkward on purpose (1, primes, non-multiples of 32 and of the vector width). Tolerances are stated per
 * case: float32 kernels may sum in another order than the CPU (|err| <= atol + rtol·|cpu|), float64 ones are held
 * tight, and kernels that are bit-identical by design (gathers, copies, AdamW's op-by-op rounding) are compared exactly.
 */
'use strict';

// A seeded generator (mulberry32): the same inputs for the CPU and the GPU run of a case.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ARRAY = { float32: Float32Array, float64: Float64Array, int32: Int32Array };

// Tensor makers bound to one addon and device. `rand` draws from the case's generator, so both runs see the same data.
function maker(addon, device, seed) {
  const next = rng(seed);
  const t = (dtype, shape, fill) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new ARRAY[dtype](n);
    for (let i = 0; i < n; ++i) data[i] = fill(i);
    const x = new addon.Tensor(dtype, shape, device);
    x.copyFrom(data);
    return x;
  };
  return {
    rand: (shape, dtype = 'float32', lo = -1, hi = 1) => t(dtype, shape, () => lo + (hi - lo) * next()),
    ints: (shape, hiExclusive) => t('int32', shape, () => Math.floor(next() * hiExclusive)),
    zeros: (shape, dtype = 'float32') => new addon.Tensor(dtype, shape, device),
    values: (shape, dtype, fn) => t(dtype, shape, fn),
  };
}

const f32 = { atol: 1e-5, rtol: 1e-4 };
const f64 = { atol: 1e-12, rtol: 1e-11 };
const exact = { atol: 0, rtol: 0 };

const cases = [];

// ---- matmul: forward and backward, transposes, batch broadcast, accumulation
for (const [batch, M, N, K] of [[1, 1, 1, 1], [1, 7, 13, 5], [3, 33, 65, 129], [2, 130, 67, 257]]) {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      for (const dtype of ['float32', 'float64']) {
        cases.push({
          name: `matmul ${dtype} b=${batch} M=${M} N=${N} K=${K} tA=${transA} tB=${transB}`,
          // Σ over K of products in [-1, 1]: the float32 error grows with √K; scale atol with K.
          tol: dtype === 'float32' ? { atol: 2e-6 * K, rtol: 1e-4 } : f64,
          run: (addon, m) => {
            const A = m.rand(transA ? [batch, K, M] : [batch, M, K], dtype);
            const B = m.rand(transB ? [N, K] : [K, N], dtype); // shared across the batch (stride 0)
            const C = m.rand([batch, M, N], dtype);
            addon.matmul(C, A, B, { transA, transB, accumulate: true });
            const dC = m.rand([batch, M, N], dtype);
            const dA = m.rand(A.shape, dtype), dB = m.rand(B.shape, dtype);
            addon.matmulBackward(dA, dB, dC, A, B, { transA, transB });
            return { C, dA, dB };
          },
        });
      }
    }
  }
}

// ---- norms, softmax, RoPE, activations
for (const [N, C] of [[1, 1], [3, 7], [17, 130], [5, 1031]]) {
  for (const dtype of ['float32', 'float64']) {
    const tol = dtype === 'float32' ? f32 : f64;
    cases.push({
      name: `rmsnorm ${dtype} N=${N} C=${C}`,
      tol,
      run: (addon, m) => {
        const x = m.rand([N, C], dtype), w = m.rand([C], dtype, 0.5, 1.5);
        const out = m.zeros([N, C], dtype), rstd = m.zeros([N], dtype);
        addon.rmsnormForward(out, rstd, x, w, 1e-5);
        const dout = m.rand([N, C], dtype), dx = m.rand([N, C], dtype), dw = m.rand([C], dtype);
        addon.rmsnormBackward(dx, dw, dout, x, w, rstd);
        return { out, rstd, dx, dw };
      },
    });
    cases.push({
      name: `softmax ${dtype} N=${N} C=${C}`,
      tol,
      run: (addon, m) => {
        const x = m.rand([N, C], dtype, -8, 8), out = m.zeros([N, C], dtype);
        addon.softmaxForward(out, x);
        const dout = m.rand([N, C], dtype), dx = m.zeros([N, C], dtype);
        addon.softmaxBackward(dx, dout, out);
        return { out, dx };
      },
    });
  }
}
for (const [B, T, H, D] of [[1, 1, 1, 2], [2, 7, 3, 10], [1, 33, 2, 64]]) {
  cases.push({
    name: `rope float32 B=${B} T=${T} H=${H} D=${D} offset=5`,
    tol: f32,
    run: (addon, m) => {
      const x = m.rand([B, T, H, D]), out = m.zeros([B, T, H, D]);
      addon.ropeForward(out, x, 10000, 5);
      const dout = m.rand([B, T, H, D]), dx = m.zeros([B, T, H, D]);
      addon.ropeBackward(dx, dout, 10000, 5);
      return { out, dx };
    },
  });
}
for (const kind of ['relu', 'gelu_tanh', 'gelu_erf', 'silu']) {
  cases.push({
    name: `activation ${kind} float32 n=1031`,
    tol: f32,
    run: (addon, m) => {
      const x = m.rand([1031], 'float32', -4, 4), out = m.zeros([1031]);
      addon.activationForward(out, x, kind);
      const dout = m.rand([1031]), dx = m.rand([1031]);
      addon.activationBackward(dx, dout, x, kind);
      return { out, dx };
    },
  });
}
cases.push({
  name: 'swiglu float32 n=997',
  tol: f32,
  run: (addon, m) => {
    const a = m.rand([997], 'float32', -4, 4), b = m.rand([997]), out = m.zeros([997]);
    addon.swigluForward(out, a, b);
    const dout = m.rand([997]), da = m.rand([997]), db = m.rand([997]);
    addon.swigluBackward(da, db, dout, a, b);
    return { out, da, db };
  },
});

// ---- embedding (gather exact; the scatter-add is deterministic and in the CPU's order: exact too)
for (const [V, C, N] of [[1, 1, 1], [5, 3, 17], [50254, 16, 129]]) {
  cases.push({
    name: `embedding float32 V=${V} C=${C} N=${N}`,
    tol: exact,
    run: (addon, m) => {
      const table = m.rand([V, C]), ids = m.ints([N], Math.min(V, 7)); // repeated ids exercise the scatter order
      const out = m.zeros([N, C]);
      addon.embeddingForward(out, ids, table);
      const dout = m.rand([N, C]), dtable = m.rand([V, C]);
      addon.embeddingBackward(dtable, dout, ids);
      return { out, dtable };
    },
  });
}

// ---- fused cross-entropy over the real vocabulary
for (const [N, V] of [[1, 2], [7, 50254], [33, 1031]]) {
  cases.push({
    name: `cross-entropy float32 N=${N} V=${V} (ignore index in use)`,
    tol: { atol: 1e-6, rtol: 1e-4 },
    run: (addon, m) => {
      const logits = m.rand([N, V], 'float32', -6, 6);
      const targets = m.values([N], 'int32', (i) => (i % 5 === 3 ? -100 : (i * 7919) % V));
      const dlogits = m.zeros([N, V]), losses = m.zeros([N]);
      const loss = addon.crossEntropyForwardBackward(dlogits, losses, logits, targets, { gradScale: 0.5 });
      return { loss: Float64Array.of(loss), dlogits, losses };
    },
  });
}

// ---- optimizer
for (const dtype of ['float32', 'float64']) {
  cases.push({
    name: `adamw ${dtype} n=1031, then a skipped step (non-finite guard)`,
    tol: exact,
    run: (addon, m) => {
      const p = m.rand([1031], dtype), g = m.rand([1031], dtype), mm = m.rand([1031], dtype, 0, 0.1);
      const v = m.rand([1031], dtype, 0, 0.1);
      const opts = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3 };
      addon.adamwStep(p, g, mm, v, opts);
      const guard = m.values([1], 'float64', () => NaN);
      addon.adamwStep(p, g, mm, v, { ...opts, step: 4, skipIfNonFinite: guard });
      return { p, m: mm, v };
    },
  });
}
cases.push({
  name: 'clipGradNorm float32 over three tensors (one empty)',
  tol: { atol: 1e-7, rtol: 1e-6 },
  run: (addon, m) => {
    const a = m.rand([1031], 'float32', -3, 3), b = m.rand([0]), c = m.rand([8193]);
    const normOut = m.zeros([1], 'float64');
    const norm = addon.clipGradNorm([a, b, c], 1.0, normOut);
    return { norm: Float64Array.of(norm), normOut, a, c };
  },
});

// ---- elementwise glue
cases.push({
  name: 'add, axpy, scale, copy, biasAdd(+backward), permute0213, sinusoidal float32',
  tol: f32,
  run: (addon, m) => {
    const x = m.rand([3, 5, 7, 11]), y = m.rand([3, 5, 7, 11]), sum = m.zeros([3, 5, 7, 11]);
    addon.add(sum, x, y);
    addon.axpy(y, x, -0.375);
    addon.scale(x, 1.25);
    const copied = m.zeros([3, 5, 7, 11]);
    addon.copy(copied, y);
    const rows = m.rand([129, 31]), bias = m.rand([31]);
    addon.biasAdd(rows, bias);
    const dbias = m.rand([31]);
    addon.biasAddBackward(dbias, rows);
    const perm = m.zeros([3, 7, 5, 11]);
    addon.permute0213(perm, x);
    const pos = m.zeros([37, 18]);
    addon.sinusoidalPositions(pos, 3);
    return { sum, y, x, copied, rows, dbias, perm, pos };
  },
});

// ---- LayerNorm
for (const [N, C] of [[1, 1], [3, 7], [17, 130], [5, 1031]]) {
  for (const dtype of ['float32', 'float64']) {
    for (const withBias of [true, false]) {
      cases.push({
        name: `layernorm ${dtype} N=${N} C=${C} bias=${withBias}`,
        tol: dtype === 'float32' ? f32 : f64,
        run: (addon, m) => {
          const x = m.rand([N, C], dtype, -2, 3), w = m.rand([C], dtype, 0.5, 1.5);
          const bias = withBias ? m.rand([C], dtype) : null;
          const out = m.zeros([N, C], dtype), mean = m.zeros([N], dtype), rstd = m.zeros([N], dtype);
          addon.layernormForward(out, mean, rstd, x, w, bias, 1e-5);
          const dout = m.rand([N, C], dtype), dx = m.rand([N, C], dtype), dw = m.rand([C], dtype);
          const db = withBias ? m.rand([C], dtype) : null;
          addon.layernormBackward(dx, dw, db, dout, x, w, mean, rstd);
          return { out, mean, rstd, dx, dw, ...(db ? { db } : {}) };
        },
      });
    }
  }
}

// ---- random fills (the same counter-based values; normal within 1 ulp in float32: CUDA's log/sin/cos)
for (const dtype of ['float32', 'float64']) {
  cases.push({
    name: `random uniform and normal ${dtype} n=10007`,
    tol: dtype === 'float32' ? { atol: 0, rtol: 2 ** -23 } : { atol: 1e-15, rtol: 1e-14 },
    run: (addon, m) => {
      const u = m.zeros([10007], dtype), n = m.zeros([10007], dtype);
      addon.randomUniform(u, 42, -0.5, 2);
      addon.randomNormal(n, 43, 0.25, 1.5);
      return { u, n };
    },
  });
}

// ---- wavelet embedding: the table and the matrix built on the GPU, raw mode forward and backward
for (const dtype of ['float32', 'float64']) {
  const tol = dtype === 'float32' ? { atol: 1e-5, rtol: 1e-4 } : f64;
  const transform = { levels: 4, scales: [2], bandwidth: 1.5, center: 1 };
  cases.push({
    name: `wavelet table, matrix, raw forward/backward ${dtype} V=37 R=256`,
    tol,
    run: (addon, m) => {
      const raw = m.rand([37, 256], dtype), table = m.zeros([37, 32], dtype), W = m.zeros([256, 32], dtype);
      addon.waveletTableForward(table, raw, transform);
      addon.waveletMatrix(W, transform);
      const ids = m.ints([3, 11], 37), out = m.zeros([3, 11, 32], dtype);
      addon.waveletEmbeddingRawForward(out, ids, raw, W);
      const dout = m.rand([3, 11, 32], dtype), draw = m.rand([37, 256], dtype);
      addon.waveletEmbeddingRawBackward(draw, dout, ids, W);
      return { table, W, out, draw };
    },
  });
}

// ---- wavelet analysis: Haar approximation and the complex Morlet CWT (bit-identical: both sum in double, same order)
for (const dtype of ['float32', 'float64']) {
  cases.push({
    name: `waveletHaarForward and waveletCwtForward ${dtype}`,
    tol: exact,
    run: (addon, m) => {
      const x = m.rand([3, 37], dtype, -2, 2), haar = m.zeros([3, 10], dtype); // 37 → 19 → 10: odd lengths pad
      addon.waveletHaarForward(haar, x, 2);
      const sig = m.rand([2, 29], dtype), cwt = m.zeros([2, 3, 58], dtype);
      addon.waveletCwtForward(cwt, sig, { scales: [2, 3.5, 8], bandwidth: 1.1, center: 1.3 });
      return { haar, cwt };
    },
  });
}

// ---- sampling: identical ids over the option grid (probs within tolerance)
for (const [B, V] of [[1, 2], [3, 50254], [5, 1031]]) {
  for (const opts of [
    { temperature: 0 },
    { temperature: 0.7, seed: 5, counter: 3 },
    { temperature: 1.3, topK: 40, seed: 6, counter: 0 },
    { temperature: 0.9, topP: 0.83, seed: 7, counter: 11 },
    { temperature: 1, topK: 100, topP: 0.6, repetitionPenalty: 1.3, seed: 8, counter: 2, history: true },
  ]) {
    cases.push({
      name: `sampleTokens float32 B=${B} V=${V} ${JSON.stringify(opts)}`,
      tol: { atol: 1e-7, rtol: 2 ** -20 },
      run: (addon, m) => {
        const logits = m.rand([B, V], 'float32', -5, 5), out = m.zeros([B], 'int32'), probs = m.zeros([B, V]);
        const history = opts.history ? m.values([B, 9], 'int32', (i) => (i % 4 === 3 ? -1 : (i * 31) % V)) : undefined;
        const topK = opts.topK === undefined ? undefined : Math.min(opts.topK, V);
        addon.sampleTokens(out, logits, { ...opts, topK, history, probs });
        return { ids: out, probs };
      },
    });
  }
}

// ---- attention: every mask, GQA, a KV cache longer than its use, decoding, backward (dQ, dK, dV start non-zero)
for (const a of [
  { B: 1, Hq: 1, Hkv: 1, Tq: 1, C: 1, D: 1, mask: 'causal' },
  { B: 2, Hq: 3, Hkv: 3, Tq: 31, C: 31, D: 16, mask: 'causal' },
  { B: 1, Hq: 4, Hkv: 2, Tq: 65, C: 65, D: 64, mask: 'causal' },
  { B: 2, Hq: 6, Hkv: 2, Tq: 129, C: 129, D: 80, mask: 'sliding_window', window: 7 },
  { B: 1, Hq: 2, Hkv: 1, Tq: 17, C: 43, D: 31, mask: 'none' },
  { B: 1, Hq: 2, Hkv: 2, Tq: 1, C: 300, kvLength: 257, D: 64, mask: 'causal' },
  { B: 3, Hq: 4, Hkv: 1, Tq: 3, C: 128, kvLength: 100, D: 128, mask: 'causal' },
  { B: 1, Hq: 1, Hkv: 1, Tq: 1, C: 4099, D: 64, mask: 'causal' },
]) {
  for (const dtype of ['float32', 'float64']) {
    cases.push({
      name: `attention ${dtype} ${JSON.stringify(a)}`,
      tol: dtype === 'float32' ? { atol: 2e-5, rtol: 1e-4 } : f64,
      run: (addon, m) => {
        const opts = { mask: a.mask, window: a.window, kvLength: a.kvLength };
        const q = m.rand([a.B, a.Hq, a.Tq, a.D], dtype, -2, 2), k = m.rand([a.B, a.Hkv, a.C, a.D], dtype, -2, 2);
        const v = m.rand([a.B, a.Hkv, a.C, a.D], dtype);
        const o = m.zeros([a.B, a.Hq, a.Tq, a.D], dtype), lse = m.zeros([a.B, a.Hq, a.Tq], dtype);
        addon.attentionForward(o, lse, q, k, v, opts);
        const dO = m.rand(o.shape, dtype), dQ = m.rand(q.shape, dtype);
        const dK = m.rand(k.shape, dtype), dV = m.rand(v.shape, dtype);
        addon.attentionBackward(dQ, dK, dV, dO, q, k, v, o, lse, opts);
        return { o, lse, dQ, dK, dV };
      },
    });
  }
}
// ---- attention under the bf16 matmul precision (both runs round the same inputs, P and dS; see cuda/README.md).
// forward: each side rounds p relative to the running max of its own key tiles (CPU 64 keys; GPU 32 or 64, and key
//   splits), so round(p) may differ by p·2^-7 and out by 2^-7·max|v| = 2^-7 (v in [-1, 1]); lse takes no rounded value.
// backward, from an fp32 forward (out and lse then agree to float32 noise): P and dS round apart only next to a
//   rounding boundary; such a term moves by at most 2^-7 of itself, so up to 1% of the elements may be off by 2^-7
//   of the largest |gradient| (atol), the rest within float32's tolerance.
const withPrecision = (addon, precision, fn) => {
  addon.setMatmulPrecision(precision);
  try {
    return fn();
  } finally {
    addon.setMatmulPrecision('fp32');
  }
};
for (const a of [
  { B: 2, Hq: 3, Hkv: 3, Tq: 31, C: 31, D: 16, mask: 'causal' },
  { B: 1, Hq: 4, Hkv: 2, Tq: 130, C: 130, D: 64, mask: 'sliding_window', window: 37 },
  { B: 1, Hq: 2, Hkv: 1, Tq: 17, C: 43, D: 31, mask: 'none' },
  { B: 3, Hq: 4, Hkv: 1, Tq: 1, C: 300, kvLength: 257, D: 80, mask: 'causal' },
]) {
  const opts = { mask: a.mask, window: a.window, kvLength: a.kvLength };
  const inputs = (m) => ({
    q: m.rand([a.B, a.Hq, a.Tq, a.D], 'float32', -2, 2), k: m.rand([a.B, a.Hkv, a.C, a.D], 'float32', -2, 2),
    v: m.rand([a.B, a.Hkv, a.C, a.D]), o: m.zeros([a.B, a.Hq, a.Tq, a.D]), lse: m.zeros([a.B, a.Hq, a.Tq]),
  });
  cases.push({
    name: `attention forward bf16 ${JSON.stringify(a)}`,
    tol: { atol: 2 ** -7 + 2e-5, rtol: 1e-4 },
    run: (addon, m) => {
      const { q, k, v, o, lse } = inputs(m);
      withPrecision(addon, 'bf16', () => addon.attentionForward(o, lse, q, k, v, opts));
      return { o, lse };
    },
  });
  cases.push({
    name: `attention backward bf16 (fp32 forward) ${JSON.stringify(a)}`,
    tol: { atol: 2e-5, rtol: 1e-4, outliers: 0.01, outlierAtol: 2 ** -7 },
    run: (addon, m) => {
      const { q, k, v, o, lse } = inputs(m);
      addon.attentionForward(o, lse, q, k, v, opts);
      const dO = m.rand(o.shape), dQ = m.zeros(q.shape), dK = m.zeros(k.shape), dV = m.zeros(v.shape);
      withPrecision(addon, 'bf16', () => addon.attentionBackward(dQ, dK, dV, dO, q, k, v, o, lse, opts));
      return { dQ, dK, dV };
    },
  });
}
cases.push({
  name: 'attention KV append, copy (growth) and the causal mask fill float32',
  tol: exact,
  run: (addon, m) => {
    const ck = m.rand([2, 3, 10, 5]), cv = m.rand([2, 3, 10, 5]), k = m.rand([2, 3, 4, 5]), v = m.rand([2, 3, 4, 5]);
    addon.attentionKvAppend(ck, cv, k, v, 3);
    const gk = m.zeros([2, 3, 17, 5]), gv = m.zeros([2, 3, 17, 5]);
    addon.attentionKvCopy(gk, gv, ck, cv, 7);
    const scores = m.rand([4, 6, 9]);
    addon.attentionCausalMaskFill(scores, 2);
    return { ck, cv, gk, gv, scores };
  },
});

// ---- mixture of experts: the whole layer forward and backward (routing integers exact), both routers, drops
for (const e of [
  { N: 1, D: 1, F: 1, E: 1, k: 1, activation: 'swiglu' },
  { N: 7, D: 5, F: 3, E: 2, k: 2, activation: 'relu', router: 'topk_softmax' },
  { N: 33, D: 32, F: 48, E: 5, k: 2, activation: 'swiglu', renormalize: true, capacityFactor: 0.6 },
  { N: 130, D: 67, F: 97, E: 8, k: 2, activation: 'gelu', bias: true },
  { N: 129, D: 64, F: 128, E: 8, k: 8, activation: 'swiglu', bias: true, capacityFactor: 1.0 },
]) {
  for (const dtype of ['float32', 'float64']) {
    cases.push({
      name: `moe ${dtype} ${JSON.stringify(e)}`,
      tol: dtype === 'float32' ? { atol: 2e-5, rtol: 2e-4 } : f64,
      run: (addon, m) => {
        const { N, D, F, E, k } = e, P = N * k, glu = e.activation === 'swiglu';
        const opts = {
          topK: k, router: e.router, renormalize: e.renormalize, activation: e.activation,
          capacityFactor: e.capacityFactor ?? null, auxLossCoef: 0.01, zLossCoef: 0.001,
        };
        const f = (shape, lo = -0.5, hi = 0.5) => m.rand(shape, dtype, lo, hi);
        const params = {
          gateWeight: f([E, D], -1, 1), gateBias: e.bias ? f([E]) : null,
          w1: f([E, F, D]), b1: e.bias ? f([E, F]) : null, w2: f([E, D, F]), b2: e.bias ? f([E, D]) : null,
          w3: glu ? f([E, F, D]) : null, b3: glu && e.bias ? f([E, F]) : null,
        };
        const z = (shape, dt = dtype) => m.zeros(shape, dt);
        const saved = {
          probs: z([N, E]), lse: z([N]), expert: z([N, k], 'int32'), weight: z([N, k]), slotRow: z([N, k], 'int32'),
          rowSlot: z([P], 'int32'), offsets: z([E + 1], 'int32'), counts: z([E], 'int32'), xp: z([P, D]), a: z([P, F]),
          b: glu ? z([P, F]) : null, h: z([P, F]), y: z([P, D]), aux: z([2], 'float64'),
        };
        const x = f([N, D], -2, 2), out = z([N, D]);
        const aux = addon.moeForward(out, saved, x, params, opts);
        const grads = Object.fromEntries(Object.entries(params).map(([key, t]) => [key, t ? m.rand(t.shape, dtype) : null]));
        const work = {
          dy: z([P, D]), dh: z([P, F]), da: z([P, F]), db: glu ? z([P, F]) : null, dweight: z([N, k]), dlogits: z([N, E]),
        };
        const dout = f([N, D], -1, 1), dx = f([N, D], -1, 1);
        addon.moeBackward(dx, grads, work, dout, saved, x, params, { ...opts, auxGradScale: 0.5 });
        const { probs, lse, expert, weight, slotRow, rowSlot, offsets, counts } = saved;
        const g = Object.fromEntries(Object.entries(grads).filter(([, t]) => t).map(([key, t]) => [`grad.${key}`, t]));
        // Rows of rowSlot past offsets[E] (dropped pairs) are unspecified: compare the rows in use.
        const rowsInUse = offsets.toArray()[E];
        const usedRowSlot = rowSlot.toArray().subarray(0, rowsInUse);
        return { out, aux: Float64Array.of(aux), probs, lse, expert, weight, slotRow, usedRowSlot, offsets, counts, dx, ...g };
      },
    });
  }
}

// ---- the device backend itself: fill (its own kernel) and a device-to-device copy through .to()
cases.push({
  name: 'Tensor.fill and .to() on the device, every dtype',
  tol: exact,
  run: (addon, m) => {
    const f = m.zeros([1031]).fill(-2.5), d = m.zeros([7, 3], 'float64').fill(Math.PI), i = m.zeros([5], 'int32').fill(-7);
    const copied = m.rand([33]).to(f.device);
    return { f, d, i, copied };
  },
});

// Worst |got - want| / (atol + rtol·|want|) over one output; Infinity for a NaN mismatch or a length mismatch.
// tol.outliers (a fraction): that many elements (at least one) may instead be within outlierAtol·max|want| +
// rtol·|want|; their ratio is against that bound.
function compare(got, want, tol) {
  if (got.length !== want.length) return { ratio: Infinity, index: -1, got: got.length, want: want.length };
  let worst = { ratio: 0, index: -1, got: 0, want: 0 };
  let spare = tol.outliers ? Math.max(1, Math.floor(tol.outliers * got.length)) : 0;
  let scale = 0;
  for (let i = 0; spare > 0 && i < want.length; ++i) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < got.length; ++i) {
    const g = got[i], w = want[i];
    let ratio;
    if (Number.isNaN(g) || Number.isNaN(w)) ratio = Number.isNaN(g) && Number.isNaN(w) ? 0 : Infinity;
    else if (g === w) ratio = 0;
    else {
      const bound = tol.atol + tol.rtol * Math.abs(w);
      ratio = bound === 0 ? Infinity : Math.abs(g - w) / bound;
      if (ratio > 1 && spare > 0) {
        spare--;
        ratio = Math.abs(g - w) / (tol.outlierAtol * scale + tol.rtol * Math.abs(w));
      }
    }
    if (ratio > worst.ratio) worst = { ratio, index: i, got: g, want: w };
  }
  return worst;
}

// Runs one case on the CPU and on `device`; returns [{output, ratio, index, got, want}] (ratio <= 1 passes).
function runCase(addon, c, device, seed = 1234) {
  const read = (outs) =>
    Object.fromEntries(Object.entries(outs).map(([k, v]) => [k, ArrayBuffer.isView(v) ? v : v.toArray()]));
  const want = read(c.run(addon, maker(addon, 'cpu', seed)));
  const got = read(c.run(addon, maker(addon, device, seed)));
  return Object.keys(want).map((k) => ({ output: k, ...compare(got[k], want[k], c.tol) }));
}

module.exports = { cases, runCase, compare, maker };
