/**
 * Fused attention under the matmul precision (ops.setMatmulPrecision), as a bf16 FlashAttention-2: every input of the
 * five products is rounded (round to nearest even: 7 mantissa bits bf16, 10 tf32) and the sums stay float32.
 *   forward   S = round(Q)·round(K)ᵀ·scale; the softmax statistics (max, sum, lse) from the unrounded probabilities
 *             p = exp(S - max); O = Σ round(p)·round(V) / Σ p
 *   backward  P = exp(S - lse), dP = round(dO)·round(V)ᵀ, D_i = rowsum(dO ⊙ O) unrounded, dS = P ⊙ (dP - D_i)
 *             from the unrounded P; dV = Σ round(P)ᵀ·round(dO), dK = scale·Σ round(dS)ᵀ·round(Q),
 *             dQ = scale·Σ round(dS)·round(K)
 * The reference below computes exactly that in float64 (bits = 23 rounds nothing: the fp32 kernel is held to the same
 * reference) and a tolerance per element:
 *   float32 noise  each product and sum of n terms in float32 is within (n + 4)·u·Σ|terms| (u = 2^-24) of float64
 *   rounding ties  the kernel rounds its own float32 p, P or dS, which differs from the reference's float64 value by
 *                  at most e (the float32 noise bound of that quantity); where [x - e, x + e] holds a rounding
 *                  boundary the kernel may round the other way, so that element's slack is the gap between
 *                  round(x - e) and round(x + e) (rounding is monotone), times what it multiplies. Elsewhere the
 *                  kernel's rounded value equals the reference's exactly.
 *   running max    the forward rounds p relative to the running max of its key tile (64 keys on the CPU), not the
 *                  final max, so where a row's keys span more than one tile each round(p) may differ by up to
 *                  p·2^-bits (half an ulp on each side): only those rows get that slack.
 * So the check is tight wherever the kernel's rounding is determined: leaving out the rounding of P or dS (mutants
 * of the reference below) fails it, and so does the fp32 kernel against the bf16 reference.
 */
import { ops, Tensor } from '../../lib';
import type { MatmulPrecision } from '../../lib';
import type { AttentionOptions } from '../../lib/native/types/attention';
import { supportedIsas, withIsa } from '../helpers/isa';
import { roundRef } from '../helpers/precision';
import { Rng } from '../helpers/random';

const U = 2 ** -24; // float32 unit roundoff
const CPU_KEY_TILE = 64; // csrc/kernels/attention.cc kKeyTile: rows whose keys span more tiles round p against a running max
const BITS: Record<MatmulPrecision, number> = { fp32: 23, tf32: 10, bf16: 7 };

const initialThreads = ops.numThreads();
afterEach(() => {
  ops.setMatmulPrecision('fp32');
  ops.setNumThreads(initialThreads);
});

/** Q, O, dO are [B, Hq, Tq, D]; K, V are [B, Hkv, C, D] with the first kvLength rows in use. */
interface Case {
  B: number;
  Hq: number;
  Hkv: number;
  Tq: number;
  C: number;
  kvLength: number;
  D: number;
  opts: AttentionOptions;
}

interface Inputs {
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  dout: Float64Array;
}

