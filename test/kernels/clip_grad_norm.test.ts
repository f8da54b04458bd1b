/**
 * clipGradNorm against a plain float64 reference of PyTorch's clip_grad_norm_. The norm is accumulated in double in
 * both dtypes, so it is compared at 1e-12 relative; scaled float32 grads at rtol 1e-6 (one float32 multiply).
 */
import { Tensor, ops } from '../../lib';
import type { FloatDType } from '../../lib';
import { Rng } from '../helpers/random';
import { TOL_F64, expectClose } from '../helpers/compare';

/** Returns the norm and the grads after clipping (copies). */
function reference(grads: Float64Array[], maxNorm: number): { norm: number; clipped: Float64Array[] } {
  let sq = 0;
  for (const g of grads) for (const x of g) sq += x * x;
  const norm = Math.sqrt(sq);
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  return { norm, clipped: grads.map((g) => Float64Array.from(g, (x) => x * coef)) };
}

// Awkward sizes, one above the 8192-element segment of the native partial sums.
const SHAPES = [[1], [7, 13], [31], [3, 67], [20011]];

function makeGrads(dtype: FloatDType, seed: number): Tensor[] {
  return SHAPES.map((shape, k) => Tensor.randn(shape, { seed: seed + k, std: 0.5 + k, dtype }));
}

const asF64 = (t: Tensor): Float64Array => Float64Array.from(t.toArray());

describe.each(['float64', 'float32'] as FloatDType[])('clipGradNorm (%s)', (dtype) => {
  const scaledTol = dtype === 'float64' ? TOL_F64 : { atol: 0, rtol: 1e-6 };

  test('clips to maxNorm and returns the norm before clipping', () => {
    const grads = makeGrads(dtype, 1);
    const ref = reference(grads.map(asF64), 1.0);
    expect(ref.norm).toBeGreaterThan(10); // so this case really clips
    const norm = ops.clipGradNorm(grads, 1.0);
    expectClose([norm], [ref.norm], { atol: 0, rtol: 1e-12 }, 'norm');
    grads.forEach((g, k) => expectClose(g.toArray(), ref.clipped[k]!, scaledTol, `grads[${k}]`));
    const after = reference(grads.map(asF64), Infinity).norm;
    expectClose([after], [1.0], { atol: 0, rtol: 1e-5 }, 'norm after clipping');
  });

  test('leaves the grads untouched (bit for bit) when the norm is within maxNorm', () => {
    const grads = makeGrads(dtype, 2);
    const before = grads.map((g) => Array.from(g.toArray()));
    const ref = reference(grads.map(asF64), 1e6);
    expectClose([ops.clipGradNorm(grads, 1e6)], [ref.norm], { atol: 0, rtol: 1e-12 }, 'norm');
    grads.forEach((g, k) => expect(Array.from(g.toArray())).toEqual(before[k]));
  });
});

describe('clipGradNorm semantics', () => {
  test('a single small tensor', () => {
    const g = Tensor.from(Float64Array.from([3, 4]));
    expect(ops.clipGradNorm([g], 1)).toBe(5);
    expectClose(g.toArray(), [3 / (5 + 1e-6), 4 / (5 + 1e-6)], TOL_F64, 'clipped');
  });

  test('maxNorm Infinity measures the norm without clipping (as in PyTorch)', () => {
    const g = Tensor.from(Float32Array.from([30, 40]));
    expect(ops.clipGradNorm([g], Infinity)).toBe(50);
    expect(Array.from(g.toArray())).toEqual([30, 40]);
  });

  test('a non-finite norm is returned and nothing is scaled', () => {
    const rng = new Rng(3);
    const a = Tensor.from(rng.normal(7));
    const before = Array.from(a.toArray());
    const withNaN = Tensor.from(Float64Array.from([1, NaN, 2]));
    expect(ops.clipGradNorm([a, withNaN], 0.1)).toBeNaN();
    expect(Array.from(a.toArray())).toEqual(before);
    const withInf = Tensor.from(Float32Array.from([1, Infinity]));
    const b = Tensor.from(Float32Array.from([2, 3]));
    expect(ops.clipGradNorm([b, withInf], 0.1)).toBe(Infinity);
    expect(Array.from(b.toArray())).toEqual([2, 3]);
  });

  test('bit-identical run to run at 2 threads, and equal to 1 thread', () => {
    const run = (threads: number): [number, Buffer[]] => {
      ops.setNumThreads(threads);
      const grads = [Tensor.randn([100003], { seed: 4 }), Tensor.randn([77, 1031], { seed: 5 })];
      const norm = ops.clipGradNorm(grads, 3);
      return [norm, grads.map((g) => Buffer.from((g.toArray() as Float32Array).buffer))];
    };
    const before = ops.numThreads();
    try {
      const [na, a] = run(2);
      const [nb, b] = run(2);
      const [nc, c] = run(1);
      expect(nb).toBe(na);
      expect(nc).toBe(na);
      a.forEach((buf, k) => {
        expect(buf.equals(b[k]!)).toBe(true);
        expect(buf.equals(c[k]!)).toBe(true);
      });
    } finally {
      ops.setNumThreads(before);
    }
  });

  test('the Async variant resolves to the same norm and clipped grads', async () => {
    const a = makeGrads('float32', 6);
    const b = makeGrads('float32', 6);
    const norm = ops.clipGradNorm(a, 2);
    await expect(ops.clipGradNormAsync(b, 2)).resolves.toBe(norm);
    a.forEach((g, k) => expect(Array.from(b[k]!.toArray())).toEqual(Array.from(g.toArray())));
  });
});

