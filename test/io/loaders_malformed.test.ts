/**
 * Issue #14: a file whose header claims huge sizes never makes a loader allocate them. Safetensors headers, token
 * cache headers and checkpoint config.json files that claim 2^60 elements, a 10 GB header or a model far larger
 * than its weights file fail at once with an error naming the file, and neither JavaScript memory (ArrayBuffers,
 * rss) nor native tensor memory grows. Also the regressions fuzzing found that are easier to state by hand.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../../lib/io/safetensors';
import { minParameterCount, validateConfig } from '../../lib/models/config';
import { Transformer } from '../../lib/models/transformer';
import { binding } from '../../lib/native';
import { loadModel, saveCheckpoint } from '../../lib/train/checkpoint';
import { readTokenFile, writeTokenFile } from '../../lib/train/token_cache';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wavemoe-malformed-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const MB = 1 << 20;

/** Runs `fn`, expecting it to throw `message` within 1 s while JS and native memory stay (nearly) flat. */
function expectCheapFailure(fn: () => unknown, message: RegExp): void {
  global.gc?.();
  const before = process.memoryUsage();
  const nativeBefore = binding.allocStats();
  const t0 = performance.now();
  let error: unknown = null;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  const ms = performance.now() - t0;
  const after = process.memoryUsage();
  const nativeAfter = binding.allocStats();
  expect(error).toBeInstanceOf(Error);
  expect((error as Error).message).toMatch(message);
  expect((error as Error).message.length).toBeLessThan(1000);
  expect(ms).toBeLessThan(1000);
  expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(16 * MB);
  expect(after.rss - before.rss).toBeLessThan(64 * MB);
  // no native tensor grew past what was alive before (peakBytes only rises when an allocation sets a new peak)
  expect(Math.max(0, nativeAfter.peakBytes - nativeBefore.peakBytes)).toBeLessThan(16 * MB);
  expect(nativeAfter.liveBytes).toBe(nativeBefore.liveBytes);
}

function safetensorsFile(name: string, header: unknown, data = Buffer.alloc(0), headerLength?: bigint): string {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([len, json, data]));
  return file;
}

describe('safetensors headers that claim huge sizes', () => {
  const cases: Array<[string, () => string, RegExp]> = [
    ['a 10 GB header length', () => safetensorsFile('10gb.st', {}, Buffer.alloc(8), 10_000_000_000n), /header length 10000000000 exceeds the file \(\d+ bytes\)/],
    ['a 2^64-1 header length', () => safetensorsFile('u64max.st', {}, Buffer.alloc(0), 2n ** 64n - 1n), /header length 18446744073709551615 exceeds the file/],
    ['2^60 elements in one dimension', () => safetensorsFile('dim60.st', { x: { dtype: 'F32', shape: [2 ** 60], data_offsets: [0, 4] } }, Buffer.alloc(4)), /'x' has an invalid shape \[1152921504606847000\]/],
    ['2^60 elements as [2^30, 2^30] (the product is checked as it is computed)', () => safetensorsFile('dims30.st', { x: { dtype: 'F32', shape: [2 ** 30, 2 ** 30], data_offsets: [0, 4] } }, Buffer.alloc(4)), /'x' shape \[1073741824, 1073741824\] has more than 2\^53 elements/],
    ['2^60 elements with offsets to match', () => safetensorsFile('offs.st', { x: { dtype: 'F32', shape: [2 ** 30, 2 ** 28], data_offsets: [0, 2 ** 60] } }, Buffer.alloc(4)), /'x' has invalid data_offsets \[0,1152921504606847000\]/],
    ['offsets past the end, a product that fits', () => safetensorsFile('past.st', { x: { dtype: 'F64', shape: [2 ** 26, 2 ** 20], data_offsets: [0, 2 ** 49] } }, Buffer.alloc(8)), /'x' data_offsets \[0, 562949953421312\] lie outside the 8 data bytes/],
    ['a product past 2^53 hidden by a zero', () => safetensorsFile('zero.st', { x: { dtype: 'F32', shape: [2 ** 53 - 1, 2 ** 53 - 1, 0], data_offsets: [0, 0] } }), /'x' shape \[9007199254740991, 9007199254740991, 0\] has more than 2\^53 elements/],
    ['a megabyte-long tensor name', () => safetensorsFile('name.st', { ['n'.repeat(MB)]: { dtype: 'X', shape: [1], data_offsets: [0, 4] } }, Buffer.alloc(4)), /'n{80}\.\.\. \(1048576 characters\)' has unsupported dtype "X"/],
    ['a deeply nested shape', () => {
      const file = path.join(dir, 'deep.st');
      const json = Buffer.from(`{"x":{"dtype":"F32","shape":${'['.repeat(20000)}${']'.repeat(20000)},"data_offsets":[0,4]}}`);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      fs.writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(4)]));
      return file;
    }, /'x' has an invalid shape \[\.\.\.\]/],
    ['a prototype key as dtype', () => safetensorsFile('proto.st', { x: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }, Buffer.alloc(4)), /'x' has unsupported dtype "toString"/],
  ];
  test.each(cases)('%s', (_name, make, message) => {
    const file = make();
    expectCheapFailure(() => readSafetensors(file), new RegExp(`invalid safetensors file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${message.source}`));
  });
});

