import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, ops } from '../../lib';

describe('Tensor', () => {
  test('copies data in and out for every dtype, preserving values exactly', () => {
    const f32 = Tensor.from(new Float32Array([1.5, -2.25, 3e-8, 7]), [2, 2]);
    expect(f32.dtype).toBe('float32');
    expect(f32.shape).toEqual([2, 2]);
    expect(Array.from(f32.toArray())).toEqual([1.5, -2.25, Math.fround(3e-8), 7]);
    const f64 = Tensor.from(new Float64Array([Math.PI, -1e300, 5e-324]), [3]);
    expect(Array.from(f64.toArray())).toEqual([Math.PI, -1e300, 5e-324]);
    const i32 = Tensor.from(new Int32Array([0, -5, 2147483647]));
    expect(i32.dtype).toBe('int32');
    expect(Array.from(i32.toArray())).toEqual([0, -5, 2147483647]);
    const fromList = Tensor.from([1, 2, 3, 4, 5, 6], [3, 2], 'float64');
    expect(fromList.dtype).toBe('float64');
    expect(fromList.numel).toBe(6);
  });

  test('toArray returns a copy owned by JavaScript, not a window into native memory', () => {
    const t = Tensor.from(new Float64Array([1, 2, 3]));
    const a = t.toArray();
    a[0] = 99;
    expect(t.toArray()[0]).toBe(1);
    t.dispose();
    expect(a[1]).toBe(2); // still readable after the native memory is gone
  });

  test('zeros, fill, reshape and narrow views share storage', () => {
    const t = Tensor.zeros([4, 3], 'float64');
    expect(Array.from(t.toArray())).toEqual(new Array(12).fill(0));
    t.copyFrom(Float64Array.from({ length: 12 }, (_, i) => i));
    const rows = t.narrow(1, 2);
    expect(rows).toBeInstanceOf(Tensor);
    expect(rows.shape).toEqual([2, 3]);
    expect(Array.from(rows.toArray())).toEqual([3, 4, 5, 6, 7, 8]);
    rows.fill(-1);
    expect(Array.from(t.toArray())).toEqual([0, 1, 2, -1, -1, -1, -1, -1, -1, 9, 10, 11]);
    const flat = t.reshape([12]);
    expect(flat.shape).toEqual([12]);
    t.dispose(); // frees the memory now: its views are disposed with it
    expect(flat.disposed).toBe(true);
    expect(() => flat.toArray()).toThrow(/disposed/);
    expect(() => ops.scale(rows, 2)).toThrow(/argument 'x' is a disposed tensor/);
  });

  test('a view outlives a garbage-collected (not disposed) base; disposing a view leaves the base alive', () => {
    const base = Tensor.from(new Float64Array([1, 2, 3, 4]), [2, 2]);
    const view = base.narrow(1, 1);
    view.dispose();
    expect(base.disposed).toBe(false);
    expect(Array.from(base.toArray())).toEqual([1, 2, 3, 4]);
  });

  test('random fills are reproducible by seed and differ across seeds', () => {
    const a = Tensor.randn([1000], { seed: 5, dtype: 'float64' }).toArray();
    const b = Tensor.randn([1000], { seed: 5, dtype: 'float64' }).toArray();
    const c = Tensor.randn([1000], { seed: 6, dtype: 'float64' }).toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    const u = Tensor.rand([1000], { seed: 1, lo: 2, hi: 3 }).toArray();
    expect(Math.min(...u)).toBeGreaterThanOrEqual(2);
    expect(Math.max(...u)).toBeLessThan(3);
  });

  test('using a disposed tensor is a clear error, and disposing twice is harmless', () => {
    const t = Tensor.zeros([3]);
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(() => t.toArray()).toThrow(/disposed/);
    expect(() => t.shape).toThrow(/disposed/);
    expect(() => ops.randomNormal(t, 1, 0, 1)).toThrow(/argument 'out' is a disposed tensor/);
    expect(String(t)).toBe('Tensor(disposed)');
  });

  test('Symbol.dispose frees the tensor', () => {
    const t = Tensor.zeros([2]);
    t[Symbol.dispose]();
    expect(t.disposed).toBe(true);
  });

  test('bad shapes, dtypes and data are clear errors', () => {
    expect(() => Tensor.zeros([2, -1])).toThrow(/shape\[1\] must be a non-negative integer/);
    expect(() => Tensor.zeros([1.5])).toThrow(/shape\[0\]/);
    expect(() => Tensor.zeros('3' as unknown as number[])).toThrow(/shape must be an array/);
    expect(() => new Tensor('float16' as 'float32', [2])).toThrow(/unknown dtype 'float16'/);
    expect(() => Tensor.from(new Float32Array(5), [2, 3])).toThrow(/needs 6 elements, data has 5/);
    expect(() => Tensor.from(new Float32Array(2), [2], 'float64')).toThrow(/float32 array but dtype 'float64'/);
    expect(() => Tensor.from([1, 'x' as unknown as number])).toThrow(/data\[1\] is not a number/);
    const t = Tensor.zeros([2, 3]);
    expect(() => t.copyFrom(new Float64Array(6))).toThrow(/Float32Array/);
    expect(() => t.copyFrom(new Float32Array(5))).toThrow(/5 elements/);
    expect(() => t.copyFrom([1, 2] as unknown as Float32Array)).toThrow(/expected a Float32Array/);
    expect(() => t.reshape([4, 2])).toThrow(/cannot view \[2, 3\]/);
    expect(() => t.narrow(1, 2)).toThrow(/exceed the first dimension 2/);
    expect(() => t.fill('a' as unknown as number)).toThrow(/value must be a number/);
    expect(() => Tensor.zeros([2], 'int32').fill(0.5)).toThrow(/integer/);
    expect(() => Tensor.zeros([1e12, 1e12])).toThrow(/too large|out of memory/);
  });

  test('a plain object that looks like a tensor is rejected', () => {
    const fake = { shape: [3], dtype: 'float32', toArray: () => new Float32Array(3) };
    expect(() => ops.randomNormal(fake as unknown as Tensor, 1, 0, 1)).toThrow(/argument 'out' must be a Tensor/);
  });
});