interface Results {
  out: Float64Array;
  lse: Float64Array;
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

/** Reference values and, per element, the tolerance. */
interface Reference {
  want: Results;
  tol: Results;
}

const cs = (B: number, Hq: number, Hkv: number, Tq: number, C: number, kvLength: number, D: number, opts: AttentionOptions): Case => ({
  B, Hq, Hkv, Tq, C, kvLength, D, opts: { ...opts, kvLength },
});

// Awkward sizes: 1, primes, head dims off the vector width (3, 5, 17) and on it (64), GQA, every mask, caches.
const CASES: [string, Case][] = [
  ['causal Tq = Tk = 1, D = 3', cs(1, 1, 1, 1, 1, 1, 3, { mask: 'causal' })],
  ['causal T = 7, D = 5, B = 2', cs(2, 2, 2, 7, 7, 7, 5, { mask: 'causal' })],
  ['causal T = 13, D = 17, GQA 4:2', cs(1, 4, 2, 13, 13, 13, 17, { mask: 'causal' })],
  ['causal T = 37, D = 64, GQA 2:1', cs(1, 2, 1, 37, 37, 37, 64, { mask: 'causal' })],
  ['sliding W = 5, T = 37, D = 17, GQA 3:1', cs(1, 3, 1, 37, 37, 37, 17, { mask: 'sliding_window', window: 5 })],
  ['none (cross) Tq = 7, Tk = 13, D = 3, B = 2, GQA 2:1', cs(2, 2, 1, 7, 13, 13, 3, { mask: 'none' })],
  ['none (cross) Tq = 13, Tk = 37, D = 5', cs(1, 2, 2, 13, 37, 37, 5, { mask: 'none' })],
  ['decoding: Tq = 1 at qOffset 36, kvLength 37 of a 50-row cache, GQA 4:1, D = 17', cs(1, 4, 1, 1, 50, 37, 17, { mask: 'causal', qOffset: 36 })],
  ['decoding: sliding W = 7, Tq = 2 at qOffset 11, kvLength 13 of 20, D = 5', cs(1, 2, 2, 2, 20, 13, 5, { mask: 'sliding_window', window: 7, qOffset: 11 })],
  ['cache: Tq = 3 at qOffset 40, kvLength 90 of 100, GQA 2:1, D = 13', cs(1, 2, 1, 3, 100, 90, 13, { mask: 'causal', qOffset: 40 })],
  ['several key tiles: causal T = 131, D = 17, GQA 2:1', cs(1, 2, 1, 131, 131, 131, 17, { mask: 'causal' })],
  ['several key tiles: sliding W = 70, T = 150, D = 5', cs(1, 1, 1, 150, 150, 150, 5, { mask: 'sliding_window', window: 70 })],
  ['several key tiles: none (cross) Tq = 3, Tk = 131, D = 13, B = 2', cs(2, 2, 2, 3, 131, 131, 13, { mask: 'none' })],
];

/** Normal inputs rounded to float32 (the kernel's own values); cache rows past kvLength are NaN (never read). */
function inputs(c: Case, seed: number): Inputs {
  const rng = new Rng(seed);
  const f32 = (n: number) => Float64Array.from(Float32Array.from(rng.normal(n)));
  const nq = c.B * c.Hq * c.Tq * c.D, nk = c.B * c.Hkv * c.C * c.D;
  const x = { q: f32(nq), k: f32(nk), v: f32(nk), dout: f32(nq) };
  for (let bh = 0; bh < c.B * c.Hkv; bh++) {
    x.k.fill(NaN, (bh * c.C + c.kvLength) * c.D, (bh + 1) * c.C * c.D);
    x.v.fill(NaN, (bh * c.C + c.kvLength) * c.D, (bh + 1) * c.C * c.D);
  }
  return x;
}

/** The kernel: forward, then backward (into zeros) from its own O and lse. */
function kernel(c: Case, x: Inputs, dtype: 'float32' | 'float64'): Results {
  const t = (a: Float64Array, shape: number[]) => Tensor.from(dtype === 'float64' ? a : Float32Array.from(a), shape);
  const qs = [c.B, c.Hq, c.Tq, c.D], ks = [c.B, c.Hkv, c.C, c.D];
  const Q = t(x.q, qs), K = t(x.k, ks), V = t(x.v, ks), dO = t(x.dout, qs);
  const O = Tensor.zeros(qs, dtype), L = Tensor.zeros([c.B, c.Hq, c.Tq], dtype);
  const dQ = Tensor.zeros(qs, dtype), dK = Tensor.zeros(ks, dtype), dV = Tensor.zeros(ks, dtype);
  ops.attentionForward(O, L, Q, K, V, c.opts);
  ops.attentionBackward(dQ, dK, dV, dO, Q, K, V, O, L, c.opts);
  const f64 = (a: Tensor) => Float64Array.from(a.toArray());
  const r = { out: f64(O), lse: f64(L), dq: f64(dQ), dk: f64(dK), dv: f64(dV) };
  [Q, K, V, dO, O, L, dQ, dK, dV].forEach((a) => a.dispose());
  return r;
}

/** round(x) and how far the kernel's rounding of any value within e of x can be from it (0 away from ties). */
function roundWithin(x: number, e: number, bits: number): [number, number] {
  const r = roundRef(x, bits), lo = roundRef(x - e, bits), hi = roundRef(x + e, bits);
  return [r, hi - r > r - lo ? hi - r : r - lo];
}

interface Mutant {
  keepP?: boolean; // P (forward and backward) enters its product unrounded
  keepDS?: boolean; // dS enters its products unrounded
}

/**
 * The float64 reference of the kernel under `bits` (module comment). Backward takes the kernel's O and lse as its
 * inputs, as the kernel's backward does, so it is checked on its own.
 */
function reference(c: Case, x: Inputs, bits: number, kern: Results, mutant: Mutant = {}): Reference {
  const { B, Hq, Hkv, Tq, C, kvLength: Tk, D } = c;
  const g = Hq / Hkv, mask = c.opts.mask, window = c.opts.window ?? Infinity;
  const scale = c.opts.scale ?? 1 / Math.sqrt(D);
  const qOffset = mask === 'none' ? 0 : (c.opts.qOffset ?? Tk - Tq);
  const rnd = (a: Float64Array) => a.map((v) => roundRef(v, bits));
  const q = rnd(x.q), k = rnd(x.k), v = rnd(x.v), dout = rnd(x.dout);
  const zq = () => new Float64Array(q.length), zk = () => new Float64Array(k.length);
  const want: Results = { out: zq(), lse: new Float64Array(B * Hq * Tq), dq: zq(), dk: zk(), dv: zk() };
  const tol: Results = { out: zq(), lse: new Float64Array(B * Hq * Tq), dq: zq(), dk: zk(), dv: zk() };
  const absK = zk(), absV = zk(); // Σ|terms| of each dK and dV sum (float32 noise below)
  const s = new Float64Array(Tk), es = new Float64Array(Tk), pr = new Float64Array(Tk), slack = new Float64Array(Tk);
  const ds = new Float64Array(Tk), dslack = new Float64Array(Tk);
  const abs = (a: number) => (a < 0 ? -a : a); // plain operators: Math.abs is slow under jest
  const rows = Tq * g; // rows adding into one dK or dV element, at most

  for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) for (let t = 0; t < Tq; t++) {
    const row = (b * Hq + h) * Tq + t, qi = row * D, kv = (b * Hkv + Math.floor(h / g)) * C * D;
    const pos = qOffset + t;
    const lo = mask === 'none' ? 0 : Math.max(0, pos - window + 1), hi = mask === 'none' ? Tk : pos + 1;
    const n = hi - lo;
    // S, and the float32 bound of each score: D products summed, the scale (and log2 e) folded into an operand
    let m = -Infinity, em = 0;
    for (let j = lo; j < hi; j++) {
      let acc = 0, a = 0;
      for (let d = 0; d < D; d++) {
        const p = q[qi + d]! * k[kv + j * D + d]!;
        acc += p;
        a += abs(p);
      }
      s[j] = acc * scale;
      es[j] = (D + 4) * U * a * scale;
      if (s[j]! > m) m = s[j]!;
      if (es[j]! > em) em = es[j]!;
    }
    // forward: p = exp(S - max) (the kernel's exp2 adds about 4u, the subtraction u·|S - max|)
    const singleTile = Tk <= CPU_KEY_TILE;
    let l = 0, erel = 0;
    for (let j = lo; j < hi; j++) {
      const p = Math.exp(s[j]! - m), ep = es[j]! + em + 4 * U + 2 * U * abs(s[j]! - m);
      l += p;
      if (ep > erel) erel = ep;
      if (mutant.keepP) [pr[j], slack[j]] = [p, 0];
      else if (singleTile) [pr[j], slack[j]] = roundWithin(p, p * ep, bits);
      else [pr[j], slack[j]] = [roundRef(p, bits), p * 2 ** -bits + 2 * p * ep];
    }
    want.lse[row] = m + Math.log(l);
    const el = erel + (n + D + 4) * U; // relative bound of l, and of the float32 sums and rescales of O
    tol.lse[row] = em + el + 4 * U * (1 + abs(want.lse[row]!));
    for (let d = 0; d < D; d++) {
      let o = 0, a = 0, sl = 0;
      for (let j = lo; j < hi; j++) {
        const vj = v[kv + j * D + d]!;
        o += pr[j]! * vj;
        a += abs(pr[j]! * vj);
        sl += slack[j]! * abs(vj);
      }
      want.out[qi + d] = o / l;
      tol.out[qi + d] = (sl + a * el) / l;
    }

    // backward from the kernel's O and lse: P = exp(S - lse), dP = dO·Vᵀ, dS = P ⊙ (dP - D_i)
    const lse = kern.lse[row]!;
    let di = 0;
    for (let d = 0; d < D; d++) di += x.dout[qi + d]! * kern.out[qi + d]!;
    const edi = 2 * U * abs(di);
    for (let j = lo; j < hi; j++) {
      const P = Math.exp(s[j]! - lse), eP = P * (es[j]! + 4 * U + 2 * U * (abs(s[j]! - lse) + abs(lse)));
      let dp = 0, a = 0;
      for (let d = 0; d < D; d++) {
        const p = dout[qi + d]! * v[kv + j * D + d]!;
        dp += p;
        a += abs(p);
      }
      const gap = dp - di, dS = P * gap;
      const eds = eP * abs(gap) + P * ((D + 4) * U * a + edi + U * abs(gap)) + U * abs(dS);
      [pr[j], slack[j]] = mutant.keepP ? [P, 0] : roundWithin(P, eP, bits);
      [ds[j], dslack[j]] = mutant.keepDS ? [dS, 0] : roundWithin(dS, eds, bits);
    }
    for (let d = 0; d < D; d++) {
      let dq = 0, a = 0, sl = 0;
      for (let j = lo; j < hi; j++) {
        const kj = kv + j * D + d, qd = q[qi + d]!, od = dout[qi + d]!;
        dq += ds[j]! * k[kj]!;
        a += abs(ds[j]! * k[kj]!);
        sl += dslack[j]! * abs(k[kj]!);
        want.dk[kj] = want.dk[kj]! + scale * ds[j]! * qd;
        absK[kj] = absK[kj]! + scale * abs(ds[j]! * qd);
        tol.dk[kj] = tol.dk[kj]! + scale * dslack[j]! * abs(qd);
        want.dv[kj] = want.dv[kj]! + pr[j]! * od;
        absV[kj] = absV[kj]! + abs(pr[j]! * od);
        tol.dv[kj] = tol.dv[kj]! + slack[j]! * abs(od);
      }
      want.dq[qi + d] = scale * dq;
      tol.dq[qi + d] = scale * (sl + a * (n + 4) * U);
    }
  }
  for (let i = 0; i < k.length; i++) {
    tol.dk[i] = tol.dk[i]! + absK[i]! * (rows + 4) * U;
    tol.dv[i] = tol.dv[i]! + absV[i]! * (rows + 4) * U;
  }
  return { want, tol };
}

