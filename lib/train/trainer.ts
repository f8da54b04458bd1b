/**
 * The training loop: gradient accumulation, global-norm clipping, AdamW with warmup + cosine schedule, periodic
 * evaluation and checkpoints, JSONL metrics. Everything numeric runs in native kernels; this file only orders them.
 * Training is reproducible: the same seed, data and thread count give the same losses bit for bit, and a resumed
 * run continues exactly where the saved one stopped. run() records each step and each evaluation (the model's
 * runAsync) and runs it off the main thread: the event loop stays free while the model trains.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { scalar, type Scalar } from '../ops';
import { Tensor } from '../tensor';
import type { LossScalars, Transformer } from '../models/transformer';
import { AdamW } from './optimizer';
import { learningRate } from './schedule';
import { loadOptimizerState, saveCheckpoint, type TrainerState } from './checkpoint';

export interface BatchData {
  /** int32 [B·T] decoder inputs, row-major [B, T] */
  inputs: Int32Array;
  targets: Int32Array;
  /** int32 [B·S] encoder inputs (encoder-decoder models) */
  encoderInputs?: Int32Array;
}

/** Where batches come from: a pure function of the step (so that resume is exact), plus evaluation batches. */
export interface BatchSource {
  batchSize: number;
  seqLen: number;
  encoderSeqLen?: number;
  batch(step: number): BatchData;
  evalBatches(max: number): Iterable<BatchData>;
}

export interface TrainOptions {
  steps: number;
  lr: number;
  /** Default lr / 10. */
  minLr?: number;
  /** Default min(100, steps / 10). */
  warmupSteps?: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Global-norm clip; 0 disables. Default 1. */
  gradClip?: number;
  /** Micro-batches per optimizer step. Default 1. */
  gradAccum?: number;
  /** Evaluate every n steps (0: only at the end). Default 0. */
  evalEvery?: number;
  evalBatches?: number;
  /** Save every n steps into outDir (0: only at the end). */
  saveEvery?: number;
  outDir?: string;
  /** JSONL metrics file, appended to. */
  logFile?: string;
  onStep?: (m: StepMetrics) => void;
  /** A built-in task the data comes from (saved with checkpoints so generation decodes with its vocabulary). */
  task?: string;
  /** Stops after the current step (and saves, when outDir is set). */
  signal?: AbortSignal;
}

/** What a step returns; run() adds the timing (StepMetrics). */
export type StepResult = Omit<StepMetrics, 'tokensPerSecond' | 'elapsedSeconds'>;

export interface StepMetrics {
  step: number;
  loss: number;
  auxLoss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
  valLoss?: number;
  valPerplexity?: number;
}

function check(cond: boolean, msg: string): void {
  if (!cond) throw new RangeError(`train: ${msg}`);
}

export class Trainer {
  readonly optimizer: AdamW;
  /** Optimizer steps completed. */
  step = 0;
  /** The directory of the newest checkpoint this trainer wrote. */
  lastCheckpoint: string | null = null;
  private readonly o: Required<Omit<TrainOptions, 'outDir' | 'logFile' | 'onStep' | 'signal' | 'task'>> & TrainOptions;
  private readonly ids: Tensor;
  private readonly targets: Tensor;
  private readonly encIds: Tensor | null;
  /** The gradient norm of the step in flight, read by adamwStep when it runs (skips a non-finite step). */
  private readonly gradNorm: Tensor;