describe('native memory accounting', () => {
  test('dispose() returns the native allocation count to its baseline, even with views still referenced', () => {
    const base = ops.allocStats();
    const ts = Array.from({ length: 50 }, () => Tensor.zeros([1000], 'float64'));
    const views = ts.map((t) => t.reshape([10, 100]));
    expect(ops.allocStats().liveBytes - base.liveBytes).toBe(50 * 8000);
    ts.forEach((t) => t.dispose());
    expect(views.every((v) => v.disposed)).toBe(true);
    expect(ops.allocStats().liveBytes).toBe(base.liveBytes);
    expect(ops.allocStats().liveAllocations).toBe(base.liveAllocations);
  });

  test('garbage-collected tensors free their native memory (finalizer)', () => {
    // A child process with --expose-gc: allocate, drop every reference, collect, and compare with the baseline.
    const script = `
      const { Tensor, ops } = require(${JSON.stringify(path.resolve(__dirname, '../../dist'))});
      const base = ops.allocStats();
      (function () { for (let i = 0; i < 200; i++) { const t = Tensor.zeros([10000]); t.reshape([100, 100]); } })();
      const during = ops.allocStats();
      const wait = () => new Promise((r) => setImmediate(r));
      (async () => {
        for (let i = 0; i < 20 && ops.allocStats().liveAllocations > base.liveAllocations; i++) { global.gc(); await wait(); }
        const after = ops.allocStats();
        console.log(JSON.stringify({ base: base.liveAllocations, total: during.totalAllocations - base.totalAllocations, after: after.liveAllocations, bytes: after.liveBytes - base.liveBytes }));
      })();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout.trim()) as { base: number; total: number; after: number; bytes: number };
    expect(out.total).toBe(200);
    expect(out.after).toBe(out.base);
    expect(out.bytes).toBe(0);
  });
});

describe('thread pool and ISA settings', () => {
  test('setNumThreads validates and takes effect', () => {
    const prev = ops.numThreads();
    ops.setNumThreads(3);
    expect(ops.numThreads()).toBe(3);
    ops.setNumThreads(prev);
    expect(() => ops.setNumThreads(0)).toThrow(/threads/);
    expect(() => ops.setNumThreads(1.5)).toThrow(/integer/);
    expect(() => ops.setNumThreads('2' as unknown as number)).toThrow(/must be an integer/);
  });

  test('the ISA can be forced to any supported variant and rejects unknown names', () => {
    expect(ops.isaSupported('generic')).toBe(true);
    const prev = ops.isa();
    ops.setIsa('generic');
    expect(ops.isa()).toBe('generic');
    ops.setIsa(prev);
    expect(() => ops.setIsa('sse9' as 'avx2')).toThrow(/unknown ISA 'sse9'/);
    if (!ops.isaSupported('avx512')) expect(() => ops.setIsa('avx512')).toThrow(/cannot run the avx512/);
  });

  test('the default ISA is supported, and the widest one except where 512-bit operations are split', () => {
    const def = ops.defaultIsa();
    expect(ops.isaSupported(def)).toBe(true);
    const widest = (['avx512', 'avx2', 'generic'] as const).find((i) => ops.isaSupported(i))!;
    // AMD Zen 3/4 (family 0x19) split AVX-512 into two 256-bit halves: avx2 is faster there (bench:generate).
    const cpu = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const zen34 = /vendor_id\s*:\s*AuthenticAMD/.test(cpu) && /cpu family\s*:\s*25\b/.test(cpu);
    expect(def).toBe(widest === 'avx512' && zen34 ? 'avx2' : widest);
    // Without WAVEMOE_ISA the addon starts on the default.
    if (!process.env.WAVEMOE_ISA) {
      const r = spawnSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(path.resolve(__dirname, '../../dist'))}).ops.isa())`], { encoding: 'utf8', env: { ...process.env, WAVEMOE_ISA: '' } });
      expect(r.stdout.trim()).toBe(def);
    }
  });
});

