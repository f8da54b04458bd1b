import { Tensor, ops } from '../../lib';
import type { FloatDType } from '../../lib';
import { Rng } from '../helpers/random';
import { expectClose, TOL_F64, type Tolerance } from '../helpers/compare';
import { expectGradient } from '../helpers/gradcheck';
import { ALL_ISAS, supportedIsas, withIsa } from '../helpers/isa';

/** One matmul: sizes, transposes, and which operands carry the batch dimension (batch null: plain 2-D). */
interface Spec {
  batch: number | null;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  aBatched: boolean;
  bBatched: boolean;
}

const TRANSPOSES: Array<[boolean, boolean]> = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

function plain(M: number, N: number, K: number, transA: boolean, transB: boolean): Spec {
  return { batch: null, M, N, K, transA, transB, aBatched: false, bBatched: false };
}

function aShape(s: Spec): number[] {
  const m = s.transA ? [s.K, s.M] : [s.M, s.K];
  return s.aBatched && s.batch !== null ? [s.batch, ...m] : m;
}
function bShape(s: Spec): number[] {
  const m = s.transB ? [s.N, s.K] : [s.K, s.N];
  return s.bBatched && s.batch !== null ? [s.batch, ...m] : m;
}
function cShape(s: Spec): number[] {
  return s.batch === null ? [s.M, s.N] : [s.batch, s.M, s.N];
}
const numel = (shape: number[]): number => shape.reduce((p, d) => p * d, 1);

function opAt(x: ArrayLike<number>, base: number, rows: number, cols: number, trans: boolean, r: number, c: number) {
  // element (r, c) of op(X) where op(X) is rows×cols
  return trans ? x[base + c * rows + r]! : x[base + r * cols + c]!;
}

/** The float64 reference: C[b] = op(A[b]) · op(B[b]) with broadcast of an unbatched operand. */
function refMatmul(s: Spec, a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const batch = s.batch ?? 1;
  const { M, N, K } = s;
  const c = new Float64Array(batch * M * N);
  for (let bi = 0; bi < batch; bi++) {
    const ab = s.aBatched ? bi * M * K : 0;
    const bb = s.bBatched ? bi * K * N : 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let sum = 0;
        for (let k = 0; k < K; k++) sum += opAt(a, ab, M, K, s.transA, i, k) * opAt(b, bb, K, N, s.transB, k, j);
        c[bi * M * N + i * N + j] = sum;
      }
    }
  }
  return c;
}

/** float32: inputs are rounded to float32 first; the error of a K-term float32 dot product grows with K. */
function tolerance(dtype: FloatDType, K: number): Tolerance {
  return dtype === 'float64' ? TOL_F64 : { atol: 2e-7 * (K + 1), rtol: 1e-5 };
}

function roundTo(dtype: FloatDType, x: Float64Array): Float64Array {
  return dtype === 'float64' ? x : Float64Array.from(Float32Array.from(x));
}

function tensorOf(dtype: FloatDType, x: Float64Array, shape: number[]): Tensor {
  return Tensor.from(dtype === 'float64' ? x : Float32Array.from(x), shape);
}

/** Runs matmul on random inputs (and a random C when accumulating) and compares with the reference. */
function checkForward(s: Spec, dtype: FloatDType, rng: Rng, accumulate: boolean, what: string): void {
  const a = roundTo(dtype, rng.uniform(numel(aShape(s))));
  const b = roundTo(dtype, rng.uniform(numel(bShape(s))));
  const c0 = roundTo(dtype, rng.uniform(numel(cShape(s))));
  const A = tensorOf(dtype, a, aShape(s));
  const B = tensorOf(dtype, b, bShape(s));
  const C = tensorOf(dtype, c0, cShape(s));
  ops.matmul(C, A, B, { transA: s.transA, transB: s.transB, accumulate });
  const expected = refMatmul(s, a, b);
  if (accumulate) expected.forEach((v, i) => (expected[i] = v + c0[i]!));
  expectClose(C.toArray(), expected, tolerance(dtype, s.K), `${what} ${JSON.stringify(s)} acc=${accumulate}`);
  [A, B, C].forEach((t) => t.dispose());
}

// Sizes of 1, primes, and sizes straddling the register tiles (6×16, 12×32) and the K block (256).
const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [1, 7, 13],
  [7, 1, 31],
  [13, 31, 67],
  [67, 131, 257],
  [31, 67, 300],
  [131, 13, 7],
  [2, 300, 67],
];

