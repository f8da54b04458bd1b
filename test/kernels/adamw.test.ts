/**
 * adamwStep against a plain float64 JS transcription of torch.optim.AdamW (PyTorch 1.13 _single_tensor_adamw) over
 * several steps, and against a fixture frozen from torch itself (test/fixtures/make_adamw_fixture.py).
 * float64: TOL_F64. float32: atol 1e-6, rtol 1e-5 (parameters of order 1, several steps of float32 rounding).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, ops, runAsync } from '../../lib';
import type { FloatDType } from '../../lib';
import { Rng } from '../helpers/random';
import { TOL_F64, expectClose, type Tolerance } from '../helpers/compare';

interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** One step of PyTorch's algorithm in float64, in place on p, m, v. */
function refStep(p: Float64Array, m: Float64Array, v: Float64Array, g: ArrayLike<number>, h: Hyper, step: number): void {
  const bc1 = 1 - h.beta1 ** step;
  const bc2 = 1 - h.beta2 ** step;
  const stepSize = h.lr / bc1;
  for (let i = 0; i < p.length; i++) {
    p[i] = p[i]! * (1 - h.lr * h.weightDecay);
    m[i] = h.beta1 * m[i]! + (1 - h.beta1) * g[i]!;
    v[i] = h.beta2 * v[i]! + (1 - h.beta2) * g[i]! * g[i]!;
    p[i] = p[i]! - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + h.eps);
  }
}

const TOL_F32_ADAMW: Tolerance = { atol: 1e-6, rtol: 1e-5 };
const tolFor = (dtype: FloatDType): Tolerance => (dtype === 'float64' ? TOL_F64 : TOL_F32_ADAMW);

function floatTensor(data: ArrayLike<number>, dtype: FloatDType): Tensor {
  return dtype === 'float64' ? Tensor.from(Float64Array.from(data)) : Tensor.from(Float32Array.from(data));
}

const HYPER: Hyper = { lr: 2e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

describe.each(['float64', 'float32'] as FloatDType[])('adamwStep (%s)', (dtype) => {
  test.each([1, 7, 67, 1031, 40009])('n=%i matches the float64 reference over 5 steps', (n) => {
    const param = Tensor.randn([n], { seed: n, dtype }); // native fills: fast for the multi-chunk size
    const m = Tensor.zeros([n], dtype);
    const v = Tensor.zeros([n], dtype);
    const [rp, rm, rv] = [Float64Array.from(param.toArray()), new Float64Array(n), new Float64Array(n)];
    for (let step = 1; step <= 5; step++) {
      const grad = Tensor.randn([n], { seed: n + step, std: 0.1 * step, dtype });
      ops.adamwStep(param, grad, m, v, { ...HYPER, step });
      refStep(rp, rm, rv, grad.toArray(), HYPER, step);
    }
    expectClose(param.toArray(), rp, tolFor(dtype), 'param');
    expectClose(m.toArray(), rm, tolFor(dtype), 'm');
    expectClose(v.toArray(), rv, tolFor(dtype), 'v');
  });
});

describe('adamwStep semantics', () => {
  test('defaults are torch.optim.AdamW\'s (betas 0.9/0.999, eps 1e-8, weight decay 0.01)', () => {
    const rng = new Rng(3);
    const p0 = rng.normal(13);
    const g = rng.normal(13);
    const param = Tensor.from(p0);
    ops.adamwStep(param, Tensor.from(g), Tensor.zeros([13], 'float64'), Tensor.zeros([13], 'float64'), {
      lr: 1e-3,
      step: 1,
    });
    const [rp, rm, rv] = [Float64Array.from(p0), new Float64Array(13), new Float64Array(13)];
    refStep(rp, rm, rv, g, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }, 1);
    expectClose(param.toArray(), rp, TOL_F64, 'param');
  });

  test('the same tensors (any shape) give the same result; the Async variant too', async () => {
    const rng = new Rng(4);
    const p0 = rng.normal(6 * 7);
    const g = Tensor.from(rng.normal(6 * 7), [6, 7]);
    const make = (): Tensor[] => [Tensor.from(p0, [6, 7]), Tensor.zeros([6, 7], 'float64'), Tensor.zeros([6, 7], 'float64')];
    const [pa, ma, va] = make() as [Tensor, Tensor, Tensor];
    const [pb, mb, vb] = make() as [Tensor, Tensor, Tensor];
    ops.adamwStep(pa, g, ma, va, { ...HYPER, step: 1 });
    await expect(ops.adamwStepAsync(pb, g, mb, vb, { ...HYPER, step: 1 })).resolves.toBeUndefined();
    expect(Array.from(pb.toArray())).toEqual(Array.from(pa.toArray()));
    expect(Array.from(vb.toArray())).toEqual(Array.from(va.toArray()));
  });
});