describe('token cache headers that claim huge sizes', () => {
  const tokenFile = (name: string, count: bigint, ids: number): string => {
    const b = Buffer.alloc(20 + 4 * ids);
    b.writeUInt32LE(0x4b544d57, 0);
    b.writeUInt32LE(1, 4);
    b.writeBigUInt64LE(count, 12);
    const file = path.join(dir, name);
    fs.writeFileSync(file, b);
    return file;
  };
  test.each([
    ['2^60 ids', 2n ** 60n, 4],
    ['2^64-1 ids', 2n ** 64n - 1n, 0],
    ['2^62 ids (2^64 bytes: wraps to 0 in 64-bit arithmetic)', 2n ** 62n, 0],
    ['one id more than the file holds', 5n, 4],
  ])('%s', (_name, count, ids) => {
    const file = tokenFile(`${ids}-${count}.bin`, count, ids);
    expectCheapFailure(() => readTokenFile(file, 1000), new RegExp(`invalid token cache ${file}: header says ${count} ids but the file holds ${ids}`));
  });
  test('a valid file still loads', () => {
    const file = path.join(dir, 'ok.bin');
    writeTokenFile(file, Int32Array.from([0, 5, 999]));
    expect(Array.from(readTokenFile(file, 1000))).toEqual([0, 5, 999]);
  });
});

describe('a checkpoint config.json that claims a huge model', () => {
  const tiny = { vocab_size: 16, d_model: 8, n_layers: 1, n_heads: 2, d_ff: 8, max_seq_len: 16 };
  let run: string;
  let ckpt: string;
  let savedConfig: string;
  beforeAll(() => {
    run = path.join(dir, 'run');
    const model = new Transformer(validateConfig(tiny));
    model.init(1);
    ckpt = saveCheckpoint(run, model, null, { step: 1, optimizerStep: 1, options: {} });
    model.dispose();
    savedConfig = fs.readFileSync(path.join(ckpt, 'config.json'), 'utf8');
  });
  const withConfig = (change: Record<string, unknown>): void => {
    fs.writeFileSync(path.join(ckpt, 'config.json'), JSON.stringify({ ...JSON.parse(savedConfig), ...change }));
  };
  afterEach(() => fs.writeFileSync(path.join(ckpt, 'config.json'), savedConfig));

  test.each<[string, Record<string, unknown>]>([
    ['vocabulary 2^24 (1 GB of embedding, 1 GB of output layer, twice with gradients)', { vocab_size: 2 ** 24 }],
    ['vocabulary 2^24 and d_model 65536 (4 TB)', { vocab_size: 2 ** 24, d_model: 65536, n_heads: 1, n_kv_heads: 1 }],
    ['1024 layers of 1024 experts', { n_layers: 1024, ffn: 'moe', n_experts: 1024, top_k: 1, d_ff: 4096 }],
  ])('%s', (_name, change) => {
    withConfig(change);
    expectCheapFailure(() => loadModel(run), /config\.json describes a model of at least \d+ parameters, but .*model\.safetensors holds \d+ values/);
  });

  test('the real config still loads', () => {
    const { model } = loadModel(run);
    expect(model.config.vocab_size).toBe(16);
    model.dispose();
  });

  test.each<[string, string, RegExp]>([
    ['null', 'null', /trainer_state\.json: must be a JSON object/],
    ['an array', '[]', /trainer_state\.json: must be a JSON object/],
    ['a negative optimizer step', '{"step": 1, "optimizerStep": -1, "options": {}}', /'step' and 'optimizerStep' must be non-negative integers/],
    ['options that are not an object', '{"step": 1, "optimizerStep": 1, "options": "x"}', /'options' must be an object, got "x"/],
  ])('trainer_state.json: %s', (_name, text, message) => {
    const file = path.join(ckpt, 'trainer_state.json');
    const saved = fs.readFileSync(file);
    try {
      fs.writeFileSync(file, text);
      const live = binding.allocStats().liveBytes;
      expect(() => loadModel(run)).toThrow(message);
      expect(binding.allocStats().liveBytes).toBe(live); // the model built before the state was read is freed
    } finally {
      fs.writeFileSync(file, saved);
    }
  });

  test('trainer_state.json without options loads with options {}', () => {
    const file = path.join(ckpt, 'trainer_state.json');
    const saved = fs.readFileSync(file);
    try {
      fs.writeFileSync(file, '{"step": 4, "optimizerStep": 2}');
      const { model, state } = loadModel(run);
      expect(state).toEqual({ step: 4, optimizerStep: 2, options: {} });
      model.dispose();
    } finally {
      fs.writeFileSync(file, saved);
    }
  });
});

