// ops.runAsync: recorded ops run in order, off the main thread, with the results of running them one by one.
import { Scalar, Tensor, ops, runAsync, scalar } from '../../lib';
import { Rng } from '../helpers/random';

function randomTensor(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(Float32Array.from(new Rng(seed).uniform(n)), shape);
}

test('a recorded sequence gives exactly the result of the same ops run one by one', async () => {
  const [M, K, N] = [37, 29, 13];
  const a = randomTensor([M, K], 1), b = randomTensor([K, N], 2), bias = randomTensor([N], 3);
  const chain = (out: Tensor, tmp: Tensor) => {
    ops.matmul(tmp, a, b);
    ops.biasAdd(tmp, bias);
    ops.scale(tmp, 0.5);
    ops.add(out, tmp, tmp); // reads what the previous recorded ops wrote
  };
  const syncOut = Tensor.zeros([M, N]), syncTmp = Tensor.zeros([M, N]);
  chain(syncOut, syncTmp);
  const asyncOut = Tensor.zeros([M, N]), asyncTmp = Tensor.zeros([M, N]);
  const returned = await runAsync(() => {
    chain(asyncOut, asyncTmp);
    return 'done';
  });
  expect(returned).toBe('done');
  expect(asyncOut.toArray()).toEqual(syncOut.toArray());
});

test('fill and copyFrom are recorded in order with the ops', async () => {
  const x = Tensor.from(new Float64Array([1, 2, 3]));
  const y = Tensor.zeros([3], 'float64');
  await runAsync(() => {
    ops.add(y, x, x); // 2, 4, 6
    x.fill(10); // after the add: the add still saw 1, 2, 3
    ops.axpy(y, x, 1); // 12, 14, 16
    x.copyFrom(new Float64Array([-1, -2, -3]));
    ops.axpy(y, x, 1); // 11, 12, 13
  });
  expect(Array.from(y.toArray())).toEqual([11, 12, 13]);
  expect(Array.from(x.toArray())).toEqual([-1, -2, -3]);
});

test('while recording, data is not readable, async ops are refused and scalar results are NaN', async () => {
  const logits = randomTensor([5, 7], 4);
  const targets = Tensor.from(new Int32Array([0, 6, 3, 2, 1]));
  await runAsync(() => {
    expect(() => logits.toArray()).toThrow(/ops are being recorded/);
    expect(() => ops.scaleAsync(logits, 2)).toThrow(/cannot start an async op while ops are being recorded/);
    expect(ops.crossEntropyForwardBackward(null, null, logits, targets)).toBeNaN();
  });
  let inner: Promise<unknown> | undefined;
  await runAsync(() => {
    inner = runAsync(() => undefined);
  });
  await expect(inner).rejects.toThrow(/do not nest/);
  // Recording works again afterwards.
  await expect(runAsync(() => 1)).resolves.toBe(1);
});

test('a validation error while recording throws at once and drops the recording', async () => {
  const x = Tensor.zeros([4]);
  await expect(
    runAsync(() => {
      x.fill(5);
      ops.add(x, x, Tensor.zeros([3])); // shape mismatch: thrown by the add's validation
    }),
  ).rejects.toThrow(/add/);
  expect(Array.from(x.toArray())).toEqual([0, 0, 0, 0]); // the recorded fill never ran
  x.fill(1); // and ops run immediately again
  expect(Array.from(x.toArray())).toEqual([1, 1, 1, 1]);
});

test('a failure while running rejects with the failing op named, and the rest is not run', async () => {
  const logits = Tensor.from(new Float32Array([0, NaN, 1]), [1, 3]);
  const ids = Tensor.zeros([1], 'int32');
  const after = Tensor.zeros([1]);
  await expect(
    runAsync(() => {
      ops.sampleTokens(ids, logits, { temperature: 0 });
      after.fill(7);
    }),
  ).rejects.toThrow(/sampleTokens \(recorded step 1 of 2\).*NaN/);
  expect(after.toArray()[0]).toBe(0);
});

test('tensors disposed while recording are freed only after the run, which still reads them', async () => {
  const x = Tensor.from(new Float32Array([1, 2, 3]));
  const y = Tensor.zeros([3]);
  const run = runAsync(() => {
    const tmp = Tensor.zeros([3]);
    ops.add(tmp, x, x);
    ops.add(y, tmp, x);
    tmp.dispose(); // the recorded adds still own its memory (a use after free would show under test:sanitize)
    x.dispose();
  });
  expect(x.disposed).toBe(true);
  const mid = ops.allocStats().liveBytes;
  await run;
  expect(Array.from(y.toArray())).toEqual([3, 6, 9]);
  y.dispose();
  // Process-wide counters: the garbage collector may free other tests' tensors meanwhile, which only adds to the
  // drop. x, tmp and y (3 × 12 bytes) must all be gone once the run is over.
  expect(mid - ops.allocStats().liveBytes).toBeGreaterThanOrEqual(36);
});