describe('async ops', () => {
  test('an Async op resolves with the same result and returns at once, leaving the event loop free', async () => {
    const n = 8_000_000;
    const ref = Tensor.zeros([n], 'float64');
    let t0 = performance.now();
    ops.randomNormal(ref, 11, 0, 1);
    const syncMs = performance.now() - t0;
    const big = Tensor.zeros([n], 'float64');
    t0 = performance.now();
    const p = ops.randomNormalAsync(big, 11, 0, 1);
    const callMs = performance.now() - t0;
    expect(typeof p.then).toBe('function');
    await p;
    expect(callMs).toBeLessThan(syncMs / 4); // the work ran off the main thread
    const a = big.toArray();
    const b = ref.toArray();
    for (const i of [0, 1, 12345, n - 1]) expect(a[i]).toBe(b[i]);
    big.dispose();
    ref.dispose();
  });

  test('validation errors of an Async op throw at the call; the tensor may be disposed while it runs', async () => {
    const small = Tensor.zeros([2]);
    expect(() => ops.randomNormalAsync(small, 1, 0, -1)).toThrow(/'std' must be >= 0/);
    small.dispose();
    const t = Tensor.zeros([1_000_000]);
    const p = ops.randomUniformAsync(t, 3, 0, 1);
    const pinned = ops.allocStats().liveBytes;
    t.dispose(); // the running job pins the storage: it is freed when the job ends
    expect(t.disposed).toBe(true);
    await expect(p).resolves.toBeUndefined();
    // Freed once the job ended (other tensors may have been collected meanwhile, so at least 4 MB less).
    expect(pinned - ops.allocStats().liveBytes).toBeGreaterThanOrEqual(4_000_000);
  });
});