const OUTPUTS = ['out', 'lse', 'dq', 'dk', 'dv'] as const;

/** The worst |got - want| / tol of each output (0 where equal; Infinity for a mismatch with tol 0 or a NaN). */
function ratios(got: Results, ref: Reference): Record<(typeof OUTPUTS)[number], number> {
  const r = { out: 0, lse: 0, dq: 0, dk: 0, dv: 0 };
  for (const key of OUTPUTS) {
    const g = got[key], w = ref.want[key], t = ref.tol[key];
    for (let i = 0; i < g.length; i++) {
      const err = g[i]! - w[i]!, e = err < 0 ? -err : err;
      const ratio = e === 0 ? 0 : e / t[i]!; // NaN (a NaN anywhere) fails below
      if (!(ratio <= r[key])) r[key] = ratio !== ratio ? Infinity : ratio;
    }
  }
  return r;
}

function expectWithin(got: Results, ref: Reference, what: string): void {
  const r = ratios(got, ref);
  for (const key of OUTPUTS) {
    if (!(r[key] <= 1)) throw new Error(`${what} ${key}: worst error ${r[key].toPrecision(3)}× its tolerance`);
  }
}

const ISAS = supportedIsas();

describe('float32 attention against the float64 reference of its precision, every ISA, both backward schemes', () => {
  test.each(CASES)('%s', (_name, c) => {
    const x = inputs(c, 17);
    for (const precision of ['fp32', 'tf32', 'bf16'] as const) {
      ops.setMatmulPrecision(precision);
      for (const isa of ISAS) {
        // 1 thread: the one-pass backward; 3 threads with few (batch, kv head) groups: the two-pass one
        for (const threads of [1, 3]) {
          ops.setNumThreads(threads);
          const got = withIsa(isa, () => kernel(c, x, 'float32'));
          expectWithin(got, reference(c, x, BITS[precision], got), `${precision} ${isa} threads=${threads}`);
        }
      }
    }
  });
});