describe('matmul forward', () => {
  const isas = supportedIsas();
  for (const isa of ALL_ISAS.filter((i) => !isas.includes(i))) {
    test.skip(`${isa}: not supported by this CPU`, () => {});
  }
  for (const isa of isas) {
    for (const dtype of ['float64', 'float32'] as const) {
      test(`${isa} ${dtype}: awkward shapes, all transposes, accumulate`, () => {
        withIsa(isa, () => {
          const rng = new Rng(11);
          for (const [M, N, K] of SHAPES) {
            TRANSPOSES.forEach(([ta, tb], t) => checkForward(plain(M, N, K, ta, tb), dtype, rng, t === 3, isa));
          }
        });
      });

      test(`${isa} ${dtype}: batches with broadcast A or B`, () => {
        withIsa(isa, () => {
          const rng = new Rng(12);
          for (const [M, N, K] of [
            [37, 29, 41],
            [70, 50, 20],
            [5, 3, 2],
          ] as const) {
            for (const [ta, tb] of TRANSPOSES) {
              for (const [aBatched, bBatched] of [
                [true, true],
                [false, true],
                [true, false],
              ] as const) {
                const s: Spec = { batch: 3, M, N, K, transA: ta, transB: tb, aBatched, bBatched };
                checkForward(s, dtype, rng, ta && !tb, isa);
              }
            }
          }
        });
      });
    }
  }
});

// Up to 4 rows of C (decoding) take the skinny path, which streams B instead of packing it. Sizes are above the
// small-problem cut-off (M·N·K > 32768), with partial vectors, partial strips and K over one or several 256-blocks.
const SKINNY_SHAPES: Array<[number, number, number]> = [
  [1, 131, 300],
  [2, 33, 517],
  [3, 1000, 67],
  [4, 257, 1100],
  [1, 50, 2000],
  [3, 17, 700],
];

describe('matmul skinny (M <= 4)', () => {
  for (const isa of supportedIsas()) {
    for (const dtype of ['float64', 'float32'] as const) {
      test(`${isa} ${dtype}: awkward shapes, all transposes, accumulate, batches`, () => {
        withIsa(isa, () => {
          const rng = new Rng(21);
          for (const [M, N, K] of SKINNY_SHAPES) {
            TRANSPOSES.forEach(([ta, tb], t) => checkForward(plain(M, N, K, ta, tb), dtype, rng, t % 2 === 1, isa));
          }
          for (const [ta, tb] of TRANSPOSES) {
            checkForward({ batch: 3, M: 2, N: 97, K: 263, transA: ta, transB: tb, aBatched: true, bBatched: false }, dtype, rng, tb, isa);
          }
        });
      });

      test(`${isa} ${dtype}: rows computed alone equal the same rows of a large GEMM bit for bit`, () => {
        withIsa(isa, () => {
          const rng = new Rng(22);
          for (const transB of [true, false]) {
            const [R, N, K] = [9, 203, 611];
            const a = rng.uniform(R * K);
            const b = rng.uniform(N * K);
            const A = tensorOf(dtype, a, [R, K]);
            const B = tensorOf(dtype, b, transB ? [N, K] : [K, N]);
            const full = Tensor.zeros([R, N], dtype);
            ops.matmul(full, A, B, { transB });
            const all = full.toArray();
            for (const M of [1, 2, 3, 4]) {
              for (const r0 of [0, R - M]) {
                const rows = A.narrow(r0, M);
                const C = Tensor.zeros([M, N], dtype);
                ops.matmul(C, rows, B, { transB });
                expect(C.toArray()).toEqual(all.slice(r0 * N, (r0 + M) * N));
                C.dispose();
              }
            }
            [A, B, full].forEach((t) => t.dispose());
          }
        });
      });
    }
  }
});

describe('matmul empty sizes', () => {
  test('K = 0 writes zeros (adds nothing with accumulate); M = 0 and batch 0 are no-ops', () => {
    const C = Tensor.from(new Float64Array([1, 2, 3, 4, 5, 6]), [2, 3]);
    ops.matmul(C, Tensor.zeros([2, 0], 'float64'), Tensor.zeros([0, 3], 'float64'), { accumulate: true });
    expect(Array.from(C.toArray())).toEqual([1, 2, 3, 4, 5, 6]);
    ops.matmul(C, Tensor.zeros([2, 0], 'float64'), Tensor.zeros([0, 3], 'float64'));
    expect(Array.from(C.toArray())).toEqual([0, 0, 0, 0, 0, 0]);
    ops.matmul(Tensor.zeros([0, 3], 'float32'), Tensor.zeros([0, 4], 'float32'), Tensor.zeros([4, 3], 'float32'));
    ops.matmul(Tensor.zeros([0, 2, 3], 'float32'), Tensor.zeros([0, 2, 4], 'float32'), Tensor.zeros([4, 3], 'float32'));
  });
});

