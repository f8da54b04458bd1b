/**
 * A save that runs out of room fails with a clear error naming the file and the cause, leaves no temporary files,
 * and keeps the previous checkpoint loadable — in the library (saveCheckpoint) and in `wavemoe train`.
 * Two real ways to run out of room, no mocks:
 *  - ENOSPC: a small tmpfs (mount needs root and the right to mount; otherwise these tests say so and skip);
 *  - EFBIG: a file size limit on a child process (`ulimit -f`; works unprivileged). Node ignores SIGXFSZ, so the
 *    write fails with EFBIG instead of the signal killing the process.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validateConfig } from '../../lib/models/config';
import { Transformer } from '../../lib/models/transformer';
import { loadModel, saveCheckpoint } from '../../lib/train/checkpoint';
import { languageModelSource } from '../../lib/train/sources';
import { Trainer } from '../../lib/train/trainer';

const HELPER = path.resolve(__dirname, '../helpers/save_loop.js');
const BIN = path.resolve(__dirname, '../../bin/wavemoe.js');
// The model and data of test/helpers/save_loop.js.
const CONFIG = { vocab_size: 40, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, max_seq_len: 32 };
const TOKENS = Int32Array.from({ length: 2000 }, (_, i) => (i * 7 + (i >> 3)) % 40);
// A tiny encoder-decoder for `wavemoe train --task numbers` (no tokenizer, quick).
const CLI_CONFIG = {
  architecture: 'encoder-decoder', vocab_size: 64, d_model: 32, n_layers: 1, n_encoder_layers: 1, n_heads: 2, d_ff: 64, max_seq_len: 16,
  norm: 'layernorm', norm_position: 'post', positional: 'sinusoidal', activation: 'relu',
};
/** ulimit -f in blocks (512 bytes in dash, 1024 in bash): 20 or 40 KB, below the weights' size either way. */
const FSIZE_BLOCKS = 40;

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'wavemoe-full-'));
  fs.writeFileSync(path.join(root, 'tiny.json'), JSON.stringify(CLI_CONFIG));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** Entries whose names start with a dot, anywhere below dir: temporary files and partial saves. */
function hiddenEntries(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) out.push(e.name);
    else if (e.isDirectory()) out.push(...hiddenEntries(path.join(dir, e.name)).map((n) => `${e.name}/${n}`));
  }
  return out;
}

function trainedModel(seed: number): { model: Transformer; trainer: Trainer; dispose: () => void } {
  const model = new Transformer(validateConfig(CONFIG));
  model.init(seed);
  const trainer = new Trainer(model, languageModelSource(TOKENS, TOKENS, 2, 8, 0), { steps: 1e9, lr: 1e-3 });
  trainer.trainStep();
  return { model, trainer, dispose: () => (trainer.dispose(), model.dispose()) };
}

const saveAt = (dir: string, t: { model: Transformer; trainer: Trainer }, step: number, options: Record<string, unknown> = {}) =>
  saveCheckpoint(dir, t.model, t.trainer.optimizer, { step, optimizerStep: t.trainer.optimizer.step, options });

function expectIntact(dir: string, name: string, step: number): void {
  expect(fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim()).toBe(name);
  const loaded = loadModel(dir);
  expect(loaded.dir).toBe(path.join(dir, name));
  expect(loaded.state!.step).toBe(step);
  loaded.model.dispose();
}

// --- ENOSPC: a small tmpfs ---------------------------------------------------------------------------------------

/** Mounts a tmpfs of `size` bytes at dir; false (with the reason printed) where mounting is not permitted. */
function mountTmpfs(dir: string, size: number): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) {
    console.log(`SKIPPED: the ENOSPC tests need root to mount a small tmpfs (uid ${process.getuid?.()}); the EFBIG tests still run`);
    return false;
  }
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    console.log(`SKIPPED: cannot mount a tmpfs here (${(r.stderr || String(r.error)).trim()}); the EFBIG tests still run`);
    return false;
  }
  return true;
}

