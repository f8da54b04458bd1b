/**
 * Tensors on devices, without a GPU: Tensor.device and .to(), the same-device rule of every op, ops that have no
 * kernel for a device, and the errors of a CPU-only build. The device plumbing runs against a stand-in "cuda" device
 * in host memory (WAVEMOE_FAKE_CUDA=1, a test-only backend of the CPU build), in a child process so that its
 * process-wide registration never reaches other test files. The real CUDA kernels are compared with the CPU ones by
 * test/gpu/ and test/native/cuda_test_* wherever a GPU is present.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Tensor, ops } from '../../lib';

const CHILD = path.join(__dirname, '..', 'helpers', 'device_child.js');

type Result = { value?: unknown; error?: { name: string; message: string } };

function runChild(env: Record<string, string>): Record<string, Result> {
  const r = spawnSync(process.execPath, [CHILD], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`device_child exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, Result>;
}

function value(results: Record<string, Result>, name: string): unknown {
  const r = results[name];
  if (!r) throw new Error(`no result for ${name}`);
  if (r.error) throw new Error(`${name} failed: ${r.error.name}: ${r.error.message}`);
  return r.value;
}

function error(results: Record<string, Result>, name: string): { name: string; message: string } {
  const r = results[name];
  if (!r) throw new Error(`no result for ${name}`);
  if (!r.error) throw new Error(`${name} should have failed, gave ${JSON.stringify(r.value)}`);
  return r.error;
}

describe('device plumbing against the fake CUDA device', () => {
  let r: Record<string, Result>;
  beforeAll(() => {
    // The CPU build is what `npm test` loads; a CUDA build registers the real backend and ignores the fake one.
    r = runChild({ WAVEMOE_FAKE_CUDA: '1', WAVEMOE_ADDON: '' });
  });

  test('the fake backend is active only in the CPU build', () => {
    expect(value(r, 'flags')).toEqual({ cuda: false, fakeCuda: true });
  });

  test('tensors report their device; cuda means cuda:0', () => {
    expect(value(r, 'cpuDevice')).toBe('cpu');
    expect(value(r, 'newOnCuda')).toBe('cuda:0');
    expect(value(r, 'newOnCuda1')).toBe('cuda:1');
  });

  test('a device that does not exist, or a malformed name, is a clear error', () => {
    expect(error(r, 'newOnMissingDevice').message).toBe(
      "new Tensor: device 'cuda:7' does not exist: 2 fake CUDA devices (cuda:0, cuda:1)",
    );
    expect(error(r, 'badDeviceName')).toEqual({
      name: 'TypeError',
      message: "new Tensor: device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'",
    });
    expect(error(r, 'badDeviceType').name).toBe('TypeError');
  });

  test('.to() copies there and back exactly, also between two GPUs', () => {
    const f = Math.fround;
    expect(value(r, 'roundTrip')).toEqual({
      device: 'cuda:0',
      shape: [2, 3],
      back: [1.5, -2, 3.25, f(4e-8), 5, -6],
      direct: [1.5, -2, 3.25, f(4e-8), 5, -6],
    });
    expect(value(r, 'crossDevice')).toEqual({ d1: 'cuda:1', d0: 'cuda:0', values: [7, 8, 9] });
  });

  test('.to() on the same device is a new tensor with its own storage and owner', () => {
    expect(value(r, 'toMakesIndependentCopy')).toEqual({ h: [9, 9, 9], gDisposed: true, hDisposed: false });
  });

  test('fill, copyFrom, toArray and views work on device tensors', () => {
    expect(value(r, 'fillAndCopyFromOnDevice')).toEqual({ filled: [0.25, 0.25, 0.25], copied: [1, 2, 3], ints: [-5, -5] });
    expect(value(r, 'viewsKeepDevice')).toEqual({ device: 'cuda:1', values: [2, 3, 4, 5] });
  });

  test('an op whose tensors are on different devices names both arguments and devices', () => {
    expect(error(r, 'mixedDevices').message).toBe(
      "softmaxForward: argument 'x' is on cuda:0 but 'out' is on cpu: the tensors of one op must be on the same " +
        "device (move one with .to('cpu'))",
    );
    expect(error(r, 'twoGpus').message).toMatch(/argument 'x' is on cuda:1 but 'out' is on cuda:0/);
    expect(error(r, 'listOnMixedDevices').message).toMatch(/clipGradNorm: argument 'grads\[1\]' is on cpu but 'grads\[0\]' is on cuda:0/);
  });

  test('an op without a kernel for the device refuses its tensors (never runs the CPU kernel on them)', () => {
    const msg = "softmaxForward: has no kernel for cuda:0 yet: its tensors must be on the CPU (move them with .to('cpu'))";
    expect(error(r, 'noKernelYet').message).toBe(msg);
    expect(error(r, 'noKernelYetAsync').message).toBe(msg);
  });

  test('index checks read device tensors through a copy (no host read of device memory)', () => {
    expect(error(r, 'idsOnDeviceChecked')).toEqual({
      name: 'RangeError',
      message: 'embeddingForward: ids at 2 is 5, out of range [0, 5) for a table of 5 rows',
    });
  });

  test('the copy op runs on any device backend, immediately and recorded', () => {
    expect(value(r, 'copyOpOnDevice')).toEqual([3, 1, 4, 1, 5]);
    expect(value(r, 'recordedOnDevice')).toEqual({ g: [0, 0, 0, 0], h: [1, 2, 3, 4] });
    expect(error(r, 'toInsideRecording').message).toMatch(/^Tensor\.to: not available while ops are being recorded/);
  });

  test('dispose frees device memory', () => {
    expect(value(r, 'freedOnDispose')).toEqual({ during: 8000, after: 0 });
  });

  test('device utilities check their argument', () => {
    expect(value(r, 'synchronize')).toBeNull();
    expect(error(r, 'synchronizeBadName')).toEqual({
      name: 'TypeError',
      message: "cudaSynchronize: argument 'device' must be 'cuda' or 'cuda:N'",
    });
  });
});

describe('a CPU-only build', () => {
  test('asking for a GPU says that this build is CPU only and how to get a CUDA one', () => {
    if (ops.cuda) return; // the suite was pointed at a CUDA build (WAVEMOE_ADDON): test/gpu covers it
    const want = /device 'cuda:0' needs the CUDA-enabled build of wavemoe, and this one is CPU only \(build it with `npm run build:cuda`/;
    expect(() => Tensor.zeros([2], 'float32', 'cuda')).toThrow(want);
    const t = Tensor.from([1, 2]);
    expect(() => t.to('cuda')).toThrow(/^Tensor\.to\('cuda:0'\): device 'cuda:0' needs the CUDA-enabled build/);
    expect(() => ops.cudaMemoryStats()).toThrow(/^cudaMemoryStats: device 'cuda:0' needs the CUDA-enabled build/);
    expect(ops.cudaInfo().built).toBe(false);
  });

  test('CPU tensors: device, a copying .to("cpu"), and toString', () => {
    const t = Tensor.from([1, 2, 3], [3]);
    expect(t.device).toBe('cpu');
    const u = t.to('cpu');
    expect(u).toBeInstanceOf(Tensor);
    u.fill(5);
    expect(Array.from(t.data())).toEqual([1, 2, 3]);
    t.dispose();
    expect(Array.from(u.data())).toEqual([5, 5, 5]);
    expect(String(u)).toBe('Tensor(float32, [3])');
    // (the addon's TypeError comes from Node's realm, not jest's sandbox: compare name and message)
    expect(() => u.to('tpu' as never)).toThrow("Tensor.to: device must be 'cpu', 'cuda' or 'cuda:N', got 'tpu'");
    let name = '';
    try {
      u.to('tpu' as never);
    } catch (e) {
      name = (e as Error).name;
    }
    expect(name).toBe('TypeError');
    u.dispose();
  });
});