/** dA = dC·op(B)ᵀ and dB = op(A)ᵀ·dC in float64 JS, summed over the batch for a broadcast operand. */
function refBackward(s: Spec, a: Float64Array, b: Float64Array, dc: Float64Array): [Float64Array, Float64Array] {
  const batch = s.batch ?? 1;
  const { M, N, K } = s;
  const da = new Float64Array(a.length);
  const db = new Float64Array(b.length);
  for (let bi = 0; bi < batch; bi++) {
    const ab = s.aBatched ? bi * M * K : 0;
    const bb = s.bBatched ? bi * K * N : 0;
    for (let i = 0; i < M; i++) {
      for (let k = 0; k < K; k++) {
        for (let j = 0; j < N; j++) {
          const g = dc[bi * M * N + i * N + j]!;
          const ia = ab + (s.transA ? k * M + i : i * K + k);
          const ib = bb + (s.transB ? j * K + k : k * N + j);
          da[ia] = da[ia]! + g * opAt(b, bb, K, N, s.transB, k, j);
          db[ib] = db[ib]! + g * opAt(a, ab, M, K, s.transA, i, k);
        }
      }
    }
  }
  return [da, db];
}

const BATCH_MODES: Array<[boolean, boolean]> = [
  [true, true],
  [true, false],
  [false, true],
];

describe('matmul backward', () => {
  test('float64 finite differences for dA and dB, every transpose, broadcast A or B summed over the batch', () => {
    const rng = new Rng(21);
    for (const [ta, tb] of TRANSPOSES) {
      for (const [aBatched, bBatched] of BATCH_MODES) {
        const s: Spec = { batch: 3, M: 5, N: 6, K: 7, transA: ta, transB: tb, aBatched, bBatched };
        const a = rng.uniform(numel(aShape(s)));
        const b = rng.uniform(numel(bShape(s)));
        const w = rng.uniform(numel(cShape(s)));
        const loss = (): number => {
          const A = Tensor.from(a, aShape(s));
          const B = Tensor.from(b, bShape(s));
          const C = Tensor.zeros(cShape(s), 'float64');
          ops.matmul(C, A, B, { transA: ta, transB: tb });
          const out = C.toArray();
          [A, B, C].forEach((t) => t.dispose());
          let sum = 0;
          out.forEach((v, i) => (sum += v * w[i]!));
          return sum;
        };
        const dA = Tensor.zeros(aShape(s), 'float64');
        const dB = Tensor.zeros(bShape(s), 'float64');
        ops.matmulBackward(dA, dB, Tensor.from(w, cShape(s)), Tensor.from(a, aShape(s)), Tensor.from(b, bShape(s)), {
          transA: ta,
          transB: tb,
        });
        const what = `ta=${ta} tb=${tb} aBatched=${aBatched} bBatched=${bBatched}`;
        expectGradient(dA.toArray(), loss, a, `dA ${what}`);
        expectGradient(dB.toArray(), loss, b, `dB ${what}`);
      }
    }
  });

  for (const isa of supportedIsas()) {
    for (const dtype of ['float64', 'float32'] as const) {
      test(`${isa} ${dtype}: blocked sizes against the reference, accumulating onto existing gradients`, () => {
        withIsa(isa, () => {
          const rng = new Rng(22);
          for (const [ta, tb] of TRANSPOSES) {
            for (const [aBatched, bBatched] of BATCH_MODES) {
              const s: Spec = { batch: 2, M: 40, N: 33, K: 37, transA: ta, transB: tb, aBatched, bBatched };
              const a = roundTo(dtype, rng.uniform(numel(aShape(s))));
              const b = roundTo(dtype, rng.uniform(numel(bShape(s))));
              const dc = roundTo(dtype, rng.uniform(numel(cShape(s))));
              const da0 = roundTo(dtype, rng.uniform(a.length));
              const db0 = roundTo(dtype, rng.uniform(b.length));
              const dA = tensorOf(dtype, da0, aShape(s));
              const dB = tensorOf(dtype, db0, bShape(s));
              const opts = { transA: ta, transB: tb };
              const dC = tensorOf(dtype, dc, cShape(s));
              ops.matmulBackward(dA, dB, dC, tensorOf(dtype, a, aShape(s)), tensorOf(dtype, b, bShape(s)), opts);
              const [da, db] = refBackward(s, a, b, dc);
              const what = `${isa} ${dtype} ${JSON.stringify(s)}`;
              // A broadcast operand sums batch·(inner) terms.
              expectClose(dA.toArray(), da.map((v, i) => v + da0[i]!), tolerance(dtype, 2 * s.N + 1), `dA ${what}`);
              expectClose(dB.toArray(), db.map((v, i) => v + db0[i]!), tolerance(dtype, 2 * s.M + 1), `dB ${what}`);
            }
          }
        });
      });
    }
  }

  test('null skips a gradient', () => {
    const rng = new Rng(23);
    const A = Tensor.from(rng.uniform(12), [3, 4]);
    const B = Tensor.from(rng.uniform(20), [4, 5]);
    const dC = Tensor.from(rng.uniform(15), [3, 5]);
    const dB = Tensor.zeros([4, 5], 'float64');
    ops.matmulBackward(null, dB, dC, A, B);
    const f64s = [A, B, dC].map((t) => t.toArray() as Float64Array);
    const [, db] = refBackward(plain(3, 5, 4, false, false), f64s[0]!, f64s[1]!, f64s[2]!);
    expectClose(dB.toArray(), db, TOL_F64, 'dB');
    const dA = Tensor.zeros([3, 4], 'float64');
    ops.matmulBackward(dA, null, dC, A, B);
    expect(Array.from(dA.toArray()).some((v) => v !== 0)).toBe(true);
  });
});

