import * as path from 'node:path';
import { Tensor, ops } from '../../lib';
import { validateConfig } from '../../lib/models/config';
import { Transformer } from '../../lib/models/transformer';
import { generate, generateIds, streamText } from '../../lib/generate/generate';
import { Tokenizer } from '../../lib/tokenizer/tokenizer';
import { testTokenizerFile } from '../helpers/tokenizer_file';

const SHARED_TOKENIZER = testTokenizerFile();

function tinyModel(over: Record<string, unknown> = {}): Transformer {
  const m = new Transformer(validateConfig({ vocab_size: 50254, d_model: 16, n_layers: 2, n_heads: 2, d_ff: 32, max_seq_len: 64, ...over }));
  m.init(7);
  return m;
}

async function collect(it: AsyncGenerator<Int32Array>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const step of it) out.push(Array.from(step));
  return out;
}

function argmax(a: ArrayLike<number>, from: number, n: number): number {
  let best = from;
  for (let i = from; i < from + n; i++) if (a[i]! > a[best]!) best = i;
  return best - from;
}

test('cached greedy generation equals uncached greedy generation token for token', async () => {
  const model = tinyModel();
  const prompt = Int32Array.from([0, 464, 1263, 273]);
  const steps = await collect(generateIds(model, prompt, 1, { maxNewTokens: 12, temperature: 0 }));
  // Uncached: the whole sequence through the full forward at every step.
  const seq = Array.from(prompt);
  const V = model.config.vocab_size;
  for (let i = 0; i < 12; i++) {
    const input = Tensor.from(Int32Array.from(seq), [1, seq.length]);
    const logits = model.forward(input).toArray();
    input.dispose();
    seq.push(argmax(logits, (seq.length - 1) * V, V));
  }
  expect(steps.map((s) => s[0])).toEqual(seq.slice(prompt.length));
  model.dispose();
});

test('sampling with a seed is reproducible; another seed differs', async () => {
  const model = tinyModel();
  const prompt = Int32Array.from([0, 510, 5271]);
  const run = (seed: number) => collect(generateIds(model, prompt, 1, { maxNewTokens: 16, temperature: 1.5, topK: 50, topP: 0.95, seed }));
  const a = await run(1);
  expect(await run(1)).toEqual(a);
  expect(await run(2)).not.toEqual(a);
  model.dispose();
});

test('generation never blocks the event loop: every step runs on a background thread', async () => {
  const model = tinyModel({ d_model: 64, n_heads: 4, d_ff: 128 });
  const prompt = Int32Array.from({ length: 48 }, (_, i) => (i * 7919) % 50254);
  let stepsWithATick = 0;
  let ticked = false;
  const gen = generateIds(model, prompt, 1, { maxNewTokens: 6, temperature: 0, pipeline: false });
  for (;;) {
    ticked = false;
    setImmediate(() => (ticked = true));
    const r = await gen.next();
    if (r.done) break;
    if (ticked) stepsWithATick++; // the loop turned while the step ran (a synchronous step resumes before it)
  }
  expect(stepsWithATick).toBe(6);
  model.dispose();
});

test('pipelined generation (step n + 1 queued while step n runs) gives the tokens of step-by-step generation', async () => {
  const model = tinyModel();
  const prompt = Int32Array.from([0, 464, 1263, 273, 11, 12]);
  for (const opts of [{ temperature: 0 }, { temperature: 1.2, topK: 40, seed: 9 }]) {
    const plain = await collect(generateIds(model, prompt, 2, { maxNewTokens: 9, pipeline: false, ...opts }));
    expect(await collect(generateIds(model, prompt, 2, { maxNewTokens: 9, ...opts }))).toEqual(plain);
  }
  model.dispose();
});

