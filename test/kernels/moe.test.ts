import { Tensor, ops, runAsync } from '../../lib';
import type { FloatDType } from '../../lib';
import type { MoeGrads, MoeOptions, MoeParams, MoeSaved, MoeWork } from '../../lib/native/types/moe';
import type { NativeTensor } from '../../lib/native';
import { MoE } from '../../lib/nn/moe';
import { expectClose, type Tolerance } from '../helpers/compare';
import { dot, expectGradient } from '../helpers/gradcheck';
import { Rng } from '../helpers/random';

type Router = 'softmax_topk' | 'topk_softmax';
type Act = 'swiglu' | 'relu' | 'gelu';

interface Case {
  N: number;
  D: number;
  F: number;
  E: number;
  k: number;
  router?: Router;
  renormalize?: boolean;
  activation?: Act;
  /** Expert biases (b1, b2, b3). */
  bias?: boolean;
  routerBias?: boolean;
  capacityFactor?: number | null;
  auxLossCoef?: number;
  zLossCoef?: number;
  /** An expert whose gate bias is so low that it never wins (needs routerBias). */
  deadExpert?: number;
}

const PARAM_KEYS = ['gateWeight', 'gateBias', 'w1', 'b1', 'w2', 'b2', 'w3', 'b3'] as const;
type ParamKey = (typeof PARAM_KEYS)[number];
type Data = { x: Float64Array } & Partial<Record<ParamKey, Float64Array>>;

const act = (c: Case): Act => c.activation ?? 'swiglu';
const glu = (c: Case): boolean => act(c) === 'swiglu';

function paramShapes(c: Case): Partial<Record<ParamKey, number[]>> {
  const { D, F, E } = c;
  const s: Partial<Record<ParamKey, number[]>> = { gateWeight: [E, D], w1: [E, F, D], w2: [E, D, F] };
  if (c.routerBias) s.gateBias = [E];
  if (glu(c)) s.w3 = [E, F, D];
  if (c.bias) {
    s.b1 = [E, F];
    s.b2 = [E, D];
    if (glu(c)) s.b3 = [E, F];
  }
  return s;
}

const numel = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);
const values = (t: NativeTensor): Float64Array => Float64Array.from(t.toArray());

/** N(0, std²) values from the native counter-based generator (fast for large tests; the Rng is slow under jest). */
function normal(n: number, seed: number, std = 1): Float64Array {
  const t = Tensor.randn([n], { seed, std, dtype: 'float64' });
  const v = values(t);
  t.dispose();
  return v;
}

/** Random inputs and parameters (large enough that routing and activations are far from their kinks). */
function makeData(c: Case, seed: number): Data {
  const d: Data = { x: normal(c.N * c.D, seed * 100) };
  // Gate logits O(1) apart; expert weights scaled by fan-in so activations stay O(1) at every width.
  const std: Record<ParamKey, number> = { gateWeight: 1, gateBias: 1, w1: c.D ** -0.5, w3: c.D ** -0.5, w2: c.F ** -0.5, b1: 0.5, b2: 0.5, b3: 0.5 };
  PARAM_KEYS.forEach((key, i) => {
    const shape = paramShapes(c)[key];
    if (shape) d[key] = normal(numel(shape), seed * 100 + i + 1, std[key]);
  });
  if (c.deadExpert !== undefined) d.gateBias![c.deadExpert] = -40;
  return d;
}

function options(c: Case): MoeOptions {
  return {
    topK: c.k,
    router: c.router ?? 'softmax_topk',
    renormalize: c.renormalize ?? false,
    activation: act(c),
    capacityFactor: c.capacityFactor ?? null,
    auxLossCoef: c.auxLossCoef ?? 0,
    zLossCoef: c.zLossCoef ?? 0,
  };
}

const tensor = (data: Float64Array, shape: number[], dtype: FloatDType): Tensor =>
  Tensor.from(dtype === 'float64' ? data : Float32Array.from(data), shape);
/** What a tensor of `dtype` holds for `data`, as float64 (the reference starts from it). */
const rounded = (data: Float64Array, dtype: FloatDType): Float64Array =>
  dtype === 'float64' ? data : Float64Array.from(Float32Array.from(data));

/** The layer's tensors for one case: inputs, parameters, gradients, saved and scratch. */
class Layer {
  readonly x: Tensor;
  readonly params: MoeParams;
  readonly grads: MoeGrads;
  readonly saved: MoeSaved;
  readonly work: MoeWork;
  readonly out: Tensor;
  readonly dx: Tensor;
  private readonly owned: Tensor[] = [];

