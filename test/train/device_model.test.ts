/**
 * Models, training, checkpoints and generation moved to a GPU with model.to('cuda'), run here on the fake device in
 * its cpu-kernels mode (WAVEMOE_FAKE_CUDA=cpu-kernels: host memory, CPU kernels), in a child process. The numbers are
 * the CPU's by construction, so what this checks is the placement: every parameter, gradient, optimizer moment,
 * buffer, KV cache and input a step touches is on the model's device (one left behind is a mixed-device error), a
 * checkpoint written from the device loads on the CPU and on another device bit for bit, and a model moves back.
 * On a real GPU the same flows are compared within tolerances by test/gpu.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const CHILD = path.join(__dirname, '..', 'helpers', 'device_model_child.js');

type Result = { value?: Record<string, unknown>; error?: { name: string; message: string; stack: string } };
let results: Record<string, Result>;

beforeAll(() => {
  // dist/ is what the child loads: `npm test` rebuilds it in its typecheck step.
  const r = spawnSync(process.execPath, [CHILD], {
    encoding: 'utf8',
    env: { ...process.env, WAVEMOE_FAKE_CUDA: 'cpu-kernels', WAVEMOE_ADDON: '' },
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`device_model_child exited ${r.status}: ${r.stderr}`);
  results = JSON.parse(r.stdout) as Record<string, Result>;
});

function value(name: string): Record<string, unknown> {
  const r = results[name];
  if (!r) throw new Error(`no result for ${name}`);
  if (r.error) throw new Error(`${name} failed: ${r.error.stack}`);
  return r.value!;
}

const trained = {
  modelDevice: 'cuda:0',
  paramDevices: ['cuda:0'],
  stepsEqual: true,
  evalEqual: true,
  paramsDiff: null,
  optimizerDevices: ['cuda:0'],
};

test('an MoE decoder trains on the device exactly as on the CPU (sync and recorded steps, evaluation)', () => {
  expect(value('moeDecoder')).toMatchObject(trained);
});

test('a checkpoint written from the device loads on the CPU and on another device, bit for bit', () => {
  expect(value('moeDecoder').checkpoint).toEqual({
    cpuDevice: 'cpu',
    gpuDevice: 'cuda:1',
    gpuParamDevices: ['cuda:1'],
    cpuEqual: null,
    gpuEqual: null,
  });
});

test('generation on the device with the KV cache gives the CPU tokens (batch 1, batch 3, repetition penalty)', () => {
  expect(value('moeDecoder').generate).toEqual({
    b1: { equal: true, tokens: 6 },
    b3: { equal: true, tokens: 18 },
    penalty: { equal: true, tokens: 12 },
  });
});

test('a model moves back to the CPU unchanged', () => {
  expect(value('moeDecoder').back).toEqual({ device: 'cpu', paramDevices: ['cpu'], equal: null });
});

test('wavelet raw embedding (its fixed map W), sinusoidal positions and LayerNorm move too', () => {
  expect(value('waveletRawSinusoidal')).toMatchObject(trained);
});

test('encoder-decoder: loss and every gradient equal', () => {
  expect(value('encoderDecoder')).toMatchObject({ lossEqual: true, gradsDiff: null });
});

test('an input left on the CPU names itself and the model device', () => {
  expect(results.leftOnCpu?.error?.message).toBe(
    "ids is on cpu but the model is on cuda:0: move it with .to('cuda:0')",
  );
});