  constructor(
    readonly model: Transformer,
    readonly data: BatchSource,
    opts: TrainOptions,
  ) {
    check(Number.isSafeInteger(opts.steps) && opts.steps >= 1, `steps must be a positive integer, got ${opts.steps}`);
    check(Number.isFinite(opts.lr) && opts.lr > 0, `lr must be a positive number, got ${opts.lr}`);
    this.o = {
      minLr: opts.lr / 10,
      warmupSteps: Math.min(100, Math.floor(opts.steps / 10)),
      weightDecay: 0.1,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      gradClip: 1,
      gradAccum: 1,
      evalEvery: 0,
      evalBatches: 8,
      saveEvery: 0,
      ...opts,
    };
    check(Number.isSafeInteger(this.o.gradAccum) && this.o.gradAccum >= 1, 'gradAccum must be a positive integer');
    check(this.o.gradClip >= 0, 'gradClip must be >= 0');
    // Checked here, not at the first update or the first evaluation (a bad value failed there, or did nothing).
    check(Number.isFinite(this.o.minLr) && this.o.minLr >= 0, `minLr must be a number >= 0, got ${this.o.minLr}`);
    check(Number.isFinite(this.o.weightDecay) && this.o.weightDecay >= 0, `weightDecay must be a number >= 0, got ${this.o.weightDecay}`);
    for (const key of ['warmupSteps', 'evalEvery', 'saveEvery'] as const) {
      check(Number.isSafeInteger(this.o[key]) && this.o[key] >= 0, `${key} must be an integer >= 0, got ${this.o[key]}`);
    }
    check(Number.isSafeInteger(this.o.evalBatches) && this.o.evalBatches >= 1, `evalBatches must be a positive integer, got ${this.o.evalBatches}`);
    const { batchSize: B, seqLen: T } = data;
    check(T <= model.config.max_seq_len, `sequence length ${T} exceeds the model's max_seq_len ${model.config.max_seq_len}`);
    // Everything a step touches lives on the model's device (move the model before making its trainer).
    const device = model.device;
    this.optimizer = new AdamW(model.parameters(), this.o);
    this.ids = Tensor.zeros([B, T], 'int32', device);
    this.targets = Tensor.zeros([B, T], 'int32', device);
    this.encIds = data.encoderSeqLen ? Tensor.zeros([B, data.encoderSeqLen], 'int32', device) : null;
    this.gradNorm = Tensor.zeros([1], 'float64', device);
  }

  /** Restores optimizer moments and the step counter from a checkpoint directory. */
  resumeFrom(checkpointDir: string, state: TrainerState): void {
    loadOptimizerState(checkpointDir, this.optimizer, state);
    this.step = state.step;
  }

  private load(b: BatchData): void {
    // Checked here, before the step is recorded, so that a bad batch is named as such and nothing of the step runs
    // (the recorded embedding and cross-entropy ops check the ids again when they run).
    const V = this.model.config.vocab_size;
    const checkIds = (a: Int32Array, what: string, n: number, ignore: boolean): void => {
      check(a.length === n, `the batch's ${what} hold ${a.length} ids, expected ${n}`);
      for (let i = 0; i < a.length; i++) {
        const id = a[i]!;
        if (!(id >= 0 && id < V) && !(ignore && id === -100)) {
          check(false, `the batch's ${what}[${i}] is ${id}, outside [0, ${V})${ignore ? ' and not the ignore index -100' : ''}`);
        }
      }
    };
    checkIds(b.inputs, 'inputs', this.ids.numel, false);
    checkIds(b.targets, 'targets', this.targets.numel, true);
    if (this.encIds && b.encoderInputs) checkIds(b.encoderInputs, 'encoderInputs', this.encIds.numel, false);
    this.ids.copyFrom(b.inputs);
    this.targets.copyFrom(b.targets);
    if (this.encIds && b.encoderInputs) this.encIds.copyFrom(b.encoderInputs);
  }

  /** One optimizer step (gradAccum micro-batches), on the calling thread. */
  trainStep(): StepResult {
    const lr = this.currentLr();
    const r = this.recordStep(lr);
    return this.finishStep(r, lr);
  }

  /**
   * One optimizer step, recorded and run off the main thread (Transformer.runAsync): the event loop stays free for
   * the whole step. The same ops in the same order as trainStep(), so the same numbers bit for bit.
   */
  async trainStepAsync(): Promise<StepResult> {
    const lr = this.currentLr();
    const optimizerStep = this.optimizer.step;
    let r: { losses: LossScalars[]; norm: Scalar };
    try {
      r = await this.model.runAsync(() => this.recordStep(lr));
    } catch (err) {
      // The update was counted when it was recorded; a run that failed did not make it.
      this.optimizer.step = optimizerStep;
      throw err;
    }
    return this.finishStep(r, lr);
  }

  private currentLr(): number {
    return learningRate(this.step, { lr: this.o.lr, minLr: this.o.minLr, warmupSteps: this.o.warmupSteps, totalSteps: this.o.steps });
  }

  /** The ops of one step. The update is skipped natively when the gradient norm is not finite. */
  private recordStep(lr: number): { losses: LossScalars[]; norm: Scalar } {
    const { gradAccum } = this.o;
    this.model.zeroGrad();
    const losses: LossScalars[] = [];
    for (let micro = 0; micro < gradAccum; micro++) {
      this.load(this.data.batch(this.step * gradAccum + micro));
      losses.push(this.model.lossAndGradScalars(this.ids, this.targets, this.encIds, 1 / gradAccum));
    }
    const norm = scalar(() => this.optimizer.clipGradNorm(this.o.gradClip, this.gradNorm));
    this.optimizer.update(lr, this.gradNorm);
    return { losses, norm };
  }

