/**
 * Recorded runs (runAsync) on a GPU against the CPU, for test/gpu/recorded.test.ts and test/gpu/run.js. Inside a
 * recorded run a GPU op neither waits for its number nor for an index check: both are read back once, at the run's
 * end (csrc/core/device_run.h). These checks hold a device to that:
 *  - the numbers of a recorded run (cross-entropy loss, gradient norm, MoE aux loss) match the CPU's, and the whole
 *    run waits for the GPU exactly once (cudaMemoryStats().hostWaits), a run without numbers or checks not at all;
 *  - a bad index (an embedding id, a cross-entropy target, a corrupted MoE routing, a sampling history id) or a bad
 *    logits row in sampling fails the run at its end with the same message as on the CPU, which stops at the op:
 *    "<op> (recorded step i of n): <what is wrong>".
 * Each check returns { name, ok, detail }. On the CPU (no GPU here) the same checks run CPU against CPU, so that a
 * broken check is found without a GPU; the wait counts are then not checked.
 */
'use strict';

const { maker } = require('./cases');

// A tensor on `device` holding fill(i) at flat index i.
const tensor = (addon, device, dtype, shape, fill) => maker(addon, device, 0).values(shape, dtype, fill);

// A deterministic pseudo-random fill in [lo, hi).
const wave = (seed, lo = -1, hi = 1) => (i) => lo + (hi - lo) * (0.5 + 0.5 * Math.sin(seed * 12.9898 + i * 78.233));

// Runs record() inside a recording; resolves { values, error, waits } (waits: null where they cannot be counted).
async function recorded(addon, device, record) {
  const counted = device !== 'cpu' && typeof addon.cudaMemoryStats === 'function';
  const before = counted ? addon.cudaMemoryStats(device).hostWaits : 0;
  addon.recordBegin();
  try {
    record();
  } catch (e) {
    addon.recordCancel();
    throw e;
  }
  let values = null, error = null;
  try {
    values = await addon.recordRunAsync();
  } catch (e) {
    error = e.message;
  }
  const waits = counted ? addon.cudaMemoryStats(device).hostWaits - before : null;
  return { values, error, waits };
}

// The ops of the numbers check, on one device: returns the run's numbers and wait count.
async function numbersRun(addon, device) {
  const t = (dtype, shape, fill) => tensor(addon, device, dtype, shape, fill);
  const N = 7, V = 1031;
  const logits = t('float32', [N, V], wave(1, -5, 5));
  const targets = t('int32', [N], (i) => (i === 3 ? -100 : (i * 7919) % V));
  const dlogits = t('float32', [N, V], () => 0);
  const grads = [t('float32', [129], wave(2, -3, 3)), t('float32', [31], wave(3))];
  const normOut = t('float64', [1], () => 0);
  const E = 3, D = 8, F = 5, k = 2, M = 11, P = M * k;
  const moe = {
    params: { gateWeight: t('float32', [E, D], wave(4)), w1: t('float32', [E, F, D], wave(5, -0.5, 0.5)),
      w2: t('float32', [E, D, F], wave(6, -0.5, 0.5)), w3: t('float32', [E, F, D], wave(7, -0.5, 0.5)) },
    saved: savedFor(t, M, D, F, E, k, P),
    x: t('float32', [M, D], wave(8, -2, 2)), out: t('float32', [M, D], () => 0),
  };
  const opts = { topK: k, activation: 'swiglu', auxLossCoef: 0.01, zLossCoef: 0.001 };
  return recorded(addon, device, () => {
    addon.crossEntropyForwardBackward(dlogits, null, logits, targets, { gradScale: 0.5 });
    addon.clipGradNorm(grads, 1.0, normOut);
    addon.moeForward(moe.out, moe.saved, moe.x, moe.params, opts);
    addon.scale(dlogits, 2); // an op without a number in between
  });
}

function savedFor(t, N, D, F, E, k, P) {
  const z = (shape, dtype = 'float32') => t(dtype, shape, () => 0);
  return {
    probs: z([N, E]), lse: z([N]), expert: z([N, k], 'int32'), weight: z([N, k]), slotRow: z([N, k], 'int32'),
    rowSlot: z([P], 'int32'), offsets: z([E + 1], 'int32'), counts: z([E], 'int32'), xp: z([P, D]), a: z([P, F]),
    b: z([P, F]), h: z([P, F]), y: z([P, D]), aux: z([2], 'float64'),
  };
}