/** Shrinks (or grows) a mounted tmpfs to the bytes it uses now plus `free`. */
function resizeTmpfs(dir: string, free: number): void {
  const s = fs.statfsSync(dir);
  const used = (s.blocks - s.bfree) * s.bsize;
  const r = spawnSync('mount', ['-o', `remount,size=${used + free}`, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`remount ${dir}: ${r.stderr}`);
}

function unmount(dir: string): void {
  if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
}

describe('a full disk (ENOSPC, tmpfs)', () => {
  test('saveCheckpoint fails naming the file and the cause, leaves no temporary files, keeps the previous checkpoint', () => {
    const mnt = fs.mkdtempSync(path.join(root, 'tmpfs-'));
    if (!mountTmpfs(mnt, 4 << 20)) return;
    const t = trainedModel(1);
    try {
      const dir = path.join(mnt, 'run');
      saveAt(dir, t, 1);
      const s = fs.statfsSync(mnt);
      const oneCheckpoint = (s.blocks - s.bfree) * s.bsize;
      resizeTmpfs(mnt, Math.floor(oneCheckpoint / 2)); // room for half a checkpoint more

      let err: (Error & { code?: string }) | undefined;
      try {
        saveAt(dir, t, 2);
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message).toMatch(
        new RegExp(
          `^could not save checkpoint ${dir}/checkpoint-000002: writing (model|optimizer)\\.safetensors: ENOSPC: no space left on device, write \\(the disk is full\\); ` +
            `the previous checkpoint ${dir}/checkpoint-000001 is intact$`,
        ),
      );
      expect(err?.code).toBe('ENOSPC');
      expect(hiddenEntries(dir)).toEqual([]);
      expect(fs.readdirSync(dir).sort()).toEqual(['checkpoint-000001', 'latest']);
      expectIntact(dir, 'checkpoint-000001', 1);

      // The same step again with other contents (a resumed run's save): the same, and no half-made generation.
      expect(() => saveAt(dir, t, 1, { lr: 2 })).toThrow(/could not save checkpoint .*checkpoint-000001\.1: writing .*ENOSPC/);
      expect(fs.readdirSync(dir).sort()).toEqual(['checkpoint-000001', 'latest']);
      expectIntact(dir, 'checkpoint-000001', 1);

      // A new run on the full disk: nothing was saved before.
      expect(() => saveAt(path.join(mnt, 'other'), t, 1)).toThrow(/ENOSPC.*; no earlier checkpoint exists$/);
      expect(fs.readdirSync(path.join(mnt, 'other'))).toEqual([]);

      // Room again: the next save works and prunes as usual.
      resizeTmpfs(mnt, 4 * oneCheckpoint);
      expect(saveAt(dir, t, 2)).toBe(path.join(dir, 'checkpoint-000002'));
      expectIntact(dir, 'checkpoint-000002', 2);
    } finally {
      t.dispose();
      unmount(mnt);
    }
  });

  test('wavemoe train exits 1 with one clear line and keeps the previous checkpoint', () => {
    const mnt = fs.mkdtempSync(path.join(root, 'tmpfs-cli-'));
    if (!mountTmpfs(mnt, 8 << 20)) return;
    try {
      const first = cli(['--steps', '2'], mnt);
      expect(first.stderr).toMatch(/done at step 2; checkpoint run\/checkpoint-000002/);
      expect(first.code).toBe(0);
      const ckpt = path.join(mnt, 'run', 'checkpoint-000002');
      const oneCheckpoint = fs.readdirSync(ckpt).reduce((n, f) => n + fs.statSync(path.join(ckpt, f)).size, 0);
      resizeTmpfs(mnt, Math.floor(oneCheckpoint / 2));
      expectCliFailsCleanly(cli(['--resume', '--steps', '4'], mnt), /ENOSPC: no space left on device, write \(the disk is full\)/, mnt);
    } finally {
      unmount(mnt);
    }
  });
});

// --- EFBIG: a file size limit (ulimit -f) -------------------------------------------------------------------------

/** Runs a command under a file size limit. */
function limited(args: string[], cwd: string) {
  const r = spawnSync('/bin/sh', ['-c', `ulimit -f ${FSIZE_BLOCKS} && exec "$@"`, 'sh', process.execPath, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

function cli(args: string[], cwd: string, fsizeLimit = false) {
  const all = [BIN, 'train', '--config', path.join(root, 'tiny.json'), '--task', 'numbers', '--batch', '4', '--eval-every', '0', '--out', 'run', ...args];
  if (fsizeLimit) return limited(all, cwd);
  const r = spawnSync(process.execPath, all, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

function expectCliFailsCleanly(r: { code: number | null; stderr: string }, cause: RegExp, cwd: string): void {
  expect(r.code).toBe(1);
  const lines = r.stderr.split('\n');
  const last = lines[lines.length - 1]!;
  expect(last).toMatch(/^wavemoe train: could not save checkpoint run\/checkpoint-000004: writing (model|optimizer)\.safetensors: /);
  expect(last).toMatch(cause);
  expect(last).toMatch(/; the previous checkpoint run\/checkpoint-000002 is intact$/);
  expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
  expect(lines.filter((l) => l.startsWith('wavemoe train:'))).toEqual([last]);
  const run = path.join(cwd, 'run');
  expect(hiddenEntries(run)).toEqual([]);
  expect(fs.readdirSync(run).filter((n) => n.startsWith('checkpoint-'))).toEqual(['checkpoint-000002']);
  expectIntact(run, 'checkpoint-000002', 2);
}

describe('a file size limit (EFBIG, ulimit -f)', () => {
  test('saveCheckpoint fails naming the file and the cause, leaves no temporary files, keeps the previous checkpoint', () => {
    const dir = fs.mkdtempSync(path.join(root, 'fsize-'));
    const t = trainedModel(3);
    saveAt(dir, t, 1);
    t.dispose();
    const r = limited([HELPER, 'save-once', dir], root);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(2);
    expect(r.stdout.trim()).toBe(
      `ERROR could not save checkpoint ${dir}/checkpoint-000002: writing model.safetensors: EFBIG: file too large, write ` +
        `(over the file size limit: see ulimit -f); the previous checkpoint ${dir}/checkpoint-000001 is intact`,
    );
    expect(hiddenEntries(dir)).toEqual([]);
    expect(fs.readdirSync(dir).sort()).toEqual(['checkpoint-000001', 'latest']);
    expectIntact(dir, 'checkpoint-000001', 1);
  });

  test('wavemoe train exits 1 with one clear line and keeps the previous checkpoint', () => {
    const cwd = fs.mkdtempSync(path.join(root, 'fsize-cli-'));
    const first = cli(['--steps', '2'], cwd);
    expect(first.stderr).toMatch(/done at step 2; checkpoint run\/checkpoint-000002/);
    expect(first.code).toBe(0);
    expectCliFailsCleanly(cli(['--resume', '--steps', '4'], cwd, true), /EFBIG: file too large, write/, cwd);
  });
});
