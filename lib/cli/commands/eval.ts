/** `wavemoe eval`: loss and perplexity of a checkpoint on a text file (default: the validation split). */
import * as fs from 'node:fs';
import { Command } from 'commander';
import { ops } from '../../ops';
import { loadModel } from '../../train/checkpoint';
import { loadCorpus } from '../../train/corpus';
import { BatchSampler } from '../../train/batches';
import { Tokenizer } from '../../tokenizer/tokenizer';
import { Tensor } from '../../tensor';
import { fail, parseNumber } from '../errors';

const int = (min: number) => parseNumber({ integer: true, min });

export function evalCommand(): Command {
  return new Command('eval')
    .description('loss and perplexity of a checkpoint on a text file (default: the validation split of Moby-Dick)')
    .option('--checkpoint <dir>', 'run or checkpoint directory', 'wavemoe-run')
    .option('--data <file>', 'text file to evaluate on (all of it)')
    .option('--seq-len <n>', 'tokens per sequence', int(1), 128)
    .option('--batch <n>', 'sequences per batch', int(1), 8)
    .option('--max-batches <n>', 'evaluate at most n batches', int(1), 50)
    .option('--threads <n>', 'CPU threads', int(1))
    .option('--device <name>', 'cpu, or cuda / cuda:N (needs the CUDA-enabled build: npm run build:cuda)', 'cpu')
    .option('--tokenizer <file>', 'tokenizer.json to use')
    .action(async (o) => {
      try {
        if (o.threads) ops.setNumThreads(o.threads);
        const { model, state } = loadModel(o.checkpoint, 'float32', o.device);
        if (state?.options.task === 'numbers') {
          model.dispose();
          throw new Error(`${o.checkpoint} was trained on the numbers task, which has no text to evaluate (try: wavemoe generate --checkpoint ${o.checkpoint} --input 42)`);
        }
        const tokenizer = await Tokenizer.load({ path: o.tokenizer, vocabSize: model.config.vocab_size });
        let text: string;
        if (o.data) {
          if (!fs.existsSync(o.data)) throw new Error(`data not found: ${o.data}`);
          try {
            text = fs.readFileSync(o.data, 'utf8');
          } catch (err) {
            throw new Error(`cannot read ${o.data}: ${err instanceof Error ? err.message : String(err)}`);
          }
        } else {
          text = loadCorpus().validation.join('\n\n');
        }
        const seqLen = Math.min(o.seqLen, model.config.max_seq_len);
        const tokens = tokenizer.encode(text);
        const batch = Math.max(1, Math.min(o.batch, Math.floor((tokens.length - 1) / seqLen)));
        const sampler = new BatchSampler(tokens, batch, seqLen, 0);
        const ids = Tensor.zeros([batch, seqLen], 'int32', model.device);
        const targets = Tensor.zeros([batch, seqLen], 'int32', model.device);
        let sum = 0;
        let n = 0;
        for (const b of sampler.sequential(o.maxBatches)) {
          ids.copyFrom(b.inputs);
          targets.copyFrom(b.targets);
          sum += model.loss(ids, targets);
          n++;
        }
        if (n === 0) throw new Error(`the text has ${tokens.length} tokens, fewer than one sequence of ${seqLen + 1}`);
        const loss = sum / n;
        process.stdout.write(`loss ${loss.toFixed(4)}  perplexity ${Math.exp(loss).toFixed(2)}  (${n * batch * seqLen} tokens)\n`);
        model.dispose();
      } catch (err) {
        fail('eval', err);
      }
    });
}