  constructor(
    readonly c: Case,
    data: Data,
    readonly dtype: FloatDType = 'float64',
  ) {
    const { N, D, F, E, k } = c;
    const P = N * k;
    const own = (t: Tensor): Tensor => (this.owned.push(t), t);
    const f = (shape: number[]): Tensor => own(Tensor.zeros(shape, dtype));
    const i = (shape: number[]): Tensor => own(Tensor.zeros(shape, 'int32'));
    this.x = own(tensor(data.x, [N, D], dtype));
    const params: Partial<Record<ParamKey, Tensor>> = {};
    const grads: MoeGrads = {};
    for (const [key, shape] of Object.entries(paramShapes(c)) as [ParamKey, number[]][]) {
      params[key] = own(tensor(data[key]!, shape, dtype));
      grads[key] = f(shape);
    }
    this.params = params as MoeParams;
    this.grads = grads;
    this.saved = {
      probs: f([N, E]),
      lse: f([N]),
      expert: i([N, k]),
      weight: f([N, k]),
      slotRow: i([N, k]),
      rowSlot: i([P]),
      offsets: i([E + 1]),
      counts: i([E]),
      xp: f([P, D]),
      a: f([P, F]),
      b: glu(c) ? f([P, F]) : null,
      h: f([P, F]),
      y: f([P, D]),
      aux: own(Tensor.zeros([2], 'float64')),
    };
    this.work = {
      dy: f([P, D]),
      dh: f([P, F]),
      da: f([P, F]),
      db: glu(c) ? f([P, F]) : null,
      dweight: f([N, k]),
      dlogits: f([N, E]),
    };
    this.out = f([N, D]);
    this.dx = f([N, D]);
  }

  forward(): number {
    return ops.moeForward(this.out, this.saved, this.x, this.params, options(this.c));
  }

  backward(dout: Tensor, auxGradScale = 1): void {
    ops.moeBackward(this.dx, this.grads, this.work, dout, this.saved, this.x, this.params, {
      ...options(this.c),
      auxGradScale,
    });
  }

  /** Per-expert dropped pairs, from counts and offsets. */
  dropped(): number[] {
    const off = this.saved.offsets.toArray();
    return Array.from(this.saved.counts.toArray(), (n, e) => n - (off[e + 1]! - off[e]!));
  }

  dispose(): void {
    for (const t of this.owned) t.dispose();
  }
}

// ---- the dense float64 reference: every expert on every token, masked by the routing ----

const GELU_K = Math.sqrt(2 / Math.PI);
const silu = (v: number): number => v / (1 + Math.exp(-v));
const ACT: Record<Exclude<Act, 'swiglu'>, (v: number) => number> = {
  relu: (v) => Math.max(v, 0),
  gelu: (v) => 0.5 * v * (1 + Math.tanh(GELU_K * (v + 0.044715 * v ** 3))),
};

/** Expert e applied to one input row. */
function expertRef(c: Case, d: Data, e: number, x: Float64Array): Float64Array {
  const { D, F } = c;
  const h = new Float64Array(F);
  for (let f = 0; f < F; f++) {
    let a = d.b1 ? d.b1[e * F + f]! : 0;
    for (let i = 0; i < D; i++) a += d.w1![(e * F + f) * D + i]! * x[i]!;
    if (glu(c)) {
      let b = d.b3 ? d.b3[e * F + f]! : 0;
      for (let i = 0; i < D; i++) b += d.w3![(e * F + f) * D + i]! * x[i]!;
      h[f] = silu(a) * b;
    } else {
      h[f] = ACT[act(c) as 'relu' | 'gelu'](a);
    }
  }
  const y = new Float64Array(D);
  for (let i = 0; i < D; i++) {
    let s = d.b2 ? d.b2[e * D + i]! : 0;
    for (let f = 0; f < F; f++) s += d.w2![(e * D + i) * F + f]! * h[f]!;
    y[i] = s;
  }
  return y;
}

interface Reference {
  out: Float64Array;
  expert: Int32Array;
  weight: Float64Array;
  counts: number[];
  dropped: number[];
  balance: number;
  z: number;
  weighted: number;
}

