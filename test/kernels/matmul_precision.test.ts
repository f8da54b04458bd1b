/**
 * ops.setMatmulPrecision: 'tf32' and 'bf16' round the inputs of every float32 product (round to nearest, ties to
 * even) and sum in float32; 'fp32' leaves them alone; float64 is never rounded. The rounding is checked element by
 * element against a bit-level reference written here, and every product against a float64 reference computed on the
 * rounded inputs, forward and backward, through all three GEMM paths (small, skinny, blocked).
 */
import { ops, Tensor } from '../../lib';
import { validateConfig } from '../../lib/models/config';
import { Transformer } from '../../lib/models/transformer';
import { languageModelSource } from '../../lib/train/sources';
import { Trainer } from '../../lib/train/trainer';
import { roundRef } from '../helpers/precision';
import { Rng } from '../helpers/random';

afterEach(() => ops.setMatmulPrecision('fp32'));

function product(A0: Float32Array, B0: Float32Array, M: number, N: number, K: number, round: (x: number) => number): Float64Array {
  const A = Float64Array.from(A0, round), B = Float64Array.from(B0, round);
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += A[i * K + k]! * B[k * N + j]!;
    C[i * N + j] = s;
  }
  return C;
}

const special = [1 + 2 ** -8, 1 + 3 * 2 ** -9, 1 + 2 ** -11, -(1 + 2 ** -8), 3.4e38, -3.4e38, 1e-40, -1e-42, 0, -0,
  Infinity, -Infinity, NaN, 2 ** -126, 65504.5];

test.each([['bf16', 7], ['tf32', 10]] as const)('%s rounds each input to nearest, ties to even (special values and 4000 random ones)', (p, bits) => {
  const rng = new Rng(11);
  const values = [...special, ...Array.from(rng.normal(4000, 100))];
  const A = Tensor.from(Float32Array.from(values), [values.length, 1]);
  const B = Tensor.from(Float32Array.of(1), [1, 1]); // exact in every format: C = round(A)
  const C = Tensor.zeros([values.length, 1]);
  ops.setMatmulPrecision(p);
  expect(ops.matmulPrecision()).toBe(p);
  ops.matmul(C, A, B);
  const got = C.data();
  const want = Float32Array.from(values, (v) => roundRef(v, bits));
  // (a product sum turns -0 into +0: zeros compare by value)
  for (let i = 0; i < values.length; i++) {
    if (!(got[i] === want[i] || (Number.isNaN(got[i]) && Number.isNaN(want[i])))) expect([i, got[i]]).toEqual([i, want[i]]);
  }
  // Some inputs really changed (the test can fail), and the overflow rounds to infinity as a conversion does.
  expect(got.filter((v, i) => !Object.is(v, Math.fround(values[i]!))).length).toBeGreaterThan(3000);
  if (p === 'bf16') expect(got[4]).toBe(Infinity);
  for (const t of [A, B, C]) t.dispose();
});

describe.each([
  ['small (plain loops)', 3, 5, 7],
  ['skinny (M <= 4)', 2, 300, 97],
  ['blocked', 67, 131, 129],
])('%s GEMM', (_name, M, N, K) => {
  test.each(['fp32', 'tf32', 'bf16'] as const)('%s: forward and backward equal the float64 product of the rounded inputs', (p) => {
    const rng = new Rng(M * 1000 + N);
    const a = Float32Array.from(rng.uniform(M * K, -2, 2)), b = Float32Array.from(rng.uniform(K * N, -2, 2));
    const dc = Float32Array.from(rng.uniform(M * N, -1, 1));
    const bits = p === 'bf16' ? 7 : p === 'tf32' ? 10 : 23;
    const round = (x: number): number => roundRef(x, bits);
    const A = Tensor.from(a, [M, K]), B = Tensor.from(b, [K, N]), C = Tensor.zeros([M, N]);
    const dC = Tensor.from(dc, [M, N]), dA = Tensor.zeros([M, K]), dB = Tensor.zeros([K, N]);
    ops.setMatmulPrecision(p);
    ops.matmul(C, A, B);
    ops.matmulBackward(dA, dB, dC, A, B);
    ops.setMatmulPrecision('fp32');
    // float32 sums of L products of rounded inputs: within 2 (L + 2) 2^-24 Σ|a||b| of the exact value.
    const check = (got: Float32Array, want: Float64Array, absBound: Float64Array, L: number): void => {
      for (let i = 0; i < got.length; i++) {
        const tol = 2 * (L + 2) * 2 ** -24 * absBound[i]!;
        if (Math.abs(got[i]! - want[i]!) > tol) throw new Error(`${p}: element ${i}: ${got[i]} vs ${want[i]} (tol ${tol})`);
      }
    };
    const abs = (x: Float32Array): Float32Array => x.map(Math.abs);
    // the transpose of x (rows × cols), as (cols × rows)
    const T = (x: Float32Array, rows: number, cols: number): Float32Array => {
      const out = new Float32Array(rows * cols);
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j]!;
      return out;
    };
    check(C.data() as Float32Array, product(a, b, M, N, K, round), product(abs(a), abs(b), M, N, K, round), K);
    // dA = dC · Bᵀ (M, K), dB = Aᵀ · dC (K, N), from rounded dC, B and A
    const bT = T(b, K, N), aT = T(a, M, K);
    check(dA.data() as Float32Array, product(dc, bT, M, K, N, round), product(abs(dc), abs(bT), M, K, N, round), N);
    check(dB.data() as Float32Array, product(aT, dc, K, N, M, round), product(abs(aT), abs(dc), K, N, M, round), M);
    if (p !== 'fp32') {
      // and it differs from the fp32 product: the rounding really happened
      const exact = Tensor.zeros([M, N]);
      ops.matmul(exact, A, B);
      expect(Array.from(exact.data())).not.toEqual(Array.from(C.data()));
      exact.dispose();
    }
    for (const t of [A, B, C, dC, dA, dB]) t.dispose();
  });
});