describe('the check can fail', () => {
  const c = cs(1, 2, 1, 37, 37, 37, 17, { mask: 'causal' });
  const x = inputs(c, 5);

  test('bf16 changes every output beyond its tolerance, and the fp32 kernel fails the bf16 reference', () => {
    const fp32 = kernel(c, x, 'float32');
    ops.setMatmulPrecision('bf16');
    const bf16 = kernel(c, x, 'float32');
    const ref = reference(c, x, BITS.bf16, bf16);
    expectWithin(bf16, ref, 'bf16');
    const r = ratios(fp32, reference(c, x, BITS.bf16, fp32)); // (backward from the fp32 forward's O and lse)
    for (const key of OUTPUTS) expect([key, r[key] > 10]).toEqual([key, true]);
  });

  test.each([['bf16', 7], ['tf32', 10]] as const)('%s: leaving P or dS unrounded fails the check', (precision, bits) => {
    ops.setMatmulPrecision(precision);
    const got = kernel(c, x, 'float32');
    const keepP = ratios(got, reference(c, x, bits, got, { keepP: true }));
    const keepDS = ratios(got, reference(c, x, bits, got, { keepDS: true }));
    expect({ out: keepP.out > 2, dv: keepP.dv > 2, dq: keepDS.dq > 2, dk: keepDS.dk > 2 }).toEqual({
      out: true, dv: true, dq: true, dk: true,
    });
  });
});