function reference(c: Case, d: Data): Reference {
  const { N, D, E, k } = c;
  const expert = new Int32Array(N * k);
  const weight = new Float64Array(N * k);
  const meanProb = new Float64Array(E);
  let z = 0;
  for (let n = 0; n < N; n++) {
    const logit = Array.from({ length: E }, (_, e) => {
      let s = d.gateBias ? d.gateBias[e]! : 0;
      for (let i = 0; i < D; i++) s += d.gateWeight![e * D + i]! * d.x[n * D + i]!;
      return s;
    });
    const m = Math.max(...logit);
    const sum = logit.reduce((s, l) => s + Math.exp(l - m), 0);
    const prob = logit.map((l) => Math.exp(l - m) / sum);
    const lse = m + Math.log(sum);
    z += lse * lse;
    prob.forEach((p, e) => (meanProb[e] = meanProb[e]! + p / N));
    const top = [...prob.keys()].sort((a, b) => logit[b]! - logit[a]! || a - b).slice(0, k);
    let w = top.map((e) => prob[e]!);
    if (c.router === 'topk_softmax') {
      const ex = top.map((e) => Math.exp(logit[e]! - logit[top[0]!]!));
      w = ex.map((v) => v / ex.reduce((s, u) => s + u, 0));
    } else if (c.renormalize) {
      const s = w.reduce((a, b) => a + b, 0);
      w = w.map((v) => v / s);
    }
    top.forEach((e, j) => {
      expert[n * k + j] = e;
      weight[n * k + j] = w[j]!;
    });
  }
  const capacity = c.capacityFactor ? Math.min(N, Math.ceil((c.capacityFactor * N * k) / E)) : N;
  const counts = new Array<number>(E).fill(0);
  const dropped = new Array<number>(E).fill(0);
  const kept = new Array<boolean>(N * k);
  for (let i = 0; i < N * k; i++) {
    const e = expert[i]!;
    kept[i] = counts[e]! < capacity;
    if (!kept[i]) dropped[e] = dropped[e]! + 1;
    counts[e] = counts[e]! + 1;
  }
  // Dense: every expert on every token, then the mask.
  const y = Array.from({ length: E }, (_, e) =>
    Array.from({ length: N }, (_, n) => expertRef(c, d, e, d.x.subarray(n * D, (n + 1) * D))),
  );
  const out = new Float64Array(N * D);
  for (let n = 0; n < N; n++) {
    for (let e = 0; e < E; e++) {
      let mask = 0;
      for (let j = 0; j < k; j++) if (expert[n * k + j] === e && kept[n * k + j]) mask = weight[n * k + j]!;
      for (let i = 0; i < D; i++) out[n * D + i] = out[n * D + i]! + mask * y[e]![n]![i]!;
    }
  }
  let balance = 0;
  for (let e = 0; e < E; e++) balance += (counts[e]! / (N * k)) * meanProb[e]!;
  balance *= E;
  z = N > 0 ? z / N : 0;
  const weighted = (c.auxLossCoef ?? 0) * balance + (c.zLossCoef ?? 0) * z;
  return { out, expert, weight, counts, dropped, balance, z, weighted };
}

const TOL: Record<FloatDType, Tolerance> = {
  float64: { atol: 1e-12, rtol: 1e-10 },
  // float32 GEMMs over D, F ≤ 256 and a float32 softmax: relative error ~1e-6 of the row's magnitude.
  float32: { atol: 2e-5, rtol: 2e-4 },
};

function roundedData(d: Data, dtype: FloatDType): Data {
  return Object.fromEntries(Object.entries(d).map(([key, v]) => [key, rounded(v, dtype)])) as Data;
}

function expectMatchesReference(c: Case, dtype: FloatDType, seed = 1): void {
  const data = roundedData(makeData(c, seed), dtype);
  const layer = new Layer(c, data, dtype);
  const weighted = layer.forward();
  const ref = reference(c, data);
  const tol = TOL[dtype];
  expect(Array.from(layer.saved.expert.toArray())).toEqual(Array.from(ref.expert));
  expectClose(values(layer.saved.weight), ref.weight, tol, 'weight');
  expectClose(values(layer.out), ref.out, tol, 'out');
  expect(Array.from(layer.saved.counts.toArray())).toEqual(ref.counts);
  expect(layer.dropped()).toEqual(ref.dropped);
  expectClose(values(layer.saved.aux), [ref.balance, ref.z], tol, 'aux');
  expectClose([weighted], [ref.weighted], tol, 'weighted aux');
  layer.dispose();
}