test('float64 products are never rounded', () => {
  const A = Tensor.from(Float64Array.of(1 + 2 ** -30), [1, 1]), B = Tensor.from(Float64Array.of(1), [1, 1]);
  const C = Tensor.zeros([1, 1], 'float64');
  ops.setMatmulPrecision('bf16');
  ops.matmul(C, A, B);
  expect(C.data()[0]).toBe(1 + 2 ** -30);
});

test('a bad precision name is a TypeError naming the choices', () => {
  expect(() => ops.setMatmulPrecision('fp16' as never)).toThrow("setMatmulPrecision: argument 'precision' must be 'fp32', 'tf32' or 'bf16'");
  expect(ops.matmulPrecision()).toBe('fp32');
});

test('a bf16 training run follows the fp32 run closely (tiny MoE, 40 steps)', () => {
  const noise = new Rng(3).int(6000, 0, 61);
  const tokens = Int32Array.from(noise, (r, i) => (i % 7 === 6 ? r : (i * 5) % 61)); // learnable, with some noise
  const run = (p: 'fp32' | 'bf16'): number[] => {
    ops.setMatmulPrecision(p);
    const model = new Transformer(validateConfig({ vocab_size: 61, d_model: 48, n_layers: 2, n_heads: 4, d_ff: 64, max_seq_len: 32, ffn: 'moe', n_experts: 4, top_k: 2 }));
    model.init(1);
    const t = new Trainer(model, languageModelSource(tokens, tokens.subarray(0, 500), 4, 24, 2), { steps: 40, lr: 3e-3, warmupSteps: 4 });
    const losses = Array.from({ length: 40 }, () => t.trainStep().loss);
    t.dispose();
    model.dispose();
    ops.setMatmulPrecision('fp32');
    return losses;
  };
  const fp32 = run('fp32'), bf16 = run('bf16');
  expect(bf16).not.toEqual(fp32); // bf16 really ran
  const gaps = fp32.map((l, i) => Math.abs(l - bf16[i]!) / l);
  expect(Math.max(...gaps)).toBeLessThan(0.02); // within 2% at every step
  expect(fp32[39]!).toBeLessThan(fp32[0]! - 0.1); // and both learned
  expect(bf16[39]!).toBeLessThan(bf16[0]! - 0.1);
});

test('trainRun({ precision }) trains with it and restores the previous precision', async () => {
  const { trainRun } = await import('../../lib/train/run');
  const os = await import('node:os');
  const fs = await import('node:fs');
  const path = await import('node:path');
  const losses: Record<string, number> = {};
  for (const precision of ['fp32', 'bf16'] as const) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wavemoe-precision-'));
    try {
      const seen: string[] = [];
      const r = await trainRun({
        outDir: dir, steps: 2, batchSize: 4, seqLen: 12, lr: 1e-3, task: 'numbers', preset: 'seq2seq-small', precision,
        onStep: () => seen.push(ops.matmulPrecision()),
      });
      expect(seen).toEqual([precision, precision]);
      losses[precision] = r.last!.loss;
      r.model.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(ops.matmulPrecision()).toBe('fp32');
  }
  expect(losses.bf16).not.toBe(losses.fp32);
  expect(Math.abs(losses.bf16! - losses.fp32!) / losses.fp32!).toBeLessThan(0.01);
});