// A recorded run whose `bad` op reads an index out of range; resolves the run's error message (null: none).
async function badIndexRun(addon, device, which) {
  const t = (dtype, shape, fill) => tensor(addon, device, dtype, shape, fill);
  if (which === 'embedding') {
    const table = t('float32', [13, 4], wave(9));
    const ids = t('int32', [3, 4], (i) => (i === 6 ? 70000 : i === 9 ? -1 : i % 13));
    const out = t('float32', [3, 4, 4], () => 0), dtable = t('float32', [13, 4], () => 0);
    return (await recorded(addon, device, () => {
      addon.scale(table, 1);
      addon.embeddingForward(out, ids, table);
      addon.embeddingBackward(dtable, out, ids);
    })).error;
  }
  if (which === 'cross-entropy') {
    const logits = t('float32', [5, 17], wave(10)), dl = t('float32', [5, 17], () => 0);
    const targets = t('int32', [5], (i) => [3, -100, 16, 17, -4][i]);
    return (await recorded(addon, device, () => addon.crossEntropyForwardBackward(dl, null, logits, targets))).error;
  }
  if (which === 'sampling history' || which === 'sampling NaN') {
    const logits = t('float32', [3, 17], (i) => (which === 'sampling NaN' && i === 22 ? NaN : wave(18, -3, 3)(i)));
    const ids = t('int32', [3], () => 0);
    const history = t('int32', [3, 4], (i) => (which === 'sampling history' && i === 6 ? 40 : i % 5 === 4 ? -1 : i % 17));
    return (await recorded(addon, device, () =>
      addon.sampleTokens(ids, logits, { temperature: 0.8, topK: 5, repetitionPenalty: 1.3, history, seed: 3, counter: 1 }))).error;
  }
  // moe: a forward's routing, then offsets corrupted (decreasing at expert 1) before a recorded backward.
  const E = 3, D = 4, F = 3, k = 2, N = 9, P = N * k;
  const params = { gateWeight: t('float32', [E, D], wave(11)), w1: t('float32', [E, F, D], wave(12)),
    w2: t('float32', [E, D, F], wave(13)), w3: t('float32', [E, F, D], wave(14)) };
  const saved = savedFor(t, N, D, F, E, k, P);
  const x = t('float32', [N, D], wave(15, -2, 2)), out = t('float32', [N, D], () => 0);
  const opts = { topK: k, activation: 'swiglu' };
  addon.moeForward(out, saved, x, params, opts);
  const offsets = saved.offsets.toArray();
  offsets[1] = offsets[2] + 1;
  saved.offsets.copyFrom(offsets);
  const grads = Object.fromEntries(Object.entries(params).map(([key, p]) => [key, t('float32', p.shape, () => 0)]));
  const work = { dy: t('float32', [P, D], () => 0), dh: t('float32', [P, F], () => 0), da: t('float32', [P, F], () => 0),
    db: t('float32', [P, F], () => 0), dweight: t('float32', [N, k], () => 0), dlogits: t('float32', [N, E], () => 0) };
  const dx = t('float32', [N, D], () => 0), dout = t('float32', [N, D], wave(16));
  return (await recorded(addon, device, () => addon.moeBackward(dx, grads, work, dout, saved, x, params, opts))).error;
}

const EXPECTED_ERRORS = {
  embedding: /^embeddingForward \(recorded step 2 of 3\): ids at \[1, 2\] \(flat index 6\) is 70000, out of range \[0, 13\)/,
  'cross-entropy': /^crossEntropyForwardBackward \(recorded step 1 of 1\): targets\[3\] is 17, out of range \[0, 17\)/,
  moe: /^moeBackward \(recorded step 1 of 1\): 'saved' does not hold a forward's routing: offsets decrease at expert 1/,
  'sampling history': /^sampleTokens \(recorded step 1 of 1\): option 'history' holds token id 40 at \[1, 2\], outside \[-1, 17\)/,
  'sampling NaN': /^sampleTokens \(recorded step 1 of 1\): row 1: logits\[1, 5\] is NaN$/,
};

async function recordedChecks(addon, device) {
  const rows = [];
  const cpu = await numbersRun(addon, 'cpu'), dev = await numbersRun(addon, device);
  const close = (a, b) => Math.abs(a - b) <= 1e-5 * Math.abs(a) + 1e-7;
  const numbersOk = !cpu.error && !dev.error && cpu.values.length === 3 && dev.values.length === 3 &&
    cpu.values.every((v, i) => Number.isFinite(v) && close(v, dev.values[i]));
  rows.push({ name: 'recorded numbers (loss, gradient norm, MoE aux loss) match the CPU', ok: numbersOk,
    detail: `cpu ${JSON.stringify(cpu.values)} ${device} ${JSON.stringify(dev.values)} ${dev.error ?? ''}` });
  if (dev.waits !== null) {
    rows.push({ name: 'a recorded run with numbers waits for the GPU once', ok: dev.waits === 1, detail: `${dev.waits} waits` });
    const t = tensor(addon, device, 'float32', [1031], wave(17));
    const quiet = await recorded(addon, device, () => { addon.scale(t, 0.5); addon.scale(t, 3); });
    rows.push({ name: 'a recorded run without numbers or checks does not wait', ok: quiet.waits === 0, detail: `${quiet.waits} waits` });
  }
  for (const which of Object.keys(EXPECTED_ERRORS)) {
    const want = await badIndexRun(addon, 'cpu', which), got = await badIndexRun(addon, device, which);
    rows.push({ name: `a bad index (${which}) fails the recorded run with the CPU's message`,
      ok: got === want && EXPECTED_ERRORS[which].test(want ?? ''), detail: `cpu: ${want}\n${device}: ${got}` });
  }
  return rows;
}

module.exports = { recordedChecks };