  private finishStep(r: { losses: LossScalars[]; norm: Scalar }, lr: number): StepResult {
    const { gradAccum } = this.o;
    let loss = 0;
    let auxLoss = 0;
    for (const l of r.losses) {
      loss += l.loss.value / gradAccum;
      auxLoss += l.auxLosses.reduce((a, s) => a + s.value, 0) / gradAccum;
    }
    const gradNorm = r.norm.value;
    if (!Number.isFinite(gradNorm)) this.optimizer.step -= 1; // adamwStep skipped the update
    this.step += 1;
    return { step: this.step, loss, auxLoss, lr, gradNorm };
  }

  /** Mean loss and perplexity over up to `evalBatches` held-out batches, on the calling thread. */
  evaluate(): { loss: number; perplexity: number } {
    return this.meanLoss(this.recordEvaluation());
  }

  /** evaluate(), recorded and run off the main thread. */
  async evaluateAsync(): Promise<{ loss: number; perplexity: number }> {
    return this.meanLoss(await this.model.runAsync(() => this.recordEvaluation()));
  }

  private recordEvaluation(): Scalar[] {
    const losses: Scalar[] = [];
    for (const b of this.data.evalBatches(this.o.evalBatches)) {
      this.load(b);
      losses.push(this.model.lossScalar(this.ids, this.targets, this.encIds));
    }
    if (losses.length === 0) throw new Error('evaluate: the validation split is smaller than one batch');
    return losses;
  }

  private meanLoss(losses: Scalar[]): { loss: number; perplexity: number } {
    let sum = 0;
    for (const l of losses) sum += l.value;
    const loss = sum / losses.length;
    return { loss, perplexity: Math.exp(loss) };
  }

  save(): string | null {
    if (!this.o.outDir) return null;
    const { onStep, signal, ...options } = this.o;
    void onStep;
    void signal;
    this.lastCheckpoint = saveCheckpoint(this.o.outDir, this.model, this.optimizer, {
      step: this.step,
      optimizerStep: this.optimizer.step,
      options: options as Record<string, unknown>,
    });
    return this.lastCheckpoint;
  }

  /**
   * Throws unless the data gives at least one validation batch. Every run() ends with an evaluation: without a
   * validation batch it failed there, after all the training and before the final save; run() checks first.
   */
  checkValidation(): void {
    const first = this.data.evalBatches(1)[Symbol.iterator]().next();
    check(
      first.done !== true,
      `the validation split is smaller than one batch (${this.data.batchSize} sequences of ${this.data.seqLen} tokens, plus one); ` +
        'use more text, a smaller batch size or a shorter sequence length',
    );
  }

  /** Trains until `steps`; every step and evaluation runs off the main thread (signals and timers keep running). */
  async run(): Promise<StepMetrics | null> {
    const { steps, evalEvery, saveEvery, logFile, onStep, signal } = this.o;
    if (logFile) fs.mkdirSync(path.dirname(path.resolve(logFile)), { recursive: true });
    const tokensPerStep = this.data.batchSize * this.data.seqLen * this.o.gradAccum;
    if (this.step < steps) this.checkValidation();
    const start = performance.now();
    let last: StepMetrics | null = null;
    while (this.step < steps && !signal?.aborted) {
      const t0 = performance.now();
      const r = await this.trainStepAsync();
      const seconds = (performance.now() - t0) / 1000;
      const m: StepMetrics = { ...r, tokensPerSecond: tokensPerStep / seconds, elapsedSeconds: (performance.now() - start) / 1000 };
      if ((evalEvery > 0 && this.step % evalEvery === 0) || this.step === steps) {
        const ev = await this.evaluateAsync();
        m.valLoss = ev.loss;
        m.valPerplexity = ev.perplexity;
      }
      if (logFile) fs.appendFileSync(logFile, `${JSON.stringify(m)}\n`);
      onStep?.(m);
      last = m;
      if (saveEvery > 0 && this.step % saveEvery === 0 && this.step < steps) this.save();
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.save();
    return last;
  }

  dispose(): void {
    this.optimizer.dispose();
    this.ids.dispose();
    this.targets.dispose();
    this.encIds?.dispose();
    this.gradNorm.dispose();
  }
}