describe('the rounding itself, bit for bit', () => {
  // With one key, p = P = 1 exactly, so out = round(V) and dV = round(dO): the input rounding of V and dO is seen
  // without any sum, through the vector body and tail of every ISA (D = 37), on special values too.
  const special = [1 + 2 ** -8, 1 + 3 * 2 ** -9, 1 + 2 ** -11, -(1 + 2 ** -8), 3.4e38, -3.4e38, 1e-40, -1e-42, 0, -0,
    Infinity, -Infinity, NaN, 2 ** -126, 65504.5];
  const c = cs(1, 1, 1, 1, 1, 1, 37, { mask: 'causal' });
  const rng = new Rng(3);
  const values = () => Float64Array.from(Float32Array.from([...special, ...rng.normal(c.D - special.length)]));
  const x: Inputs = { q: inputs(c, 9).q, k: inputs(c, 9).k, v: values(), dout: values().reverse() };
  // (a sum turns -0 into +0: zeros compare by value)
  const same = (a: Float64Array, b: number[]) => a.every((g, i) => g === b[i] || (g !== g && b[i] !== b[i]));

  test.each([['bf16', 7], ['tf32', 10]] as const)('%s with one key: out = round(V), dV = round(dO)', (precision, bits) => {
    ops.setMatmulPrecision(precision);
    for (const isa of ISAS) {
      const got = withIsa(isa, () => kernel(c, x, 'float32'));
      expect([isa, same(got.out, Array.from(x.v, (v) => roundRef(v, bits)))]).toEqual([isa, true]);
      expect([isa, same(got.dv, Array.from(x.dout, (v) => roundRef(v, bits)))]).toEqual([isa, true]);
    }
    // the rounding changed values (the check can fail): 1 + 2^-8 is a tie in bf16, 1 + 2^-11 one in tf32
    expect(same(Float64Array.from(x.v), Array.from(x.v, (v) => roundRef(v, bits)))).toBe(false);
  });
});

describe('what the precision leaves alone', () => {
  const c = cs(1, 4, 2, 13, 20, 19, 17, { mask: 'sliding_window', window: 6 });
  const x = inputs(c, 23);

  test('float64 is never rounded: bit-identical under bf16 and tf32', () => {
    const exact = kernel(c, x, 'float64');
    for (const precision of ['bf16', 'tf32'] as const) {
      ops.setMatmulPrecision(precision);
      expect(kernel(c, x, 'float64')).toEqual(exact);
    }
  });

  test('fp32 after a bf16 call is bit-identical to fp32 before it', () => {
    const before = kernel(c, x, 'float32');
    ops.setMatmulPrecision('bf16');
    const rounded = kernel(c, x, 'float32');
    ops.setMatmulPrecision('fp32');
    const after = kernel(c, x, 'float32');
    expect(after).toEqual(before);
    expect(rounded.out).not.toEqual(before.out);
  });
});