describe('minParameterCount is a lower bound, and a tight one', () => {
  const base = { vocab_size: 16, d_model: 8, n_layers: 2, n_heads: 2, d_ff: 12, max_seq_len: 8 };
  test.each<[string, Record<string, unknown>]>([
    ['dense swiglu', {}],
    ['dense relu with biases', { activation: 'relu', bias: true }],
    ['grouped-query attention', { n_kv_heads: 1 }],
    ['moe swiglu', { ffn: 'moe', n_experts: 3, top_k: 2, router_bias: true }],
    ['moe gelu', { ffn: 'moe', n_experts: 2, top_k: 1, activation: 'gelu' }],
    ['encoder-decoder, tied', { architecture: 'encoder-decoder', n_encoder_layers: 3, tie_embeddings: true }],
    ['wavelet table', { embedding: 'wavelet', d_model: 16, wavelet: { raw_dim: 16, haar_levels: 1, scales: [1], mode: 'table' } }],
    ['wavelet raw', { embedding: 'wavelet', d_model: 16, wavelet: { raw_dim: 32, haar_levels: 2, scales: [1], mode: 'raw' } }],
    ['wavelet frozen', { embedding: 'wavelet', d_model: 16, wavelet: { raw_dim: 16, haar_levels: 1, scales: [1], mode: 'frozen' } }],
  ])('%s', (_name, change) => {
    const config = validateConfig({ ...base, ...change });
    const model = new Transformer(config);
    const actual = model.parameters().reduce((n, p) => n + p.value.shape.reduce((a, b) => a * b, 1), 0);
    model.dispose();
    expect(minParameterCount(config)).toBeLessThanOrEqual(actual);
    expect(minParameterCount(config)).toBeGreaterThan(0.75 * actual);
  });
});

describe('config regressions', () => {
  const minimal = { vocab_size: 16, d_model: 32, n_layers: 1, n_heads: 2, embedding: 'wavelet' };
  test.each<[string, unknown, RegExp]>([
    ["'toString' in wavelet", { ...minimal, wavelet: { toString: 1 } }, /unknown key 'wavelet\.toString'/],
    ["'__proto__' in wavelet (as JSON.parse makes it)", JSON.parse('{"vocab_size":16,"d_model":32,"n_layers":1,"n_heads":2,"wavelet":{"__proto__":{"x":1}}}'), /unknown key 'wavelet\.__proto__'/],
    ['raw_dim 2^32 + 1024 (a 32-bit shift made it 1024)', { ...minimal, wavelet: { raw_dim: 2 ** 32 + 1024, haar_levels: 4, scales: [1] } }, /'wavelet\.raw_dim' must be an integer in \[1, 1048576\]/],
    ['an unsafe wavelet seed', { ...minimal, wavelet: { seed: 2 ** 60 } }, /'wavelet\.seed' must be a non-negative integer/],
    ['a 1 MB key', { ...minimal, ['k'.repeat(MB)]: 1 }, /unknown key 'k{80}\.\.\. \(1048576 characters\)'$/],
  ])('%s', (_name, raw, message) => {
    expect(() => validateConfig(raw, 'cfg.json')).toThrow(message);
  });
  test('a saved config validates again unchanged', () => {
    const config = validateConfig({ ...minimal, wavelet: { raw_dim: 256, haar_levels: 4, scales: [2] } });
    expect(validateConfig(JSON.parse(JSON.stringify(config)))).toEqual(config);
  });
});

test('writeSafetensors output still loads (the reader changes are only stricter on malformed headers)', () => {
  const file = path.join(dir, 'rt.st');
  writeSafetensors(file, [['a', { shape: [0, 5], data: new Float32Array(0) }], ['b', { shape: [], data: new Float64Array([3]) }]]);
  const { tensors } = readSafetensors(file);
  expect(tensors.get('a')!.shape).toEqual([0, 5]);
  expect(Array.from(tensors.get('b')!.data)).toEqual([3]);
});