interface FixtureStep {
  grad: number[];
  param: number[];
  m: number[];
  v: number[];
}
interface Fixture extends Hyper {
  torch: string;
  cases: { dtype: FloatDType; param0: number[]; steps: FixtureStep[] }[];
}

describe('adamwStep against torch.optim.AdamW (frozen fixture)', () => {
  const fixture = JSON.parse(
    fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'adamw_torch.json'), 'utf8'),
  ) as Fixture;

  test.each(fixture.cases.map((c) => [c.dtype, c] as const))('%s, every step', (dtype, c) => {
    const n = c.param0.length;
    const param = floatTensor(c.param0, dtype);
    const m = Tensor.zeros([n], dtype);
    const v = Tensor.zeros([n], dtype);
    c.steps.forEach((s, k) => {
      ops.adamwStep(param, floatTensor(s.grad, dtype), m, v, {
        lr: fixture.lr,
        beta1: fixture.beta1,
        beta2: fixture.beta2,
        eps: fixture.eps,
        weightDecay: fixture.weightDecay,
        step: k + 1,
      });
      expectClose(param.toArray(), s.param, tolFor(dtype), `param after step ${k + 1}`);
      expectClose(m.toArray(), s.m, tolFor(dtype), `m after step ${k + 1}`);
      expectClose(v.toArray(), s.v, tolFor(dtype), `v after step ${k + 1}`);
    });
  });
});

