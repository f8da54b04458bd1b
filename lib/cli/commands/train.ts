/** `wavemoe train`: trains a preset or config on the embedded corpus or the user's text, with a progress bar. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { SingleBar } from 'cli-progress';
import { ops } from '../../ops';
import { trainRun } from '../../train/run';
import type { StepMetrics } from '../../train/trainer';
import { PRESET_NAMES } from '../../models/presets';
import { validateConfig } from '../../models/config';
import { expertLoadSvg, lossCurveSvg, type LossPoint } from '../plots';
import { fail, parseNumber } from '../errors';
import { describeFsError, writeFileAtomic } from '../../io/atomic_write';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => parseNumber({ integer: true, min, max });

export function trainCommand(): Command {
  return new Command('train')
    .description('train a model (default: moe-small on the embedded Moby-Dick corpus)')
    .option('--preset <name>', `model preset (${PRESET_NAMES.join(', ')})`, 'moe-small')
    .option('--config <file>', 'model config JSON (overrides --preset)')
    .option('--data <path>', 'text file or directory of .txt files (default: Moby-Dick)')
    .option('--steps <n>', 'optimizer steps', int(1), 300)
    .option('--batch <n>', 'sequences per step', int(1), 8)
    .option('--seq-len <n>', 'tokens per sequence', int(1), 128)
    .option('--lr <x>', 'peak learning rate', parseNumber({ above: 0 }), 1e-3)
    .option('--grad-accum <n>', 'micro-batches per step', int(1), 1)
    .option('--threads <n>', 'CPU threads (default: all cores)', int(1, 1024))
    .option('--device <name>', 'cpu, or cuda / cuda:N (needs the CUDA-enabled build: npm run build:cuda)', 'cpu')
    .addOption(new Option('--precision <p>', 'matrix products: fp32, or tf32 / bf16 inputs with float32 sums').choices(['fp32', 'tf32', 'bf16']).default('fp32'))
    .option('--out <dir>', 'run directory (checkpoints, metrics, figures)', 'wavemoe-run')
    .option('--resume', 'continue from the latest checkpoint in --out')
    .option('--eval-every <n>', 'evaluate every n steps (0: at the end)', int(0), 50)
    .option('--save-every <n>', 'checkpoint every n steps (0: at the end)', int(0), 100)
    .option('--seed <n>', 'random seed', int(0), 0)
    .option('--tokenizer <file>', 'GPT-NeoX-20B tokenizer.json to use instead of the bundled or cached one')
    .option('--task <name>', 'built-in task instead of text: numbers (digits to English words, encoder-decoder)')
    .action(async (o) => {
      try {
        await runTrain(o);
      } catch (err) {
        fail('train', err);
      }
    });
}

interface TrainCliOptions {
  preset: string;
  config?: string;
  data?: string;
  steps: number;
  batch: number;
  seqLen: number;
  lr: number;
  gradAccum: number;
  threads?: number;
  device: string;
  precision: string;
  out: string;
  resume?: boolean;
  evalEvery: number;
  saveEvery: number;
  seed: number;
  tokenizer?: string;
  task?: string;
}

async function runTrain(o: TrainCliOptions): Promise<void> {
  let config: unknown;
  if (o.config) {
    try {
      config = JSON.parse(fs.readFileSync(o.config, 'utf8'));
    } catch (err) {
      throw new Error(`cannot read config ${o.config}: ${err instanceof Error ? err.message : String(err)}`);
    }
    config = validateConfig(config, o.config); // errors name the file, not just 'config'
  }
  // Ctrl-C (SIGINT) or SIGTERM (docker stop, systemd, a job scheduler): finish the current step, save, and exit 0. A
  // save is synchronous, so a signal that arrives during one is handled only after it is complete; the checkpoint on
  // disk is valid whatever happens. A second signal leaves at once (exit 130) without the final save: `latest`
  // still names the last complete checkpoint.
  const stop = new AbortController();
  let interrupted = false;
  let finished = false; // training and its final save are done
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      bar.stop();
      const how = finished ? 'exiting now' : 'exiting without a final save';
      process.stderr.write(`\nwavemoe train: interrupted again, ${how}; ${lastCheckpointNote(o.out)}\n`);
      process.exit(130);
    }
    interrupted = true;
    const what = signal === 'SIGINT' ? 'interrupted' : `${signal} received`;
    process.stderr.write(`\nwavemoe train: ${what}, saving a checkpoint after this step (Ctrl-C again to quit without saving)...\n`);
    stop.abort();
  };
  const history: LossPoint[] = [];
  const bar = new SingleBar({
    format: 'train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | lr {lr} | ETA {eta_formatted}',
    hideCursor: true,
    etaBuffer: 20,
    noTTYOutput: true,
    notTTYSchedule: 5000,
  });
  const onStep = (m: StepMetrics): void => {
    history.push({ step: m.step, loss: m.loss, valLoss: m.valLoss });
    bar.update(m.step, { loss: m.loss.toFixed(3), tps: Math.round(m.tokensPerSecond), lr: m.lr.toExponential(1) });
    if (m.valLoss !== undefined) {
      bar.stop();
      process.stderr.write(`step ${m.step}: validation loss ${m.valLoss.toFixed(3)}, perplexity ${m.valPerplexity!.toFixed(1)}\n`);
      if (m.step < o.steps) bar.start(o.steps, m.step, { loss: m.loss.toFixed(3), tps: '-', lr: m.lr.toExponential(1) });
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let result: Awaited<ReturnType<typeof trainRun>>;
  try {
    result = await trainRun({
      preset: o.preset,
      config,
      data: o.data,
      outDir: o.out,
      resume: o.resume,
      steps: o.steps,
      batchSize: o.batch,
      seqLen: o.seqLen,
      lr: o.lr,
      gradAccum: o.gradAccum,
      threads: o.threads,
      device: o.device,
      precision: o.precision,
      seed: o.seed,
      evalEvery: o.evalEvery,
      saveEvery: o.saveEvery,
      tokenizer: o.tokenizer,
      task: o.task,
      signal: stop.signal,
      onStep,
      onReady: (info) => {
        const data = o.task ? `task: ${o.task}` : `data: ${info.trainTokens} training and ${info.validationTokens} validation tokens`;
        process.stderr.write(`model: ${info.config.architecture}, ${(info.parameters / 1e6).toFixed(2)}M parameters; ${data}\n`);
        bar.start(o.steps, info.startStep, { loss: '-', tps: '-', lr: '-' });
      },
    });
  } catch (err) {
    bar.stop(); // the error goes on a line of its own
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    throw withRunDir(err, o.out);
  }
  finished = true;
  bar.stop();
  const gpuMemory = peakDeviceMemory(result.model.device);
  writeFileAtomic(path.join(o.out, 'loss.svg'), lossCurveSvg(history));
  writeFileAtomic(path.join(o.out, 'expert_load.svg'), expertLoadSvg(result.expertLoad));
  result.model.dispose();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.stderr.write(
    `${interrupted ? 'stopped' : 'done'} at step ${result.last?.step ?? 0}; checkpoint ${result.checkpoint ?? '(none)'}\n` +
      `metrics: ${path.join(o.out, 'metrics.jsonl')}, figures: loss.svg, expert_load.svg${gpuMemory}\n`,
  );
}

/** "; peak memory on cuda:0: 12.34 GiB" for a GPU run (the caching allocator's peak), "" on the CPU. */
function peakDeviceMemory(device: string): string {
  if (device === 'cpu') return '';
  try {
    return `; peak memory on ${device}: ${(ops.cudaMemoryStats(device).peakBytesInUse / 2 ** 30).toFixed(2)} GiB`;
  } catch {
    return ''; // a device without allocator statistics (the test device)
  }
}

/**
 * A write error without a file name (an append to metrics.jsonl on a full disk says only "ENOSPC: ..., write") gets
 * the run directory and a hint; errors that name their file already (checkpoints, caches) pass unchanged.
 */
function withRunDir(err: unknown, out: string): unknown {
  const e = err as NodeJS.ErrnoException | null;
  if (typeof e?.message !== 'string' || typeof e.code !== 'string' || e.path !== undefined || /^could not /.test(e.message)) return err;
  return new Error(`${describeFsError(e)} while writing in ${out}; ${lastCheckpointNote(out)}`, { cause: e });
}

function lastCheckpointNote(out: string): string {
  const latest = path.join(out, 'latest');
  return fs.existsSync(latest) ? `${latest} names the last complete checkpoint` : 'no checkpoint was saved';
}