describe('matmul determinism', () => {
  test('bit-identical on repeat with 1 and 2 threads, and across thread counts', () => {
    const saved = ops.numThreads();
    const rng = new Rng(31);
    const s = plain(200, 300, 257, false, true);
    const A = Tensor.from(Float32Array.from(rng.uniform(numel(aShape(s)))), aShape(s));
    const B = Tensor.from(Float32Array.from(rng.uniform(numel(bShape(s)))), bShape(s));
    // The raw bytes of C, so that equality is bit for bit.
    const run = (threads: number): Buffer => {
      ops.setNumThreads(threads);
      const C = Tensor.zeros(cShape(s), 'float32');
      ops.matmul(C, A, B, { transB: true });
      return Buffer.from(C.toArray().buffer);
    };
    try {
      const one = [run(1), run(1)];
      const two = [run(2), run(2)];
      expect(one[1]!.equals(one[0]!)).toBe(true);
      expect(two[1]!.equals(two[0]!)).toBe(true);
      expect(two[0]!.equals(one[0]!)).toBe(true);
    } finally {
      ops.setNumThreads(saved);
    }
  });
});

describe('matmul async', () => {
  test('matmulAsync and matmulBackwardAsync give the sync results', async () => {
    const rng = new Rng(41);
    const A = Tensor.from(rng.uniform(2 * 40 * 50), [2, 40, 50]);
    const B = Tensor.from(rng.uniform(50 * 60), [50, 60]);
    const C1 = Tensor.zeros([2, 40, 60], 'float64');
    const C2 = Tensor.zeros([2, 40, 60], 'float64');
    ops.matmul(C1, A, B);
    await ops.matmulAsync(C2, A, B);
    expect(C2.toArray()).toEqual(C1.toArray());
    const dB1 = Tensor.zeros([50, 60], 'float64');
    const dB2 = Tensor.zeros([50, 60], 'float64');
    ops.matmulBackward(null, dB1, C1, A, B);
    await ops.matmulBackwardAsync(null, dB2, C1, A, B);
    expect(dB2.toArray()).toEqual(dB1.toArray());
  });
});