describe('clipGradNorm bad input', () => {
  const g = Tensor.zeros([7], 'float32');

  test('grads must be a non-empty array of live float tensors of one dtype', () => {
    expect(() => ops.clipGradNorm([], 1)).toThrow(/clipGradNorm: argument 'grads' must not be empty/);
    expect(() => ops.clipGradNorm(g as unknown as Tensor[], 1)).toThrow(/'grads' must be an array of Tensors/);
    expect(() => ops.clipGradNorm([g, 3 as unknown as Tensor], 1)).toThrow(/'grads\[1\]' must be a Tensor/);
    const gone = Tensor.zeros([3], 'float32');
    gone.dispose();
    expect(() => ops.clipGradNorm([g, gone], 1)).toThrow(/'grads\[1\]' is a disposed tensor/);
    expect(() => ops.clipGradNorm([g, Tensor.zeros([3], 'float64')], 1)).toThrow(
      /'grads\[1\]' is float64 but 'grads\[0\]' is float32/,
    );
    expect(() => ops.clipGradNorm([Tensor.zeros([3], 'int32')], 1)).toThrow(/'grads\[0\]' must be float32 or float64/);
  });

  test('grads must not overlap', () => {
    expect(() => ops.clipGradNorm([g, g], 1)).toThrow(/'grads\[0\]' and 'grads\[1\]' must not share memory/);
    expect(() => ops.clipGradNorm([g, g.narrow(2, 3)], 1)).toThrow(/must not share memory/);
  });

  test('maxNorm must be a number > 0 (Infinity allowed)', () => {
    expect(() => ops.clipGradNorm([g], 0)).toThrow(/'maxNorm' must be > 0/);
    expect(() => ops.clipGradNorm([g], -1)).toThrow(/'maxNorm' must be > 0/);
    expect(() => ops.clipGradNorm([g], NaN)).toThrow(/'maxNorm' must be > 0 \(or Infinity\), got nan/);
    expect(() => ops.clipGradNorm([g], -Infinity)).toThrow(/'maxNorm' must be > 0/);
    expect(() => ops.clipGradNorm([g], '1' as unknown as number)).toThrow(/'maxNorm' must be a number/);
  });
});

describe('clipGradNorm normOut', () => {
  test('receives the norm it returns; a non-finite norm too, and the grads stay unscaled then', () => {
    const grads = makeGrads('float32', 11);
    const out = Tensor.zeros([1], 'float64');
    const norm = ops.clipGradNorm(grads, 1.0, out);
    expect(out.toArray()[0]).toBe(norm);
    expect(norm).toBeGreaterThan(1);
    const bad = makeGrads('float32', 12);
    const data = bad[1]!.toArray();
    data[5] = NaN;
    bad[1]!.copyFrom(data);
    const before = bad.map((g) => g.toArray());
    expect(ops.clipGradNorm(bad, 1.0, out)).toBeNaN();
    expect(out.toArray()[0]).toBeNaN();
    bad.forEach((g, k) => expect(g.toArray()).toEqual(before[k]));
  });

  test('normOut must be a float64 tensor of one element, apart from the grads', () => {
    const grads = makeGrads('float64', 13);
    expect(() => ops.clipGradNorm(grads, 1, Tensor.zeros([1], 'float32'))).toThrow(/clipGradNorm: argument 'normOut' must be a float64 tensor of one element/);
    expect(() => ops.clipGradNorm(grads, 1, Tensor.zeros([2], 'float64'))).toThrow(/normOut' must be a float64 tensor of one element/);
    expect(() => ops.clipGradNorm(grads, 1, grads[0]!)).toThrow(/clipGradNorm: arguments 'normOut' and 'grads\[0\]' must not share memory/);
  });
});
