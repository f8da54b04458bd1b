#!/usr/bin/env node
/**
 * A child process for test/train/device_model.test.ts: models, training, checkpoints and generation moved to "cuda"
 * on the fake device in its cpu-kernels mode (WAVEMOE_FAKE_CUDA=cpu-kernels; see csrc/binding/fake_device.cc), whose
 * memory is host memory and on which the CPU kernels run. Every tensor a step touches must then be on "cuda": one left
 * on the CPU is a mixed-device error. Works over dist/ (rebuilt by `npm run typecheck`). Prints one JSON object.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const wm = require('../../dist/index.js');

const VOCAB = 53;
const tokens = Int32Array.from({ length: 4000 }, (_, i) => (i * 7919 + (i >> 3) * 31) % VOCAB);

function config(over) {
  return wm.validateConfig({ vocab_size: VOCAB, d_model: 32, n_layers: 2, n_heads: 2, d_ff: 48, max_seq_len: 32, ...over });
}

function trainer(model) {
  return new wm.Trainer(model, wm.languageModelSource(tokens, tokens.subarray(0, 600), 3, 17, 5), {
    steps: 8, lr: 3e-3, warmupSteps: 2, gradAccum: 2, evalBatches: 2,
  });
}

const values = (model) => model.parameters().map((p) => Array.from(p.value.toArray()));
const devices = (model) => [...new Set(model.parameters().flatMap((p) => [p.value.device, p.grad?.device ?? p.value.device]))];

function firstDifference(a, b) {
  for (let i = 0; i < a.length; i++) {
    for (let j = 0; j < a[i].length; j++) {
      if (!Object.is(a[i][j], b[i][j])) return { tensor: i, index: j, a: a[i][j], b: b[i][j] };
    }
  }
  return null;
}

async function trainBoth(over) {
  const cpu = new wm.Transformer(config(over));
  const gpu = new wm.Transformer(config(over));
  cpu.init(3);
  gpu.init(3);
  gpu.to('cuda');
  const a = trainer(cpu), b = trainer(gpu);
  const steps = [];
  for (let i = 0; i < 3; i++) steps.push([a.trainStep(), b.trainStep()]);
  steps.push([await a.trainStepAsync(), await b.trainStepAsync()]);
  const evals = [a.evaluate(), await b.evaluateAsync()];
  const out = {
    modelDevice: gpu.device,
    paramDevices: devices(gpu),
    stepsEqual: steps.every(([x, y]) => JSON.stringify(x) === JSON.stringify(y)),
    losses: steps.map(([x, y]) => [x.loss, y.loss]),
    evalEqual: JSON.stringify(evals[0]) === JSON.stringify(evals[1]),
    paramsDiff: firstDifference(values(cpu), values(gpu)),
    optimizerDevices: [...new Set([...b.optimizer.m.values()].map((t) => t.device))],
  };
  return { out, cpu, gpu, a, b };
}

const scenarios = {
  moeDecoder: async () => {
    const { out, cpu, gpu, a, b } = await trainBoth({ ffn: 'moe', n_experts: 4, top_k: 2 });
    // checkpoint written from the device, read on the CPU and on the device
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wavemoe-device-'));
    try {
      wm.saveCheckpoint(dir, gpu, b.optimizer, { step: b.step, optimizerStep: b.optimizer.step, options: {} });
      const onCpu = wm.loadModel(dir).model;
      const onGpu = wm.loadModel(dir, 'float32', 'cuda:1').model;
      out.checkpoint = {
        cpuDevice: onCpu.device,
        gpuDevice: onGpu.device,
        gpuParamDevices: devices(onGpu),
        cpuEqual: firstDifference(values(gpu), values(onCpu)),
        gpuEqual: firstDifference(values(gpu), values(onGpu)),
      };
      onCpu.dispose();
      onGpu.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // generation with the KV cache, batch 1 and 3, pipelined and with a repetition penalty
    const gen = async (model, batch, opts) => {
      const prompt = Int32Array.from({ length: 4 * batch }, (_, i) => (i * 5) % VOCAB);
      const steps = [];
      for await (const ids of wm.generateIds(model, prompt, batch, { maxNewTokens: 6, seed: 9, temperature: 0.8, topK: 10, ...opts })) {
        steps.push(Array.from(ids));
      }
      return steps;
    };
    out.generate = {};
    for (const [name, batch, opts] of [['b1', 1, {}], ['b3', 3, {}], ['penalty', 2, { repetitionPenalty: 1.3 }]]) {
      const x = await gen(cpu, batch, opts), y = await gen(gpu, batch, opts);
      out.generate[name] = { equal: JSON.stringify(x) === JSON.stringify(y), tokens: y.flat().length };
    }
    // and back to the CPU
    gpu.to('cpu');
    out.back = { device: gpu.device, paramDevices: devices(gpu), equal: firstDifference(values(cpu), values(gpu)) };
    for (const t of [a, b]) t.dispose();
    cpu.dispose();
    gpu.dispose();
    return out;
  },
  waveletRawSinusoidal: async () => {
    const over = {
      embedding: 'wavelet', wavelet: { mode: 'raw', raw_dim: 64, haar_levels: 2, scales: [2] }, d_model: 32,
      positional: 'sinusoidal', norm: 'layernorm',
    };
    const { out, cpu, gpu, a, b } = await trainBoth(over);
    for (const t of [a, b, cpu, gpu]) t.dispose();
    return out;
  },
  encoderDecoder: async () => {
    const c = config({ architecture: 'encoder-decoder', n_encoder_layers: 1 });
    const cpu = new wm.Transformer(c), gpu = new wm.Transformer(c);
    cpu.init(5);
    gpu.init(5);
    gpu.to('cuda');
    const mk = (device) => {
      const t = (vals, shape) => wm.Tensor.zeros(shape, 'int32', device).copyFrom(Int32Array.from(vals));
      return {
        ids: t([1, 2, 3, 4, 5, 6], [2, 3]),
        targets: t([2, 3, 4, 5, 6, 7], [2, 3]),
        enc: t([9, 8, 7, 6, 5, 4, 3, 2], [2, 4]),
      };
    };
    const x = mk('cpu'), y = mk('cuda');
    const la = cpu.lossAndGrad(x.ids, x.targets, x.enc), lb = gpu.lossAndGrad(y.ids, y.targets, y.enc);
    const grads = (m) => m.parameters().map((p) => Array.from(p.grad.toArray()));
    const out = { lossEqual: la.loss === lb.loss, loss: lb.loss, gradsDiff: firstDifference(grads(cpu), grads(gpu)) };
    cpu.dispose();
    gpu.dispose();
    return out;
  },
  leftOnCpu: async () => {
    const gpu = new wm.Transformer(config({}));
    gpu.init(1);
    gpu.to('cuda');
    const ids = wm.Tensor.zeros([1, 3], 'int32'); // forgotten on the CPU
    try {
      gpu.forward(ids);
    } finally {
      gpu.dispose();
    }
  },
};

async function main() {
  const only = process.argv.slice(2);
  const results = {};
  for (const [name, fn] of Object.entries(scenarios)) {
    if (only.length && !only.includes(name)) continue;
    try {
      results[name] = { value: (await fn()) ?? null };
    } catch (e) {
      results[name] = { error: { name: e.constructor.name, message: String(e.message), stack: String(e.stack) } };
    }
  }
  process.stdout.write(JSON.stringify(results) + '\n');
}
main();
