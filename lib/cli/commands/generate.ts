/** `wavemoe generate`: streams a continuation of the prompt (argument or stdin) to stdout. */
import { Command } from 'commander';
import { ops } from '../../ops';
import { generateIds, streamText } from '../../generate/generate';
import { decodeWords, encodeDigits, NUMBERS_END } from '../../train/tasks/numbers';
import { loadModel } from '../../train/checkpoint';
import { Tokenizer } from '../../tokenizer/tokenizer';
import { fail, parseNumber } from '../errors';

const int = (min: number) => parseNumber({ integer: true, min });

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function generateCommand(): Command {
  return new Command('generate')
    .description('generate text from a trained checkpoint (prompt from --prompt or stdin)')
    .option('--checkpoint <dir>', 'run or checkpoint directory', 'wavemoe-run')
    .option('--prompt <text>', 'the prompt (default: read stdin)')
    .option('--input <text>', 'encoder input (encoder-decoder models)')
    .option('--max-new-tokens <n>', 'tokens to generate', int(1), 64)
    .option('--temperature <x>', '0 for greedy', parseNumber({ min: 0 }), 0.8)
    .option('--top-k <n>', 'keep the k most likely tokens (0: off)', int(0), 40)
    .option('--top-p <x>', 'nucleus sampling threshold (1: off)', parseNumber({ above: 0, max: 1 }), 0.95)
    .option('--repetition-penalty <x>', 'penalise repeated tokens (1: off)', parseNumber({ above: 0 }), 1.1)
    .option('--stop <text...>', 'stop at any of these strings')
    .option('--seed <n>', 'sampling seed', int(0), 0)
    .option('--threads <n>', 'CPU threads', int(1))
    .option('--device <name>', 'cpu, or cuda / cuda:N (needs the CUDA-enabled build: npm run build:cuda)', 'cpu')
    .option('--tokenizer <file>', 'tokenizer.json to use')
    .action(async (o) => {
      try {
        if (o.threads) ops.setNumThreads(o.threads);
        const prompt: string = o.prompt ?? o.input ?? (process.stdin.isTTY ? '' : await readStdin());
        const { model, state } = loadModel(o.checkpoint, 'float32', o.device);
        if (state?.options.task === 'numbers') {
          // The numbers task: digits in, words out, with the task's own vocabulary.
          const ids: number[] = [];
          const opts = { encoderIds: encodeDigits(prompt), temperature: o.temperature, seed: o.seed, maxNewTokens: 8 };
          for await (const step of generateIds(model, Int32Array.of(NUMBERS_END), 1, opts)) {
            if (step[0] === NUMBERS_END) break;
            ids.push(step[0]!);
          }
          process.stdout.write(`${decodeWords(ids)}\n`);
          model.dispose();
          return;
        }
        const tokenizer = await Tokenizer.load({ path: o.tokenizer, vocabSize: model.config.vocab_size });
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        process.stdout.write(prompt);
        for await (const piece of streamText(model, tokenizer, prompt, {
          maxNewTokens: o.maxNewTokens,
          temperature: o.temperature,
          topK: o.topK,
          topP: o.topP,
          repetitionPenalty: o.repetitionPenalty,
          stop: o.stop,
          seed: o.seed,
          encoderInput: o.input,
          signal: stop.signal,
        })) {
          process.stdout.write(piece);
        }
        process.stdout.write('\n');
        model.dispose();
      } catch (err) {
        if (err instanceof Error && err.name === 'AbortError') {
          process.stdout.write('\n');
          return;
        }
        fail('generate', err);
      }
    });
}