describe('matmul bad input', () => {
  const f64 = (shape: number[]): Tensor => Tensor.zeros(shape, 'float64');

  test('rank', () => {
    expect(() => ops.matmul(f64([2, 3]), f64([6]), f64([3, 3]))).toThrow(
      /matmul: argument 'A' must have 2 to 3 dimensions/,
    );
    expect(() => ops.matmul(f64([2, 3]), f64([2, 3]), f64([1, 1, 3, 3]))).toThrow(
      /argument 'B' must have 2 to 3 dimensions/,
    );
    expect(() => ops.matmul(f64([6]), f64([2, 3]), f64([3, 3]))).toThrow(
      /argument 'C' must have shape \[2, 3\], got \[6\]/,
    );
  });

  test('shape mismatch', () => {
    expect(() => ops.matmul(f64([2, 4]), f64([2, 3]), f64([5, 4]))).toThrow(
      /argument 'B' must have shape \[3, 4\].*got \[5, 4\]/,
    );
    expect(() => ops.matmul(f64([2, 4]), f64([2, 3]), f64([3, 4]), { transA: true })).toThrow(
      /'B' must have shape \[2, 4\]/,
    );
    expect(() => ops.matmul(f64([2, 2, 4]), f64([2, 2, 3]), f64([3, 3, 4]))).toThrow(/'B' must have shape \[2, 3, 4\]/);
    expect(() => ops.matmul(f64([2, 5]), f64([2, 3]), f64([3, 4]))).toThrow(
      /argument 'C' must have shape \[2, 4\], got \[2, 5\]/,
    );
    expect(() => ops.matmul(f64([2, 4]), f64([2, 3]), f64([3, 3, 4]))).toThrow(
      /argument 'C' must have shape \[3, 2, 4\]/,
    );
    expect(() => ops.matmulBackward(f64([3, 2]), null, f64([2, 4]), f64([2, 3]), f64([3, 4]))).toThrow(
      /matmulBackward: argument 'dA' must have shape \[2, 3\], got \[3, 2\]/,
    );
    expect(() => ops.matmulBackward(null, f64([3, 4]), f64([4, 2]), f64([2, 3]), f64([3, 4]))).toThrow(
      /argument 'dC' must have shape \[2, 4\]/,
    );
  });

  test('dtype', () => {
    const f32 = Tensor.zeros([3, 4], 'float32');
    expect(() => ops.matmul(f64([2, 4]), f64([2, 3]), f32)).toThrow(/argument 'B' is float32 but 'A' is float64/);
    expect(() => ops.matmul(Tensor.zeros([2, 4], 'float32'), f64([2, 3]), f64([3, 4]))).toThrow(
      /argument 'C' is float32/,
    );
    const i32 = Tensor.zeros([2, 3], 'int32');
    expect(() => ops.matmul(f64([2, 4]), i32, f64([3, 4]))).toThrow(
      /argument 'A' must be float32 or float64, got int32/,
    );
    expect(() => ops.matmulBackward(f32, null, f64([2, 4]), f64([2, 3]), f64([3, 4]))).toThrow(
      /argument 'dA' is float32/,
    );
  });

  test('disposed', () => {
    const A = f64([2, 3]);
    A.dispose();
    expect(() => ops.matmul(f64([2, 4]), A, f64([3, 4]))).toThrow(/argument 'A' is a disposed tensor/);
  });

  test('overlap of outputs with inputs', () => {
    const A = f64([3, 3]);
    expect(() => ops.matmul(A, A, f64([3, 3]))).toThrow(/arguments 'C' and 'A' must not share memory/);
    const B = f64([3, 3]);
    expect(() => ops.matmul(B.reshape([3, 3]), f64([3, 3]), B)).toThrow(/arguments 'C' and 'B' must not share memory/);
    const dC = f64([3, 3]);
    expect(() => ops.matmulBackward(dC, null, dC, f64([3, 3]), f64([3, 3]))).toThrow(
      /'dA' and 'dC' must not share memory/,
    );
    const g = f64([3, 3]);
    expect(() => ops.matmulBackward(g, g, f64([3, 3]), f64([3, 3]), f64([3, 3]))).toThrow(
      /'dA' and 'dB' must not share memory/,
    );
  });

  test('options and argument types', () => {
    const args = [f64([2, 4]), f64([2, 3]), f64([3, 4])] as const;
    expect(() => ops.matmul(...args, { transpose: true } as never)).toThrow(/unknown option 'transpose'/);
    expect(() => ops.matmul(...args, { transA: 'yes' } as never)).toThrow(/option 'transA' must be a boolean/);
    expect(() => ops.matmul(...args, 3 as never)).toThrow(/options must be an object/);
    expect(() => ops.matmulBackward(null, null, args[0], args[1], args[2], { accumulate: true } as never)).toThrow(
      /unknown option 'accumulate'/,
    );
    expect(() => ops.matmul(args[0], [1, 2] as never, args[2])).toThrow(/argument 'A' must be a Tensor/);
    expect(() => ops.matmulBackward(5 as never, null, args[0], args[1], args[2])).toThrow(
      /argument 'dA' must be a Tensor/,
    );
  });
});
