#!/usr/bin/env node
/**
 * A child process for test/core/device.test.ts: loads the raw addon (WAVEMOE_ADDON, else the local build through
 * node-gyp-build) in a process of its own, because WAVEMOE_FAKE_CUDA=1 registers a process-wide device backend that
 * other test files must not see. Runs each scenario below and prints one JSON object {name: result} on stdout, where
 * a result is {value} or {error: {name, message}}; the test file makes the assertions.
 */
'use strict';
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const addon = process.env.WAVEMOE_ADDON ? require(process.env.WAVEMOE_ADDON) : require('node-gyp-build')(root);
const { Tensor } = addon;

function f32(values, shape, device) {
  const t = new Tensor('float32', shape ?? [values.length], device);
  t.copyFrom(Float32Array.from(values));
  return t;
}

const scenarios = {
  flags: () => ({ cuda: addon.cuda, fakeCuda: addon.fakeCuda ?? false }),
  cpuDevice: () => new Tensor('float32', [2]).device,
  newOnCuda: () => new Tensor('float32', [2, 3], 'cuda').device,
  newOnCuda1: () => new Tensor('int32', [4], 'cuda:1').device,
  newOnMissingDevice: () => new Tensor('float32', [2], 'cuda:7').device,
  badDeviceName: () => new Tensor('float32', [2], 'gpu'),
  badDeviceType: () => new Tensor('float32', [2], 3),
  roundTrip: () => {
    const g = f32([1.5, -2, 3.25, 4e-8, 5, -6], [2, 3]).to('cuda');
    return { device: g.device, shape: g.shape, back: Array.from(g.to('cpu').toArray()), direct: Array.from(g.toArray()) };
  },
  crossDevice: () => {
    const g1 = f32([7, 8, 9]).to('cuda:1');
    const g0 = g1.to('cuda:0');
    return { d1: g1.device, d0: g0.device, values: Array.from(g0.toArray()) };
  },
  toMakesIndependentCopy: () => {
    const g = f32([1, 2, 3]).to('cuda');
    const h = g.to('cuda');
    h.fill(9);
    g.dispose();
    return { h: Array.from(h.toArray()), gDisposed: g.disposed, hDisposed: h.disposed };
  },
  fillAndCopyFromOnDevice: () => {
    const g = new Tensor('float64', [3], 'cuda');
    g.fill(0.25);
    const a = Array.from(g.toArray());
    g.copyFrom(Float64Array.from([1, 2, 3]));
    const i = new Tensor('int32', [2], 'cuda');
    i.fill(-5);
    return { filled: a, copied: Array.from(g.toArray()), ints: Array.from(i.toArray()) };
  },
  viewsKeepDevice: () => {
    const g = f32([0, 1, 2, 3, 4, 5], [3, 2]).to('cuda:1');
    const v = g.narrow(1, 2).reshape([4]);
    return { device: v.device, values: Array.from(v.toArray()) };
  },
  mixedDevices: () => {
    const out = new Tensor('float32', [2, 3]);
    const x = f32([1, 2, 3, 4, 5, 6], [2, 3]).to('cuda');
    addon.softmaxForward(out, x);
  },
  twoGpus: () => {
    const out = new Tensor('float32', [2, 3], 'cuda:0');
    const x = f32([1, 2, 3, 4, 5, 6], [2, 3]).to('cuda:1');
    addon.softmaxForward(out, x);
  },
  listOnMixedDevices: () => {
    const a = new Tensor('float32', [3], 'cuda');
    const b = new Tensor('float32', [3]);
    return addon.clipGradNorm([a, b], 1);
  },
  noKernelYet: () => {
    const out = new Tensor('float32', [2, 3], 'cuda');
    addon.softmaxForward(out, f32([1, 2, 3, 4, 5, 6], [2, 3]).to('cuda'));
  },
  noKernelYetAsync: () => {
    const out = new Tensor('float32', [2, 3], 'cuda');
    return addon.softmaxForwardAsync(out, f32([1, 2, 3, 4, 5, 6], [2, 3]).to('cuda'));
  },
  idsOnDeviceChecked: () => {
    const table = new Tensor('float32', [5, 2], 'cuda');
    const ids = new Tensor('int32', [3], 'cuda');
    ids.copyFrom(Int32Array.from([0, 4, 5]));
    addon.embeddingForward(new Tensor('float32', [3, 2], 'cuda'), ids, table);
  },
  copyOpOnDevice: () => {
    const src = f32([3, 1, 4, 1, 5]).to('cuda');
    const dst = new Tensor('float32', [5], 'cuda');
    addon.copy(dst, src);
    return Array.from(dst.toArray());
  },
  recordedOnDevice: async () => {
    const g = new Tensor('float32', [4], 'cuda');
    const h = new Tensor('float32', [4], 'cuda');
    addon.recordBegin();
    g.copyFrom(Float32Array.from([1, 2, 3, 4]));
    addon.copy(h, g);
    g.fill(0);
    await addon.recordRunAsync();
    return { g: Array.from(g.toArray()), h: Array.from(h.toArray()) };
  },
  toInsideRecording: async () => {
    const g = new Tensor('float32', [4], 'cuda');
    addon.recordBegin();
    try {
      g.to('cpu');
    } finally {
      await addon.recordRunAsync();
    }
  },
  freedOnDispose: () => {
    const before = addon.allocStats().liveBytes;
    const g = new Tensor('float64', [1000], 'cuda');
    const during = addon.allocStats().liveBytes - before;
    g.dispose();
    return { during, after: addon.allocStats().liveBytes - before };
  },
  memoryStats: () => addon.cudaMemoryStats('cuda:0'),
  synchronize: () => addon.cudaSynchronize('cuda:1'),
  synchronizeBadName: () => addon.cudaSynchronize('cpu'),
};

async function main() {
  const only = process.argv.slice(2);
  const results = {};
  for (const [name, fn] of Object.entries(scenarios)) {
    if (only.length && !only.includes(name)) continue;
    try {
      results[name] = { value: (await fn()) ?? null };
    } catch (e) {
      results[name] = { error: { name: e.constructor.name, message: String(e.message) } };
    }
  }
  process.stdout.write(JSON.stringify(results) + '\n');
}
main();
