/**
 * The main job as one call: a preset or config, a corpus (default Moby-Dick), the tokenizer, a fresh or resumed
 * model, the trainer with checkpoints and JSONL metrics. The CLI's `train` is a thin layer over this.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ops } from '../ops';
import { validateConfig, type ModelConfig } from '../models/config';
import { preset } from '../models/presets';
import { usableDevice } from '../device';
import { Transformer } from '../models/transformer';
import { Tokenizer } from '../tokenizer/tokenizer';
import { defaultCacheDir } from '../tokenizer/tokenizer_file';
import { loadModel } from './checkpoint';
import { loadCorpus } from './corpus';
import { languageModelSource } from './sources';
import { tokenizeCached } from './token_cache';
import { Trainer, type BatchSource, type StepMetrics, type TrainOptions } from './trainer';
import { NUMBERS_VOCAB, numbersSource } from './tasks/numbers';

export interface RunOptions {
  /** Preset name (default 'moe-small') or a config object; ignored when resuming. */
  preset?: string;
  config?: unknown;
  /** Text file or directory; default: the embedded Moby-Dick corpus. */
  data?: string;
  outDir: string;
  /** Continue from the latest checkpoint in outDir. */
  resume?: boolean;
  steps: number;
  batchSize: number;
  seqLen: number;
  lr: number;
  threads?: number;
  /** 'cpu' (default), or 'cuda' / 'cuda:N' with the CUDA-enabled build and a GPU. */
  device?: string;
  /**
   * Matrix products in 'fp32' (default), 'tf32' or 'bf16' (inputs rounded, float32 sums; weights, norms, softmax,
   * the loss and AdamW stay float32): ops.setMatmulPrecision for the run, restored after it.
   */
  precision?: string;
  seed?: number;
  evalEvery?: number;
  saveEvery?: number;
  gradAccum?: number;
  tokenizer?: string;
  /** 'numbers': the built-in digits-to-words task for encoder-decoder models (its own data and vocabulary). */
  task?: string;
  onStep?: (m: StepMetrics) => void;
  onReady?: (info: { config: ModelConfig; trainTokens: number; validationTokens: number; startStep: number; parameters: number }) => void;
  signal?: AbortSignal;
}

export interface RunResult {
  last: StepMetrics | null;
  checkpoint: string | null;
  model: Transformer;
  /** Expert load fractions per MoE layer at the last step (empty for dense models). */
  expertLoad: number[][];
}

export async function trainRun(o: RunOptions): Promise<RunResult> {
  const precision = o.precision ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'tf32' && precision !== 'bf16') {
    throw new TypeError(`precision must be 'fp32', 'tf32' or 'bf16', got ${JSON.stringify(precision)}`);
  }
  const previous = ops.matmulPrecision();
  ops.setMatmulPrecision(precision);
  try {
    return await run(o);
  } finally {
    ops.setMatmulPrecision(previous);
  }
}

async function run(o: RunOptions): Promise<RunResult> {
  const device = usableDevice(o.device ?? 'cpu'); // fails before any data is read or model built
  if (o.threads !== undefined) ops.setNumThreads(o.threads);
  const seed = o.seed ?? 0;
  let model: Transformer;
  let startState = null;
  let ckptDir: string | null = null;
  if (o.resume) {
    const loaded = loadModel(o.outDir, 'float32', device);
    model = loaded.model;
    startState = loaded.state;
    ckptDir = loaded.dir;
  } else {
    let config = o.config !== undefined ? validateConfig(o.config) : preset(o.preset ?? 'moe-small');
    if (o.task === 'numbers') {
      if (config.architecture !== 'encoder-decoder') {
        throw new Error(`the numbers task needs an encoder-decoder model (e.g. --preset seq2seq-small)`);
      }
      config = validateConfig({ ...config, vocab_size: NUMBERS_VOCAB.length, max_seq_len: Math.max(16, o.seqLen) });
    }
    model = new Transformer(config);
    model.init(seed); // on the CPU: the same initial weights on every device
    model.to(device);
  }
  const task = o.task ?? (startState?.options.task as string | undefined);
  if (task !== undefined && task !== 'numbers') throw new Error(`unknown task '${task}' (available: numbers)`);
  let source: BatchSource;
  let trainTokens = 0;
  let validationTokens = 0;
  if (task === 'numbers') {
    source = numbersSource(o.batchSize, seed);
  } else {
    const tokenizer = await Tokenizer.load({ path: o.tokenizer, vocabSize: model.config.vocab_size });
    const corpus = loadCorpus(o.data);
    const cacheDir = defaultCacheDir();
    const train = tokenizeCached(tokenizer, corpus.train, cacheDir);
    const validation = tokenizeCached(tokenizer, corpus.validation, cacheDir);
    source = languageModelSource(train, validation, o.batchSize, o.seqLen, seed);
    trainTokens = train.length;
    validationTokens = validation.length;
  }
  fs.mkdirSync(o.outDir, { recursive: true });
  const opts: TrainOptions = {
    steps: o.steps,
    lr: o.lr,
    gradAccum: o.gradAccum ?? 1,
    evalEvery: o.evalEvery ?? 0,
    saveEvery: o.saveEvery ?? 0,
    outDir: o.outDir,
    logFile: path.join(o.outDir, 'metrics.jsonl'),
    onStep: o.onStep,
    signal: o.signal,
    task,
  };
  if (startState && startState.step >= o.steps) {
    // Nothing would be trained: the run would end at once and report step 0.
    model.dispose();
    throw new Error(`the checkpoint in ${o.outDir} is at step ${startState.step}; steps (${o.steps}) must be larger to train further`);
  }
  const trainer = new Trainer(model, source, opts);
  if (startState && ckptDir) trainer.resumeFrom(ckptDir, startState);
  try {
    trainer.checkValidation(); // before onReady starts a progress bar
  } catch (err) {
    trainer.dispose();
    model.dispose();
    throw err;
  }
  o.onReady?.({
    config: model.config,
    trainTokens,
    validationTokens,
    startStep: trainer.step,
    parameters: model.parameters().reduce((n, p) => n + p.value.numel, 0),
  });
  const last = await trainer.run();
  const checkpoint = trainer.lastCheckpoint;
  trainer.dispose();
  return { last, checkpoint, model, expertLoad: model.expertLoad() };
}