test('the event loop runs while a recorded job runs', async () => {
  const a = randomTensor([384, 384], 5), b = randomTensor([384, 384], 6), c = Tensor.zeros([384, 384]);
  let ticked = false;
  setImmediate(() => (ticked = true));
  await runAsync(() => {
    for (let i = 0; i < 8; i++) ops.matmul(c, a, b); // ~0.9 GFLOP: milliseconds, far longer than one loop turn
  });
  expect(ticked).toBe(true); // a synchronous run would have resumed here before the immediate
});

test('scalar(): an op\'s scalar result inside runAsync is NaN while recording and set once the run completes', async () => {
  const grads = [randomTensor([7, 13], 21), randomTensor([31], 22)];
  const expected = ops.clipGradNorm(grads.map((g) => Tensor.from(g.toArray(), g.shape)), Infinity);
  let during = 0;
  let handle: Scalar | null = null;
  await runAsync(() => {
    handle = scalar(() => ops.clipGradNorm(grads, Infinity));
    during = handle.value;
  });
  expect(during).toBeNaN();
  expect(handle!.value).toBe(expected);
  // Outside a recording the value is there at once.
  expect(scalar(() => ops.clipGradNorm(grads, Infinity)).value).toBe(expected);
});

test('scalar() inside runAsync refuses a call that makes no op call with a scalar result', async () => {
  await expect(runAsync(() => scalar(() => 3))).rejects.toThrow(/exactly one op call that returns a number/);
});

// Index checks read tensor data. Inside a recording that data may be written by an earlier recorded op (ids copied
// in for this step), so the check happens when the op runs: the run rejects with the op's message, and nothing
// reads out of bounds (once, an id copied in a recording sent the embedding past its table).
describe('data-dependent checks of recorded ops run when the op runs', () => {
  const bad = (size: number, badValue: number): Int32Array => Int32Array.from({ length: size }, (_, i) => (i === size - 1 ? badValue : i % 3));
  const cases: Array<[string, () => void, RegExp]> = [];
  const table = randomTensor([5, 4], 31);
  const ids = Tensor.zeros([7], 'int32');
  const rows = Tensor.zeros([7, 4]);
  cases.push(['embeddingForward', () => { ids.copyFrom(bad(7, 1_000_000)); ops.embeddingForward(rows, ids, table); },
    /embeddingForward \(recorded step 2 of 2\): ids at 6 is 1000000, out of range \[0, 5\) for a table of 5 rows/]);
  cases.push(['embeddingBackward', () => { ids.copyFrom(bad(7, -4)); ops.embeddingBackward(table, rows, ids); },
    /embeddingBackward \(recorded step 2 of 2\): ids at 6 is -4, out of range/]);
  const logits = randomTensor([7, 5], 32);
  cases.push(['crossEntropyForwardBackward', () => { ids.copyFrom(bad(7, 99)); ops.crossEntropyForwardBackward(null, null, logits, ids); },
    /crossEntropyForwardBackward \(recorded step 2 of 2\): targets\[6\] is 99, out of range \[0, 5\) and not the ignore index -100/]);
  const history = Tensor.zeros([7, 1], 'int32');
  const out = Tensor.zeros([7], 'int32');
  cases.push(['sampleTokens', () => { history.copyFrom(bad(7, 5)); ops.sampleTokens(out, logits, { temperature: 0, history, repetitionPenalty: 1.2 }); },
    /sampleTokens \(recorded step 2 of 2\): option 'history' holds token id 5 at \[6, 0\], outside \[-1, 5\)/]);
  const W = randomTensor([3, 4], 33), raw = randomTensor([5, 3], 34);
  cases.push(['waveletEmbeddingRawForward', () => { ids.copyFrom(bad(7, 5)); ops.waveletEmbeddingRawForward(rows, ids, raw, W); },
    /waveletEmbeddingRawForward \(recorded step 2 of 2\): ids\[6\] = 5 is out of range \[0, 5\)/]);

  test.each(cases)('%s', async (_name, record, message) => {
    ids.fill(0);
    history.fill(0);
    const before = [table.toArray(), rows.toArray()];
    await expect(runAsync(record)).rejects.toThrow(message);
    if (_name !== 'embeddingForward' && _name !== 'waveletEmbeddingRawForward') expect(rows.toArray()).toEqual(before[1]);
    expect(table.toArray()).toEqual(before[0]);
    // The same ops with valid data run (the recording machinery is intact after a failed run).
    await runAsync(() => {
      ids.fill(0);
      ops.embeddingForward(rows, ids, table);
    });
  });

  test('run now, the same checks still throw at the call, before anything runs', () => {
    ids.copyFrom(bad(7, 9));
    expect(() => ops.embeddingForward(rows, ids, table)).toThrow(/^embeddingForward: ids at 6 is 9, out of range/);
    expect(() => ops.crossEntropyForwardBackward(null, null, logits, ids)).toThrow(/targets\[6\] is 9/);
  });
});