const FORWARD_CASES: [string, Case][] = [
  ['E=4 k=2 swiglu, biases', { N: 13, D: 7, F: 11, E: 4, k: 2, bias: true, routerBias: true, auxLossCoef: 0.01, zLossCoef: 0.001 }],
  ['E=1 k=1, one token', { N: 1, D: 5, F: 3, E: 1, k: 1, auxLossCoef: 0.1 }],
  ['E=8 k=2 topk_softmax relu', { N: 31, D: 9, F: 6, E: 8, k: 2, router: 'topk_softmax', activation: 'relu', zLossCoef: 0.5 }],
  ['E=8 k=1 renormalised gelu', { N: 17, D: 8, F: 13, E: 8, k: 1, renormalize: true, activation: 'gelu', routerBias: true }],
  ['E=4 k=2 capacity 0.6, renormalised', { N: 29, D: 6, F: 5, E: 4, k: 2, renormalize: true, capacityFactor: 0.6, bias: true }],
  ['E=8 k=2 topk_softmax capacity 1', { N: 67, D: 16, F: 24, E: 8, k: 2, router: 'topk_softmax', capacityFactor: 1, bias: true, auxLossCoef: 1, zLossCoef: 1 }],
  ['dead expert', { N: 19, D: 4, F: 7, E: 4, k: 2, routerBias: true, deadExpert: 2, auxLossCoef: 0.3 }],
];