test('concurrent generations on one model take turns and give what they give alone; the model refuses sync use meanwhile', async () => {
  const model = tinyModel();
  const a = Int32Array.from([0, 464, 1263]), b = Int32Array.from([0, 510, 5271, 11]);
  const alone = [
    await collect(generateIds(model, a, 1, { maxNewTokens: 10, temperature: 0.9, seed: 4 })),
    await collect(generateIds(model, b, 1, { maxNewTokens: 7, temperature: 0 })),
  ];
  const together = collect(generateIds(model, a, 1, { maxNewTokens: 10, temperature: 0.9, seed: 4 }));
  const other = collect(generateIds(model, b, 1, { maxNewTokens: 7, temperature: 0 }));
  await new Promise((r) => setImmediate(r));
  const ids = Tensor.from(a, [1, 3]);
  expect(() => model.forward(ids)).toThrow(/running a background step/);
  expect(await Promise.all([together, other])).toEqual(alone);
  expect(() => model.forward(ids)).not.toThrow(); // idle again
  ids.dispose();
  model.dispose();
});

describe('with the tokenizer', () => {
  const tokenizer = Tokenizer.fromFile(SHARED_TOKENIZER);

  test('streamed pieces concatenate to the whole text, and stop strings stop it', async () => {
    const model = tinyModel();
    const opts = { maxNewTokens: 24, temperature: 1.0, seed: 3 };
    let streamed = '';
    for await (const piece of streamText(model, tokenizer, 'Call me', opts)) streamed += piece;
    expect(await generate(model, tokenizer, 'Call me', opts)).toBe(streamed);
    expect(streamed.length).toBeGreaterThan(0);
    // Stop at the first occurrence of some character of the unconstrained output: the result is the text before it.
    const stopAt = streamed.slice(3, 5);
    const stopped = await generate(model, tokenizer, 'Call me', { ...opts, stop: [stopAt] });
    expect(stopped).toBe(streamed.slice(0, streamed.indexOf(stopAt)));
    model.dispose();
  });

  test('a batch of prompts gives the same texts as one prompt at a time (greedy)', async () => {
    const model = tinyModel();
    const prompts = ['Call me', 'Some years ago', 'It is a way', 'The whale'];
    const batched = (await generate(model, tokenizer, prompts, { maxNewTokens: 8, temperature: 0 })) as string[];
    for (let i = 0; i < prompts.length; i++) {
      expect(batched[i]).toBe(await generate(model, tokenizer, prompts[i]!, { maxNewTokens: 8, temperature: 0 }));
    }
    model.dispose();
  });

  test('an aborted generation throws AbortError and releases its native memory', async () => {
    const model = tinyModel();
    const opts = { maxNewTokens: 50, temperature: 1 };
    await generate(model, tokenizer, 'Call me', opts); // warms the modules' reusable buffers
    const baseline = ops.allocStats().liveBytes;
    const controller = new AbortController();
    const pieces: string[] = [];
    const during: number[] = [];
    await expect(
      (async () => {
        for await (const piece of streamText(model, tokenizer, 'Call me', { ...opts, signal: controller.signal })) {
          pieces.push(piece);
          during.push(ops.allocStats().liveBytes);
          if (pieces.length === 3) controller.abort();
        }
      })(),
    ).rejects.toThrow(/aborted/);
    expect(during[0]).toBeGreaterThan(baseline); // the KV caches were alive while generating
    expect(ops.allocStats().liveBytes).toBe(baseline); // and are freed by the abort
    model.dispose();
  });

  test('bad options are clear errors', async () => {
    const model = tinyModel();
    const bad = async (o: Record<string, unknown>) => generate(model, tokenizer, 'x', o);
    await expect(bad({ temperature: -1 })).rejects.toThrow(/temperature must be >= 0/);
    await expect(bad({ topP: 0 })).rejects.toThrow(/topP must be in \(0, 1\]/);
    await expect(bad({ topK: 1.5 })).rejects.toThrow(/topK must be an integer/);
    await expect(bad({ maxNewTokens: 0 })).rejects.toThrow(/maxNewTokens/);
    await expect(bad({ stop: [''] })).rejects.toThrow(/stop must be/);
    await expect(generate(model, tokenizer, Array.from({ length: 80 }, (_, i) => `w${i}`).join(' '), { maxNewTokens: 1 })).rejects.toThrow(/max_seq_len/);
    model.dispose();
  });
});
