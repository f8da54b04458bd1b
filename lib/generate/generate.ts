/**
 * Text generation with the KV cache: the prompt is fed once, then one token per step; each step's logits go
 * through the native sampler (greedy, temperature, top-k, top-p, repetition penalty; seeded). Text is streamed as
 * an async iterator of pieces that are always whole UTF-8 characters (a token that ends inside a multi-byte
 * character is held back until the character is complete). Every step runs on a background thread (the model's
 * runAsync), so the event loop is never blocked; an AbortSignal stops generation and frees its caches.
 */
import { ops } from '../ops';
import { Tensor } from '../tensor';
import { moveTensor } from '../nn/module';
import type { DecodeState, Transformer } from '../models/transformer';
import type { Tokenizer } from '../tokenizer/tokenizer';

export interface GenerateOptions {
  /** Default 64. */
  maxNewTokens?: number;
  /** 0 = greedy. Default 0.8. */
  temperature?: number;
  /** 0 = off. Default 0. */
  topK?: number;
  /** 1 = off. Default 1. */
  topP?: number;
  /** 1 = off. Default 1. */
  repetitionPenalty?: number;
  seed?: number;
  /** Generation of a sequence ends at the first of these strings, which is not included. */
  stop?: string[];
  signal?: AbortSignal;
  /**
   * Queue step n + 1 while step n runs, hiding the time JavaScript spends recording a step (default true; off
   * with a repetition penalty, which needs step n's token first). The tokens are the same either way.
   */
  pipeline?: boolean;
  /** Encoder input text (encoder-decoder models only). */
  encoderInput?: string;
}

interface Resolved {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  seed: number;
  stop: string[];
}

// generateIds also takes encoderIds and isFinished.
const KNOWN_OPTIONS = ['maxNewTokens', 'temperature', 'topK', 'topP', 'repetitionPenalty', 'seed', 'stop', 'signal', 'pipeline', 'encoderInput', 'encoderIds', 'isFinished'];

function resolve(o: GenerateOptions): Resolved {
  if (typeof o !== 'object' || o === null) throw new TypeError('generate: options must be an object');
  // A misspelt option (temprature) would otherwise be ignored silently and generate with the default.
  for (const key of Object.keys(o)) {
    if (!KNOWN_OPTIONS.includes(key)) throw new TypeError(`generate: unknown option '${key}' (known: ${KNOWN_OPTIONS.join(', ')})`);
  }
  const r: Resolved = {
    maxNewTokens: o.maxNewTokens ?? 64,
    temperature: o.temperature ?? 0.8,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    repetitionPenalty: o.repetitionPenalty ?? 1,
    seed: o.seed ?? 0,
    stop: o.stop ?? [],
  };
  const bad = (msg: string): never => {
    throw new RangeError(`generate: ${msg}`);
  };
  if (!Number.isSafeInteger(r.maxNewTokens) || r.maxNewTokens < 1) bad(`maxNewTokens must be a positive integer, got ${r.maxNewTokens}`);
  if (!Number.isFinite(r.temperature) || r.temperature < 0) bad(`temperature must be >= 0, got ${r.temperature}`);
  if (!Number.isSafeInteger(r.topK) || r.topK < 0) bad(`topK must be an integer >= 0, got ${r.topK}`);
  if (!(r.topP > 0 && r.topP <= 1)) bad(`topP must be in (0, 1], got ${r.topP}`);
  if (!Number.isFinite(r.repetitionPenalty) || r.repetitionPenalty <= 0) bad(`repetitionPenalty must be > 0, got ${r.repetitionPenalty}`);
  if (!Number.isSafeInteger(r.seed) || r.seed < 0) bad(`seed must be a non-negative integer, got ${r.seed}`);
  if (!Array.isArray(r.stop) || r.stop.some((s) => typeof s !== 'string' || s.length === 0)) bad('stop must be an array of non-empty strings');
  if (o.pipeline !== undefined && typeof o.pipeline !== 'boolean') throw new TypeError(`generate: pipeline must be true or false, got ${String(o.pipeline)}`);
  return r;
}