describe('moeForward matches the dense reference', () => {
  for (const dtype of ['float64', 'float32'] as const) {
    test.each(FORWARD_CASES)(`${dtype}: %s`, (_name, c) => expectMatchesReference(c, dtype));
  }

  test('large experts (each GEMM spread over the pool: rows · F · D ≥ 2^25), float32', () => {
    expectMatchesReference({ N: 256, D: 192, F: 704, E: 2, k: 2, bias: true, routerBias: true, auxLossCoef: 0.01 }, 'float32');
  });

  test('ties go to the lower expert index', () => {
    const c: Case = { N: 5, D: 3, F: 4, E: 4, k: 2 };
    for (const router of ['softmax_topk', 'topk_softmax'] as const) {
      const data = makeData(c, 2);
      data.gateWeight!.fill(0); // every logit 0: all experts tie
      const layer = new Layer({ ...c, router }, data);
      layer.forward();
      expect(Array.from(layer.saved.expert.toArray())).toEqual([0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
      expectClose(values(layer.saved.weight), new Array(10).fill(router === 'softmax_topk' ? 0.25 : 0.5), TOL.float64, 'weight');
      layer.dispose();
    }
  });

  test('capacity drops the later tokens of an overfull expert; they pass through with zero output', () => {
    const c: Case = { N: 10, D: 4, F: 5, E: 4, k: 1, routerBias: true, capacityFactor: 1 };
    const data = makeData(c, 3);
    data.gateBias!.set([50, 0, 0, 0]); // every token picks expert 0; capacity ceil(10·1/4) = 3
    const layer = new Layer(c, data);
    layer.forward();
    expect(Array.from(layer.saved.counts.toArray())).toEqual([10, 0, 0, 0]);
    expect(layer.dropped()).toEqual([7, 0, 0, 0]);
    expect(Array.from(layer.saved.slotRow.toArray())).toEqual([0, 1, 2, -1, -1, -1, -1, -1, -1, -1]);
    const out = values(layer.out);
    expect(out.subarray(3 * 4).every((v) => v === 0)).toBe(true);
    expect(out.subarray(0, 3 * 4).every((v) => v !== 0)).toBe(true);
    layer.dispose();
  });

  test('no tokens: empty output and zero auxiliary losses', () => {
    const c: Case = { N: 0, D: 4, F: 5, E: 4, k: 2, auxLossCoef: 1, zLossCoef: 1 };
    const layer = new Layer(c, makeData(c, 4));
    expect(layer.forward()).toBe(0);
    const dout = Tensor.zeros([0, 4], 'float64');
    layer.backward(dout);
    expect(Array.from(layer.grads.gateWeight!.toArray()).every((v) => v === 0)).toBe(true);
    dout.dispose();
    layer.dispose();
  });
});

// ---- gradients by finite differences (float64) ----

/** Checks d(loss)/d(every input and parameter), loss = Σ out ⊙ w + the weighted auxiliary loss. */
function gradcheck(c: Case, seed: number, outputWeight = true): void {
  const data = makeData(c, seed);
  const layer = new Layer(c, data);
  const w = new Rng(seed + 100).normal(c.N * c.D).map((v) => (outputWeight ? v : 0));
  const dout = Tensor.from(w, [c.N, c.D]);
  const loss = (): number => layer.forward() + dot(values(layer.out), w);
  loss();
  layer.backward(dout);
  const targets: [string, NativeTensor, NativeTensor][] = [['x', layer.x, layer.dx]];
  for (const key of PARAM_KEYS) {
    const p = layer.params[key];
    if (p) targets.push([key, p, layer.grads[key]!]);
  }
  for (const [name, t, g] of targets) {
    const v = values(t);
    expectGradient(values(g), () => (t.copyFrom(v), loss()), v, name);
    t.copyFrom(v);
  }
  if (c.deadExpert !== undefined) {
    // The dead expert got no tokens: its weights have no gradient, but its gate row does (through P_e and z).
    expect(Array.from(layer.saved.counts.toArray())[c.deadExpert]).toBe(0);
    const F = c.F, D = c.D;
    const w1 = values(layer.grads.w1!).subarray(c.deadExpert * F * D, (c.deadExpert + 1) * F * D);
    expect(w1.every((v) => v === 0)).toBe(true);
  }
  dout.dispose();
  layer.dispose();
}

const COEF = { auxLossCoef: 0.7, zLossCoef: 0.3 };
const GRAD_CASES: [string, Case][] = [
  ['E=1 k=1 swiglu', { N: 5, D: 4, F: 3, E: 1, k: 1, bias: true, routerBias: true, ...COEF }],
  ['E=4 k=1 relu, dead expert', { N: 9, D: 5, F: 6, E: 4, k: 1, activation: 'relu', bias: true, routerBias: true, deadExpert: 3, ...COEF }],
  ['E=4 k=2 swiglu renormalised, capacity drops', { N: 11, D: 5, F: 4, E: 4, k: 2, renormalize: true, capacityFactor: 0.5, bias: true, routerBias: true, ...COEF }],
  ['E=4 k=2 topk_softmax gelu, dead expert', { N: 7, D: 3, F: 5, E: 4, k: 2, router: 'topk_softmax', activation: 'gelu', routerBias: true, deadExpert: 1, ...COEF }],
  ['E=8 k=1 swiglu no biases', { N: 13, D: 4, F: 3, E: 8, k: 1, ...COEF }],
  ['E=8 k=2 topk_softmax swiglu, capacity drops', { N: 10, D: 3, F: 4, E: 8, k: 2, router: 'topk_softmax', capacityFactor: 0.75, bias: true, routerBias: true, ...COEF }],
  ['E=8 k=2 softmax_topk relu', { N: 7, D: 4, F: 3, E: 8, k: 2, activation: 'relu', bias: true, ...COEF }],
];

describe('moeBackward matches finite differences (float64)', () => {
  test.each(GRAD_CASES)('%s', (_name, c) => gradcheck(c, 7));

  test.each([
    ['softmax_topk', { N: 9, D: 4, F: 3, E: 4, k: 2, routerBias: true, capacityFactor: 0.5, ...COEF }],
    ['topk_softmax', { N: 9, D: 4, F: 3, E: 8, k: 2, router: 'topk_softmax' as const, routerBias: true, ...COEF }],
  ])('auxiliary losses alone (%s): value and gradient', (_name, c) => {
    gradcheck(c, 11, false);
  });

  test('backward accumulates, and auxGradScale scales only the auxiliary gradients', () => {
    const c: Case = { N: 13, D: 5, F: 6, E: 4, k: 2, bias: true, routerBias: true, ...COEF };
    const layer = new Layer(c, makeData(c, 5));
    const dout = Tensor.from(new Rng(6).normal(c.N * c.D), [c.N, c.D]);
    layer.forward();
    layer.backward(dout);
    const once = [values(layer.dx), values(layer.grads.gateWeight!), values(layer.grads.w1!)];
    layer.backward(dout);
    const twice = [values(layer.dx), values(layer.grads.gateWeight!), values(layer.grads.w1!)];
    twice.forEach((t, i) => expectClose(t, once[i]!.map((v) => 2 * v), TOL.float64, 'accumulated'));
    // Gate gradient = routing part + aux part: with auxGradScale s, it is routing + s·aux.
    const gate = (scale: number): Float64Array => {
      layer.grads.gateWeight!.fill(0);
      layer.backward(dout, scale);
      return values(layer.grads.gateWeight!);
    };
    const g0 = gate(0), g1 = gate(1), g3 = gate(3);
    expectClose(g3, g0.map((v, i) => v + 3 * (g1[i]! - v)), TOL.float64, 'auxGradScale');
    expect(g1.some((v, i) => Math.abs(v - g0[i]!) > 1e-6)).toBe(true);
    dout.dispose();
    layer.dispose();
  });
});

// ---- determinism ----

function withThreads<T>(threads: number, fn: () => T): T {
  const prev = ops.numThreads();
  ops.setNumThreads(threads);
  try {
    return fn();
  } finally {
    ops.setNumThreads(prev);
  }
}

/** Output, dx and every gradient after one forward and backward, as raw float32 bits. */
function runBits(c: Case): Uint32Array[] {
  const layer = new Layer(c, makeData(c, 9), 'float32');
  const dout = tensor(normal(c.N * c.D, 10), [c.N, c.D], 'float32');
  layer.forward();
  layer.backward(dout);
  const bits = [layer.out, layer.dx, ...PARAM_KEYS.flatMap((k) => (layer.grads[k] ? [layer.grads[k]!] : []))].map(
    (t) => new Uint32Array((t.toArray() as Float32Array).buffer),
  );
  dout.dispose();
  layer.dispose();
  return bits;
}

describe('determinism', () => {
  test.each([
    ['small experts (shared out over the pool)', { N: 257, D: 48, F: 80, E: 8, k: 2, bias: true, routerBias: true, capacityFactor: 1.1, ...COEF }],
    ['large experts (each GEMM over the pool)', { N: 512, D: 128, F: 640, E: 2, k: 2, bias: true, routerBias: true, ...COEF }],
  ])('%s: the same bits twice at 2 threads, and at 1 thread', (_name, c) => {
    const first = withThreads(2, () => runBits(c));
    const second = withThreads(2, () => runBits(c));
    const single = withThreads(1, () => runBits(c));
    const same = (a: Uint32Array[], b: Uint32Array[]): boolean =>
      a.length === b.length && a.every((t, i) => t.length === b[i]!.length && t.every((v, j) => v === b[i]![j]));
    expect(same(second, first)).toBe(true);
    expect(same(single, first)).toBe(true);
  });
});

// ---- bad input ----

describe('bad input', () => {
  const c: Case = { N: 6, D: 4, F: 5, E: 4, k: 2, bias: true, routerBias: true };
  let layer: Layer;
  beforeEach(() => {
    layer = new Layer(c, makeData(c, 12));
  });
  afterEach(() => layer.dispose());
  const fwd = (over: { out?: unknown; saved?: unknown; x?: unknown; params?: unknown; opts?: unknown }): unknown =>
    (ops.moeForward as (...a: unknown[]) => number)(
      over.out ?? layer.out,
      over.saved ?? layer.saved,
      over.x ?? layer.x,
      over.params ?? layer.params,
      over.opts ?? options(c),
    );

  test('shapes', () => {
    const x1 = Tensor.zeros([24], 'float64');
    expect(() => fwd({ x: x1 })).toThrow(/moeForward: argument 'x' must have 2 dimensions/);
    const w1 = Tensor.zeros([4, 5, 3], 'float64');
    expect(() => fwd({ params: { ...layer.params, w1 } })).toThrow(/'params.w1' must have shape \[4, 5, 4\]/);
    const probs = Tensor.zeros([6, 3], 'float64');
    expect(() => fwd({ saved: { ...layer.saved, probs } })).toThrow(/'saved.probs' must have shape \[6, 4\]/);
    const out = Tensor.zeros([6, 5], 'float64');
    expect(() => fwd({ out })).toThrow(/'out' must have shape \[6, 4\]/);
    [x1, w1, probs, out].forEach((t) => t.dispose());
  });

  test('dtypes', () => {
    const w2 = Tensor.zeros([4, 4, 5], 'float32');
    expect(() => fwd({ params: { ...layer.params, w2 } })).toThrow(/'params.w2' must be float64, got float32/);
    const expert = Tensor.zeros([6, 2], 'float64');
    expect(() => fwd({ saved: { ...layer.saved, expert } })).toThrow(/'saved.expert' must be int32/);
    const xi = Tensor.zeros([6, 4], 'int32');
    expect(() => fwd({ x: xi })).toThrow(/'x' must be float32 or float64/);
    [w2, expert, xi].forEach((t) => t.dispose());
  });

  test('options: topK > E, non-finite or negative coefficients, unknown names', () => {
    expect(() => fwd({ opts: { ...options(c), topK: 5 } })).toThrow(/option 'topK' must be an integer in \[1, 4\]/);
    expect(() => fwd({ opts: { ...options(c), topK: undefined } })).toThrow(/option 'topK' is required/);
    expect(() => fwd({ opts: { ...options(c), auxLossCoef: NaN } })).toThrow(/option 'auxLossCoef' must be finite/);
    expect(() => fwd({ opts: { ...options(c), zLossCoef: Infinity } })).toThrow(/option 'zLossCoef' must be finite/);
    expect(() => fwd({ opts: { ...options(c), zLossCoef: -1 } })).toThrow(/'zLossCoef' must be >= 0/);
    expect(() => fwd({ opts: { ...options(c), capacityFactor: Infinity } })).toThrow(/'capacityFactor' must be finite/);
    expect(() => fwd({ opts: { ...options(c), capacityFactor: 0 } })).toThrow(/'capacityFactor' must be > 0/);
    expect(() => fwd({ opts: { ...options(c), router: 'top1' } })).toThrow(/option 'router' must be one of/);
    expect(() => fwd({ opts: { ...options(c), topk: 2 } })).toThrow(/unknown option 'topk'/);
    expect(() => fwd({ saved: { ...layer.saved, extra: layer.out } })).toThrow(/unknown key 'saved.extra'/);
  });

  test('missing, misplaced and wrongly typed arguments', () => {
    expect(() => fwd({ params: { ...layer.params, w3: null } })).toThrow(/'params.w3' is required/);
    expect(() => fwd({ opts: { ...options(c), activation: 'relu' } })).toThrow(/'params.w3' must be absent/);
    expect(() => fwd({ params: 3 })).toThrow(/argument 'params' must be an object of tensors/);
    expect(() => fwd({ params: { ...layer.params, w1: [1, 2] } })).toThrow(/'params.w1' must be a Tensor/);
    expect(() => fwd({ out: layer.x })).toThrow(/must not share memory/);
    expect(() => fwd({ saved: { ...layer.saved, y: layer.saved.xp } })).toThrow(/must not share memory/);
  });

  test('disposed tensors', () => {
    const x = tensor(makeData(c, 12).x, [6, 4], 'float64');
    x.dispose();
    expect(() => fwd({ x })).toThrow(/argument 'x' is a disposed tensor/);
    const w1 = Tensor.zeros([4, 5, 4], 'float64');
    w1.dispose();
    expect(() => fwd({ params: { ...layer.params, w1 } })).toThrow(/'params.w1' is a disposed tensor/);
  });

  test('backward: foreign routing, gradients without parameters', () => {
    layer.forward();
    const dout = Tensor.zeros([6, 4], 'float64');
    const bwd = (saved: MoeSaved, grads: MoeGrads): void =>
      ops.moeBackward(layer.dx, grads, layer.work, dout, saved, layer.x, layer.params, options(c));
    const offsets = Tensor.from(new Int32Array([0, 5, 3, 9, 12]), [5]);
    expect(() => bwd({ ...layer.saved, offsets }, layer.grads)).toThrow(/does not hold a forward's routing: offsets decrease/);
    const slotRow = Tensor.from(new Int32Array(12).fill(40), [6, 2]);
    expect(() => bwd({ ...layer.saved, slotRow }, layer.grads)).toThrow(/slotRow out of range/);
    const g = Tensor.zeros([4, 5, 4], 'float64');
    const params = { ...layer.params, w3: g };
    expect(() =>
      ops.moeBackward(layer.dx, layer.grads, layer.work, dout, layer.saved, layer.x, params, { ...options(c), activation: 'relu' }),
    ).toThrow(/'params.w3' must be absent/);
    const { b1: _unused, ...noB1 } = layer.params;
    expect(() =>
      ops.moeBackward(layer.dx, layer.grads, layer.work, dout, layer.saved, layer.x, noB1, options(c)),
    ).toThrow(/'grads.b1' has no parameter/);
    expect(() => bwd(layer.saved, { ...layer.grads, w1: layer.x })).toThrow(/'grads.w1' must have shape/);
    expect(() => bwd(layer.saved, { ...layer.grads, gateWeight: layer.grads.b2 })).toThrow(/must not share memory/);
    [dout, offsets, slotRow, g].forEach((t) => t.dispose());
  });

  test('backward recorded (runAsync): foreign routing is caught when the step runs, before any kernel reads it', async () => {
    layer.forward();
    const dout = Tensor.zeros([6, 4], 'float64');
    const slotRow = Tensor.from(new Int32Array(12).fill(40), [6, 2]);
    const dxBefore = layer.dx.toArray();
    await expect(
      runAsync(() => ops.moeBackward(layer.dx, layer.grads, layer.work, dout, { ...layer.saved, slotRow }, layer.x, layer.params, options(c))),
    ).rejects.toThrow(/moeBackward \(recorded step 1 of 1\): 'saved' does not hold a forward's routing: slotRow out of range at 0/);
    expect(layer.dx.toArray()).toEqual(dxBefore);
    [dout, slotRow].forEach((t) => t.dispose());
  });
});

describe('async', () => {
  test('moeForwardAsync and moeBackwardAsync give the results of the sync calls', async () => {
    const c: Case = { N: 23, D: 6, F: 7, E: 4, k: 2, bias: true, routerBias: true, capacityFactor: 0.8, ...COEF };
    const data = makeData(c, 13);
    const sync = new Layer(c, data);
    const asyn = new Layer(c, data);
    const dout = Tensor.from(new Rng(14).normal(c.N * c.D), [c.N, c.D]);
    const aux = sync.forward();
    sync.backward(dout);
    const auxAsync = await ops.moeForwardAsync(asyn.out, asyn.saved, asyn.x, asyn.params, options(c));
    await ops.moeBackwardAsync(asyn.dx, asyn.grads, asyn.work, dout, asyn.saved, asyn.x, asyn.params, options(c));
    expect(auxAsync).toBe(aux);
    expect(values(asyn.out)).toEqual(values(sync.out));
    expect(values(asyn.dx)).toEqual(values(sync.dx));
    expect(values(asyn.grads.w2!)).toEqual(values(sync.grads.w2!));
    dout.dispose();
    sync.dispose();
    asyn.dispose();
  });
});

// ---- the module ----

describe('MoE module', () => {
  const config = {
    dModel: 6,
    dFf: 5,
    nExperts: 4,
    topK: 2,
    router: 'softmax_topk' as const,
    renormalize: false,
    activation: 'swiglu' as const,
    bias: true,
    routerBias: true,
    capacityFactor: 0.75,
    auxLossCoef: 0.01,
    zLossCoef: 0.001,
    dtype: 'float64' as const,
  };

  test('per-expert parameters are named views into the [E, ...] blocks', () => {
    const moe = new MoE('layers.0.moe', config);
    const names = moe.parameters().map((p) => p.name);
    expect(names.slice(0, 8)).toEqual([
      'layers.0.moe.gate.weight',
      'layers.0.moe.gate.bias',
      'layers.0.moe.experts.0.w1.weight',
      'layers.0.moe.experts.0.w1.bias',
      'layers.0.moe.experts.0.w2.weight',
      'layers.0.moe.experts.0.w2.bias',
      'layers.0.moe.experts.0.w3.weight',
      'layers.0.moe.experts.0.w3.bias',
    ]);
    expect(names).toHaveLength(2 + 4 * 6);
    const byName = new Map(moe.parameters().map((p) => [p.name, p]));
    expect(byName.get('layers.0.moe.experts.2.w2.weight')!.value.shape).toEqual([6, 5]);
    // Writing expert 2's w2 through its Parameter changes only expert 2's output rows.
    moe.init(3, 0.02);
    const x = Tensor.from(new Rng(15).normal(8 * 6), [2, 4, 6]);
    const before = values(moe.forward(x));
    const expert = Array.from(moe['saved']!.expert.toArray());
    byName.get('layers.0.moe.experts.2.w2.bias')!.value.fill(1);
    const after = values(moe.forward(x));
    for (let n = 0; n < 8; n++) {
      const uses2 = expert[2 * n] === 2 || expert[2 * n + 1] === 2;
      const changed = before.subarray(n * 6, n * 6 + 6).some((v, i) => v !== after[n * 6 + i]);
      if (!uses2) expect(changed).toBe(false);
    }
    expect(before).not.toEqual(after);
    // Gradients land in the views too.
    moe.zeroGrad();
    moe.backward(Tensor.from(new Rng(16).normal(8 * 6), [2, 4, 6]));
    const g = byName.get('layers.0.moe.experts.1.w1.weight')!.grad!;
    expect(values(g).some((v) => v !== 0)).toBe(true);
    x.dispose();
    moe.dispose();
  });

  test('stats() and auxLoss() describe the last forward', () => {
    const moe = new MoE('moe', config);
    moe.init(4, 0.02);
    const x = Tensor.from(new Rng(17).normal(9 * 6), [9, 6]);
    moe.forward(x);
    const s = moe.stats();
    expect(s.tokens).toBe(9);
    expect(s.counts.reduce((a, b) => a + b, 0)).toBe(18);
    const capacity = Math.ceil((0.75 * 9 * 2) / 4);
    expect(s.dropped).toEqual(s.counts.map((n) => Math.max(0, n - capacity)));
    expect(s.loadFraction.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(s.auxLoss).toBeCloseTo(0.01 * s.loadBalancingLoss + 0.001 * s.zLoss, 15);
    expect(moe.auxLoss()).toBe(s.auxLoss);
    expect(s.loadBalancingLoss).toBeGreaterThan(0);
    x.dispose();
    moe.dispose();
  });

  test('configuration errors', () => {
    expect(() => new MoE('moe', { ...config, topK: 5 })).toThrow(/topK must be an integer in \[1, 4\]/);
    const moe = new MoE('moe', config);
    expect(() => moe.backward(Tensor.zeros([1, 6], 'float64'))).toThrow(/before forward/);
    expect(() => moe.stats()).toThrow(/before forward/);
    moe.dispose();
  });
});
