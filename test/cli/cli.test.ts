import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../../lib/train/checkpoint';
import { testTokenizerFile } from '../helpers/tokenizer_file';

const BIN = path.resolve(__dirname, '../../bin/wavemoe.js');
const TOKENIZER = testTokenizerFile();

function run(args: string[], cwd: string, input?: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', input, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wavemoe-cli-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('info prints the build and the CPU kernels in use', () => {
  const r = run(['info'], dir);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^wavemoe \d+\.\d+\.\d+/);
  expect(r.stdout).toMatch(/cpu kernels: (avx512|avx2|generic)/);
  // The default build (node-gyp) is CPU only and says how to get CUDA; a CUDA build lists the GPUs (CI checks that).
  expect(r.stdout).toMatch(/cuda: (not available: this build is CPU only; npm run build:cuda|built with CUDA)/);
});

test.each([
  [['train', '--steps', 'abc'], /option '--steps <n>' argument 'abc' is invalid/],
  [['train', '--steps', '0'], /must be >= 1/],
  [['train', '--lr', '-1'], /must be > 0/],
  [['train', '--preset', 'moe-huge', '--steps', '1'], /wavemoe train: unknown preset 'moe-huge'/],
  [['train', '--config', 'missing.json'], /wavemoe train: cannot read config missing.json/],
  [['train', '--data', 'missing.txt', '--steps', '1', '--tokenizer', TOKENIZER], /wavemoe train: data not found: missing.txt/],
  [['train', '--device', 'cuda', '--steps', '1'], /wavemoe train: device 'cuda:0' needs the CUDA-enabled build of wavemoe, and this one is CPU only/],
  [['train', '--device', 'gpu', '--steps', '1'], /wavemoe train: device must be 'cpu', 'cuda' or 'cuda:N', got "gpu"/],
  [['train', '--stepz', '3'], /unknown option '--stepz'/],
  [['generate', '--checkpoint', 'nowhere'], /wavemoe generate: no checkpoint in nowhere/],
  [['generate', '--top-p', '2'], /must be <= 1/],
  [['eval', '--checkpoint', 'nowhere'], /wavemoe eval: no checkpoint in nowhere/],
  [['frobnicate'], /unknown command 'frobnicate'/],
])('wavemoe %j fails with one clear line and a non-zero exit', (args, message) => {
  const r = run(args as string[], dir);
  expect(r.code).not.toBe(0);
  expect(r.stderr.split('\n')[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
});

test('train, then eval and generate from the checkpoint, on a small text', () => {
  const text = path.join(dir, 'text.txt');
  fs.writeFileSync(text, 'It is a way I have of driving off the spleen and regulating the circulation. '.repeat(60));
  const cfg = path.join(dir, 'tiny.json');
  fs.writeFileSync(cfg, JSON.stringify({ vocab_size: 50254, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, max_seq_len: 64 }));
  const t = run(['train', '--config', cfg, '--data', text, '--steps', '6', '--batch', '2', '--seq-len', '16', '--eval-every', '3', '--tokenizer', TOKENIZER, '--out', 'run'], dir);
  expect(t.code).toBe(0);
  expect(t.stderr).toMatch(/done at step 6; checkpoint run\/checkpoint-000006/);
  for (const f of ['metrics.jsonl', 'loss.svg', 'expert_load.svg', 'latest']) expect(fs.existsSync(path.join(dir, 'run', f))).toBe(true);
  const lines = fs.readFileSync(path.join(dir, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n');
  expect(lines.length).toBe(6);
  expect(JSON.parse(lines[2]!)).toHaveProperty('valLoss');
  const e = run(['eval', '--checkpoint', 'run', '--data', text, '--seq-len', '16', '--tokenizer', TOKENIZER], dir);
  expect(e.code).toBe(0);
  expect(e.stdout).toMatch(/^loss \d+\.\d+ {2}perplexity \d+/);
  const g = run(['generate', '--checkpoint', 'run', '--prompt', 'It is', '--max-new-tokens', '5', '--seed', '1', '--tokenizer', TOKENIZER], dir);
  expect(g.code).toBe(0);
  expect(g.stdout.startsWith('It is')).toBe(true);
  const again = run(['generate', '--checkpoint', 'run', '--max-new-tokens', '5', '--seed', '1', '--tokenizer', TOKENIZER], dir, 'It is');
  expect(again.stdout).toBe(g.stdout); // the prompt from stdin, same seed: the same text
  const resumed = run(['train', '--resume', '--out', 'run', '--data', text, '--steps', '8', '--batch', '2', '--seq-len', '16', '--tokenizer', TOKENIZER], dir);
  expect(resumed.code).toBe(0);
  expect(resumed.stderr).toMatch(/done at step 8/);
});

test('the numbers task trains and decodes through the same commands', () => {
  const t = run(['train', '--preset', 'seq2seq-small', '--task', 'numbers', '--steps', '3', '--batch', '8', '--eval-every', '0', '--out', 'num'], dir);
  expect(t.code).toBe(0);
  expect(t.stderr).toMatch(/task: numbers/);
  const g = run(['generate', '--checkpoint', 'num', '--input', '1234', '--temperature', '0'], dir);
  expect(g.code).toBe(0);
  expect(g.stdout).toMatch(/^[a-z -]*\n$/); // words of the task's vocabulary (3 steps: not yet the right ones)
  const bad = run(['generate', '--checkpoint', 'num', '--input', '12x'], dir);
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toMatch(/the input must be 1 to 4 digits/);
  const decoderOnly = run(['train', '--preset', 'moe-small', '--task', 'numbers', '--steps', '1', '--out', 'num2'], dir);
  expect(decoderOnly.stderr).toMatch(/the numbers task needs an encoder-decoder model/);
});

test.each([
  ['SIGINT', /interrupted, saving a checkpoint/],
  ['SIGTERM', /SIGTERM received, saving a checkpoint/], // docker stop, systemd, job schedulers
] as const)('%s during training saves a checkpoint and exits cleanly', async (signal, message) => {
  const out = signal.toLowerCase();
  const child = spawn(process.execPath, [BIN, 'train', '--preset', 'seq2seq-small', '--task', 'numbers', '--steps', '100000', '--batch', '8', '--eval-every', '0', '--save-every', '0', '--out', out], { cwd: dir });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  // Interrupt once training is under way (the progress bar has started).
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (stderr.includes('task: numbers')) {
        clearInterval(poll);
        setTimeout(resolve, 1500);
      }
    }, 50);
  });
  child.kill(signal);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  expect(code).toBe(0);
  expect(stderr).toMatch(message);
  expect(stderr).toMatch(new RegExp(`stopped at step \\d+; checkpoint ${out}/checkpoint-\\d+`));
  const loaded = loadModel(path.join(dir, out));
  expect(loaded.state!.step).toBeGreaterThan(0);
  loaded.model.dispose();
});