describe('adamwStep bad input', () => {
  const t = (dtype: FloatDType = 'float32', n = 7): Tensor => Tensor.zeros([n], dtype);
  const [param, grad, m, v] = [t(), t(), t(), t()];
  const ok = { lr: 1e-3, step: 1 };

  test('step must be an integer >= 1, lr and step are required', () => {
    expect(() => ops.adamwStep(param, grad, m, v, { lr: 1e-3, step: 0 })).toThrow(
      /adamwStep: option 'step' must be an integer in \[1,/,
    );
    expect(() => ops.adamwStep(param, grad, m, v, { lr: 1e-3, step: 1.5 })).toThrow(/'step' must be an integer/);
    expect(() => ops.adamwStep(param, grad, m, v, { lr: 1e-3 } as never)).toThrow(/option 'step' is required/);
    expect(() => ops.adamwStep(param, grad, m, v, { step: 1 } as never)).toThrow(/option 'lr' is required/);
    expect(() => ops.adamwStep(param, grad, m, v, undefined as never)).toThrow(/option 'lr' is required/);
  });

  test('non-finite and out-of-range hyper-parameters', () => {
    const bad: [Record<string, number>, RegExp][] = [
      [{ lr: NaN }, /'lr' must be finite/],
      [{ lr: Infinity }, /'lr' must be finite/],
      [{ lr: -1e-3 }, /'lr' must be >= 0/],
      [{ eps: 0 }, /'eps' must be > 0/],
      [{ eps: Infinity }, /'eps' must be finite/],
      [{ beta1: 1 }, /'beta1' must be in \[0, 1\)/],
      [{ beta2: -0.1 }, /'beta2' must be in \[0, 1\)/],
      [{ beta2: NaN }, /'beta2' must be finite/],
      [{ weightDecay: -0.01 }, /'weightDecay' must be >= 0/],
    ];
    for (const [extra, msg] of bad) expect(() => ops.adamwStep(param, grad, m, v, { ...ok, ...extra })).toThrow(msg);
    expect(() => ops.adamwStep(param, grad, m, v, { ...ok, beta: 0.9 } as never)).toThrow(/unknown option 'beta'/);
    expect(() => ops.adamwStep(param, grad, m, v, { ...ok, lr: '1e-3' } as never)).toThrow(/'lr' must be a number/);
  });

  test('shapes, dtypes and overlap', () => {
    expect(() => ops.adamwStep(param, t('float32', 8), m, v, ok)).toThrow(/'grad' must have shape \[7\], got \[8\]/);
    expect(() => ops.adamwStep(param, grad, t('float64'), v, ok)).toThrow(/'m' is float64 but 'param' is float32/);
    expect(() => ops.adamwStep(Tensor.zeros([7], 'int32'), grad, m, v, ok)).toThrow(/'param' must be float32 or float64/);
    expect(() => ops.adamwStep(param, grad, m, m, ok)).toThrow(/'m' and 'v' must not share memory/);
    expect(() => ops.adamwStep(param, param, m, v, ok)).toThrow(/'param' and 'grad' must not share memory/);
  });

  test('disposed tensors and wrong argument types', () => {
    const gone = t();
    gone.dispose();
    expect(() => ops.adamwStep(param, grad, m, gone, ok)).toThrow(/'v' is a disposed tensor/);
    expect(() => ops.adamwStep(param, [0] as unknown as Tensor, m, v, ok)).toThrow(/'grad' must be a Tensor/);
    expect(() => ops.adamwStep(param, grad, m, v, 0.001 as never)).toThrow(/options must be an object/);
  });
});

describe('adamwStep skipIfNonFinite', () => {
  const setup = (seed: number) => {
    const n = 67;
    return [0, 1, 2, 3].map((k) => Tensor.randn([n], { seed: seed + k, std: k === 3 ? 0.1 : 1, dtype: 'float64' }));
  };
  const abs = (ts: Tensor[]) => ts.map((t) => Array.from(t.toArray()));

  test('a finite guard changes nothing about the step; NaN or Infinity skips it entirely', () => {
    const guard = Tensor.zeros([1], 'float64');
    const opts = { lr: 1e-2, step: 1, weightDecay: 0.1 };
    const [p1, g1, m1, v1] = setup(1);
    const [p2, g2, m2, v2] = setup(1);
    v1!.copyFrom(v1!.toArray().map(Math.abs));
    v2!.copyFrom(v2!.toArray().map(Math.abs));
    guard.fill(3.5);
    ops.adamwStep(p1!, g1!, m1!, v1!, opts);
    ops.adamwStep(p2!, g2!, m2!, v2!, { ...opts, skipIfNonFinite: guard });
    expect(abs([p2!, m2!, v2!])).toEqual(abs([p1!, m1!, v1!]));
    for (const bad of [NaN, Infinity, -Infinity]) {
      const before = abs([p2!, m2!, v2!]);
      guard.fill(bad);
      ops.adamwStep(p2!, g2!, m2!, v2!, { ...opts, step: 2, skipIfNonFinite: guard });
      expect(abs([p2!, m2!, v2!])).toEqual(before);
    }
  });

  test('the guard is read when the step runs, not when it is recorded', async () => {
    const guard = Tensor.zeros([1], 'float64');
    const [p, g, m, v] = setup(5);
    v!.copyFrom(v!.toArray().map(Math.abs));
    const before = abs([p!, m!, v!]);
    await runAsync(() => {
      // The guard holds 0 (finite) while this is recorded; the recorded fill makes it NaN before the step runs.
      guard.fill(NaN);
      ops.adamwStep(p!, g!, m!, v!, { lr: 1e-2, step: 1, skipIfNonFinite: guard });
    });
    expect(abs([p!, m!, v!])).toEqual(before);
  });

  test('the guard must be a float64 tensor of one element', () => {
    const [p, g, m, v] = setup(9);
    expect(() => ops.adamwStep(p!, g!, m!, v!, { lr: 1, step: 1, skipIfNonFinite: Tensor.zeros([1], 'float32') })).toThrow(
      /adamwStep: option 'skipIfNonFinite' must be a float64 tensor of one element/,
    );
    expect(() => ops.adamwStep(p!, g!, m!, v!, { lr: 1, step: 1, skipIfNonFinite: 3 as never })).toThrow(/option 'skipIfNonFinite' must be a Tensor/);
  });
});