function abortError(): Error {
  const e = new Error('generation aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * Generates token ids for a batch of prompts that have the same token length (ids [B, T], row-major). Yields the new
 * ids of every row after each step; a row that is finished keeps yielding -1.
 */
export async function* generateIds(
  model: Transformer,
  prompt: Int32Array,
  batch: number,
  opts: GenerateOptions & { encoderIds?: Int32Array; isFinished?: (row: number) => boolean } = {},
): AsyncGenerator<Int32Array> {
  const o = resolve(opts);
  if ((prompt as { [Symbol.toStringTag]?: string } | null)?.[Symbol.toStringTag] !== 'Int32Array') {
    throw new TypeError('generate: prompt ids must be an Int32Array');
  }
  if (!Number.isSafeInteger(batch) || batch < 1) throw new RangeError(`generate: batch must be a positive integer, got ${batch}`);
  const T = prompt.length / batch;
  if (!Number.isInteger(T) || T < 1) throw new RangeError('generate: prompt ids must be [batch, T] with T >= 1');
  const maxNew = Math.min(o.maxNewTokens, model.config.max_seq_len - T);
  if (maxNew < 1) throw new RangeError(`generate: the prompt (${T} tokens) leaves no room below max_seq_len ${model.config.max_seq_len}`);
  const V = model.config.vocab_size;
  for (const id of prompt) {
    if (!(id >= 0 && id < V)) throw new RangeError(`generate: prompt token id ${id} is outside [0, ${V})`);
  }
  let enc: Tensor | null = null;
  const historyLen = T + maxNew;
  const history = new Int32Array(batch * historyLen).fill(-1);
  for (let b = 0; b < batch; b++) history.set(prompt.subarray(b * T, (b + 1) * T), b * historyLen);
  const device = model.device; // every tensor of a step lives with the model
  const historyT = Tensor.zeros([batch, historyLen], 'int32', device);
  // Step s samples into ids[s % 2] and feeds ids[(s + 1) % 2]: step s + 1 can be queued while step s runs, and
  // JavaScript reads step s's ids while step s + 1 (which only reads them) runs.
  const ids = [Tensor.zeros([batch, 1], 'int32', device), Tensor.zeros([batch, 1], 'int32', device)] as const;
  const input = Tensor.zeros([batch, T], 'int32', device).copyFrom(prompt);
  if (opts.encoderIds) enc = moveTensor(Tensor.from(opts.encoderIds, [batch, opts.encoderIds.length / batch]), device);
  // With a repetition penalty, step s + 1 needs the token of step s in its history: no pipelining then.
  const pipelined = o.repetitionPenalty === 1 && opts.pipeline !== false;
  let state: DecodeState | null = null;
  // Each step (the model's forward for the new tokens, then sampling) is recorded and run as one background job:
  // the event loop is never blocked, and the only data crossing N-API per step is the new ids.
  const launch = (step: number): Promise<void> => {
    if (!pipelined) historyT.copyFrom(history); // nothing is in flight here
    const sampling = {
      temperature: o.temperature,
      topK: o.topK,
      topP: o.topP,
      repetitionPenalty: o.repetitionPenalty,
      history: pipelined ? undefined : historyT,
      seed: o.seed,
      counter: step,
    };
    const run = model.runAsync(() => {
      state ??= model.startDecode(batch, enc, T + maxNew);
      const logits = model.decode(step === 0 ? input : ids[(step + 1) % 2]!, state);
      ops.sampleTokens(ids[step % 2]!.reshape([batch]), logits, sampling);
    });
    run.catch(() => undefined); // awaited later; this only keeps a failure from counting as unhandled meanwhile
    return run;
  };
  let pending: Promise<void> | null = null;
  try {
    let current: Promise<void> | null = launch(0);
    pending = current;
    for (let step = 0; step < maxNew && current !== null; step++) {
      if (opts.signal?.aborted) throw abortError();
      const following = pipelined && step + 1 < maxNew ? launch(step + 1) : null;
      await current;
      pending = following;
      const out = ids[step % 2]!.toArray() as Int32Array;
      for (let b = 0; b < batch; b++) {
        if (opts.isFinished?.(b)) out[b] = -1;
        else history[b * historyLen + T + step] = out[b]!;
      }
      yield out;
      current = following ?? (step + 1 < maxNew ? launch(step + 1) : null);
      pending = current;
    }
  } finally {
    // A step still queued or running uses the caches: let it end before they are freed.
    await pending?.catch(() => undefined);
    (state as DecodeState | null)?.dispose();
    [historyT, ...ids, input, enc].forEach((t) => t?.dispose());
  }
}

/** Decoded text grows token by token; emit only whole characters and stop at a stop string. */
class TextAccumulator {
  private ids: number[] = [];
  private emitted = 0;
  done = false;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly stop: string[],
  ) {}

  /** Adds a token; returns the new text that is safe to emit (possibly ''). */
  push(id: number): string {
    this.ids.push(id);
    const text = this.tokenizer.decode(this.ids);
    let end = text.length;
    for (const s of this.stop) {
      const at = text.indexOf(s, Math.max(0, this.emitted - s.length + 1));
      if (at >= 0 && at < end) {
        end = at;
        this.done = true;
      }
    }
    // Hold back an incomplete UTF-8 sequence (decoded as U+FFFD) until the next token completes it.
    if (!this.done) {
      while (end > this.emitted && text.charCodeAt(end - 1) === 0xfffd) end--;
    }
    if (end <= this.emitted) return '';
    const piece = text.slice(this.emitted, end);
    this.emitted = end;
    return piece;
  }

  /** At the end, whatever is left (a truly invalid byte sequence is emitted as U+FFFD). */
  flush(): string {
    if (this.done) return '';
    const text = this.tokenizer.decode(this.ids);
    const piece = text.slice(this.emitted);
    this.emitted = text.length;
    return piece;
  }
}

function promptIds(tokenizer: Tokenizer, prompt: string): Int32Array {
  if (typeof prompt !== 'string') throw new TypeError('generate: prompt must be a string');
  // The end-of-text token starts every sequence: training joins documents with it.
  const ids = tokenizer.encode(prompt);
  const out = new Int32Array(ids.length + 1);
  out[0] = tokenizer.eosId;
  out.set(ids, 1);
  return out;
}

/** Streams the continuation of `prompt` as pieces of text. */
export async function* streamText(
  model: Transformer,
  tokenizer: Tokenizer,
  prompt: string,
  opts: GenerateOptions = {},
): AsyncGenerator<string> {
  const o = resolve(opts);
  const acc = new TextAccumulator(tokenizer, o.stop);
  const encoderIds = opts.encoderInput !== undefined ? tokenizer.encode(opts.encoderInput) : undefined;
  const ids = model.config.architecture === 'encoder-decoder' ? Int32Array.of(tokenizer.eosId) : promptIds(tokenizer, prompt);
  for await (const step of generateIds(model, ids, 1, { ...opts, encoderIds, isFinished: () => acc.done })) {
    if (step[0]! < 0) break;
    const piece = acc.push(step[0]!);
    if (piece) yield piece;
    if (acc.done) break;
  }
  const rest = acc.flush();
  if (rest) yield rest;
}

/** Generates continuations for one or several prompts; prompts of equal token length are decoded as one batch. */
export async function generate(
  model: Transformer,
  tokenizer: Tokenizer,
  prompts: string | string[],
  opts: GenerateOptions = {},
): Promise<string | string[]> {
  if (typeof prompts === 'string') {
    let text = '';
    for await (const piece of streamText(model, tokenizer, prompts, opts)) text += piece;
    return text;
  }
  if (!Array.isArray(prompts)) throw new TypeError('generate: prompts must be a string or an array of strings');
  const o = resolve(opts);
  const encoded = prompts.map((p) => promptIds(tokenizer, p));
  const results = new Array<string>(prompts.length).fill('');
  const groups = new Map<number, number[]>();
  encoded.forEach((ids, i) => groups.set(ids.length, [...(groups.get(ids.length) ?? []), i]));
  for (const [T, rows] of groups) {
    const flat = new Int32Array(rows.length * T);
    rows.forEach((r, b) => flat.set(encoded[r]!, b * T));
    const accs = rows.map(() => new TextAccumulator(tokenizer, o.stop));
    for await (const step of generateIds(model, flat, rows.length, { ...opts, isFinished: (b) => accs[b]!.done })) {
      step.forEach((id, b) => {
        if (id >= 0) results[rows[b]!] += accs[b]!.push(id);
      });
      if (accs.every((a) => a.done)) break;
    }
    accs.forEach((a, b) => (results[rows[b]!] += a.flush()));
  }
  return results;
}
