/**
 * Nothing saved is lost: a process killed at any moment of a save leaves `latest` naming a complete checkpoint that
 * loads and resumes training.
 *  - Random SIGKILLs: a child (test/helpers/save_loop.js, over dist/) saves a tiny model in a loop, re-saving the same
 *    step now and then as a resumed run does; it is killed at seeded random delays after it announces a save.
 *  - Every crash point: a child copies its run directory before each call that changes the file system during a
 *    sequence of saves; each copy is what a kill at that instant leaves, and each must load and resume.
 * The scratch directory is on /dev/shm when there is one: a kill (unlike a power cut) loses nothing the kernel has,
 * so fsync does not matter here, and saves in memory are quick, so many kills land inside them.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validateConfig } from '../../lib/models/config';
import { Transformer } from '../../lib/models/transformer';
import { loadModel, resolveCheckpointDir, saveCheckpoint } from '../../lib/train/checkpoint';
import { languageModelSource } from '../../lib/train/sources';
import { Trainer } from '../../lib/train/trainer';
import { Rng } from '../helpers/random';

const HELPER = path.resolve(__dirname, '../helpers/save_loop.js');
const TRIALS = Number(process.env.WAVEMOE_CRASH_TRIALS ?? 64);
// The model and data of test/helpers/save_loop.js.
const CONFIG = { vocab_size: 40, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, max_seq_len: 32 };
const TOKENS = Int32Array.from({ length: 2000 }, (_, i) => (i * 7 + (i >> 3)) % 40);
const FILES = ['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json'];

function scratchRoot(): string {
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK);
    if (fs.statSync('/dev/shm').isDirectory()) return '/dev/shm';
  } catch {
    // no /dev/shm: the ordinary temporary directory (slower saves, the same guarantees)
  }
  return os.tmpdir();
}

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(scratchRoot(), 'wavemoe-crash-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function newTrainer(model: Transformer): Trainer {
  return new Trainer(model, languageModelSource(TOKENS, TOKENS, 2, 8, 0), { steps: 1e9, lr: 1e-3 });
}

/** A run directory with one checkpoint (step 1), as the parent of the children. */
function initialRun(dir: string): void {
  const model = new Transformer(validateConfig(CONFIG));
  model.init(1);
  const trainer = newTrainer(model);
  trainer.trainStep();
  saveCheckpoint(dir, model, trainer.optimizer, { step: trainer.step, optimizerStep: trainer.optimizer.step, options: { run: 'crash-test' } }, { keep: 2 });
  trainer.dispose();
  model.dispose();
}

/**
 * Throws unless `latest` names a complete checkpoint that loadModel loads as is (no fallback), whose step matches its
 * name, and from which a training step runs. Returns the checkpoint's name.
 */
function checkResumable(dir: string): string {
  const latestFile = path.join(dir, 'latest');
  if (!fs.existsSync(latestFile)) throw new Error('latest is missing');
  const name = fs.readFileSync(latestFile, 'utf8').trim();
  const m = /^checkpoint-(\d+)(?:\.\d+)?$/.exec(name);
  if (!m) throw new Error(`latest holds ${JSON.stringify(name)}`);
  const missing = FILES.filter((f) => !fs.existsSync(path.join(dir, name, f)));
  if (missing.length > 0) throw new Error(`latest names ${name}, which lacks ${missing.join(', ') || 'nothing'}${fs.existsSync(path.join(dir, name)) ? '' : ' (the directory is missing)'}`);
  resumeOneStep(dir, path.join(dir, name), Number(m[1]));
  return name;
}

function resumeOneStep(dir: string, expectedDir: string, expectedStep: number): void {
  const loaded = loadModel(dir);
  try {
    if (loaded.dir !== expectedDir) throw new Error(`loadModel chose ${loaded.dir}, not ${expectedDir}`);
    const state = loaded.state;
    if (!state || state.step !== expectedStep) throw new Error(`${expectedDir}: trainer state step ${state?.step}, expected ${expectedStep}`);
    const trainer = newTrainer(loaded.model);
    try {
      trainer.resumeFrom(loaded.dir, state);
      const r = trainer.trainStep();
      if (!Number.isFinite(r.loss) || r.step !== expectedStep + 1) throw new Error(`resumed step: loss ${r.loss}, step ${r.step}`);
    } finally {
      trainer.dispose();
    }
  } finally {
    loaded.model.dispose();
  }
}

/** What loading can see: `latest` and the non-hidden entries below dir, with file sizes. */
function visibleState(dir: string): string {
  const parts: string[] = [];
  const walk = (d: string, prefix: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.name.startsWith('.')) continue;
      const full = path.join(d, e.name);
      if (e.isDirectory()) {
        parts.push(`${prefix}${e.name}/`);
        walk(full, `${prefix}${e.name}/`);
      }
      else parts.push(`${prefix}${e.name}:${fs.statSync(full).size}${e.name === 'latest' ? `=${fs.readFileSync(full, 'utf8').trim()}` : ''}`);
    }
  };
  walk(dir, '');
  return parts.join(',');
}

const hidden = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n.startsWith('.'));
const checkpoints = (dir: string): string[] => fs.readdirSync(dir).filter((n) => /^checkpoint-/.test(n));

interface Trial {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: string[];
  stderr: string;
}

/** Starts a saving child and SIGKILLs it `delayMs` after its `killAt`-th "save" line. */
function killedChild(dir: string, seed: number, killAt: number, delayMs: number): Promise<Trial> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HELPER, 'loop', dir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let pending = '';
    let saves = 0;
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      pending += d.toString();
      for (let i = pending.indexOf('\n'); i >= 0; i = pending.indexOf('\n')) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        lines.push(line);
        if (line.startsWith('save ') && ++saves === killAt) {
          const until = performance.now() + delayMs; // sub-millisecond delays: a short busy wait, not a timer
          while (performance.now() < until);
          child.kill('SIGKILL');
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, lines, stderr }));
  });
}

test(`SIGKILL at ${TRIALS} random moments while saving: latest always loads and training resumes`, async () => {
  const lanes = 2; // two children at a time (2 cores)
  const failures: string[] = [];
  let survived = 0;
  let duringSave = 0;
  const kinds: Record<string, number> = {};
  const lane = async (l: number): Promise<void> => {
    const dir = path.join(root, `lane${l}`);
    initialRun(dir);
    const rng = new Rng(1000 + l);
    const durations: number[] = [];
    // Kills are spread over 0 to 1.5 times a typical save (the median so far) after a save starts.
    const typicalSave = (): number => (durations.length ? [...durations].sort((a, b) => a - b)[durations.length >> 1]! : 3);
    for (let t = l; t < TRIALS; t += lanes) {
      const before = hidden(dir);
      const killAt = 1 + Math.floor(rng.next() * 4);
      const delay = rng.next() * 1.5 * typicalSave();
      const r = await killedChild(dir, 7919 * (t + 1), killAt, delay);
      const last = r.lines[r.lines.length - 1] ?? '';
      const what = `trial ${t} (killed ${delay.toFixed(2)} ms after save #${killAt}; last line '${last}')`;
      if (r.signal !== 'SIGKILL') {
        failures.push(`${what}: the child was not killed but exited with ${r.code}: ${r.stderr.trim()}`);
        continue;
      }
      for (const line of r.lines) if (line.startsWith('saved ')) durations.push(Number(line.slice(6)));
      if (last.startsWith('save ')) {
        duringSave++;
        const kind = last.split(' ')[2]!;
        kinds[kind] = (kinds[kind] ?? 0) + 1;
      }
      try {
        checkResumable(dir);
        // The child completed a save: what earlier killed children left behind is gone.
        if (r.lines.some((x) => x.startsWith('saved '))) {
          const stale = before.filter((n) => fs.existsSync(path.join(dir, n)));
          if (stale.length > 0) throw new Error(`leftovers of a killed process were not removed: ${stale.join(', ')}`);
        }
        survived++;
      } catch (err) {
        failures.push(`${what}: ${(err as Error).message}; directory: ${fs.readdirSync(dir).join(', ')}`);
      }
    }
  };
  await Promise.all(Array.from({ length: lanes }, (_, l) => lane(l)));
  console.log(
    `checkpoint crash test: ${survived} of ${TRIALS} SIGKILLs survived (${duringSave} landed inside a save: ` +
      `${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ')})`,
  );
  expect(failures).toEqual([]);
  expect(survived).toBe(TRIALS);
  expect(duringSave).toBeGreaterThan(TRIALS / 2);
  // One more save after all the kills: every leftover is gone and `keep` checkpoints remain.
  for (let l = 0; l < lanes; l++) {
    const dir = path.join(root, `lane${l}`);
    const loaded = loadModel(dir);
    const trainer = newTrainer(loaded.model);
    trainer.resumeFrom(loaded.dir, loaded.state!);
    trainer.trainStep();
    saveCheckpoint(dir, loaded.model, trainer.optimizer, { step: trainer.step, optimizerStep: trainer.optimizer.step, options: {} }, { keep: 2 });
    trainer.dispose();
    loaded.model.dispose();
    expect(hidden(dir)).toEqual([]);
    expect(checkpoints(dir)).toHaveLength(2);
    checkResumable(dir);
  }
}, 120_000);

test('a kill before any file system call of a save, including mid-removal, leaves a resumable run', () => {
  const dir = path.join(root, 'points');
  const fresh = path.join(root, 'points-fresh');
  const snaps = path.join(root, 'points-snapshots');
  initialRun(dir);
  // Leftovers of a process that is gone: the next save removes them.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  fs.mkdirSync(path.join(dir, `.checkpoint-000009.partial-${dead}`));
  fs.writeFileSync(path.join(dir, `.checkpoint-000009.partial-${dead}`, 'model.safetensors'), 'half');
  fs.writeFileSync(path.join(dir, `.latest.${dead}.1700000000000.0.tmp`), 'checkpoint-0');
  const r = spawnSync(process.execPath, [HELPER, 'snapshot', dir, snaps, fresh], { encoding: 'utf8', timeout: 60_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const points = fs.readdirSync(snaps).sort();
  expect(points.length).toBeGreaterThan(100);
  const failures: string[] = [];
  let freshLoadable = 0;
  const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => {}); // the fresh run's fallbacks
  const seen = new Set<string>();
  for (const p of points) {
    const run = path.join(snaps, p, 'root0');
    // Many points differ only in hidden files (a partial save growing), which loading never reads: check each
    // visible state once.
    const key = `${p.includes('-fresh-')}:${visibleState(run)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    try {
      if (p.includes('-fresh-')) {
        // The first save of a run: nothing to load before its directory is in place; then, before `latest` is
        // written, the loader falls back to it.
        if (checkpoints(run).length === 0) {
          expect(() => loadModel(run)).toThrow(/no checkpoint in/);
        } else {
          resumeOneStep(run, path.join(run, checkpoints(run)[0]!), 1);
          freshLoadable++;
        }
        continue;
      }
      checkResumable(run);
    } catch (err) {
      failures.push(`killed before ${p}: ${(err as Error).message}; directory: ${fs.readdirSync(run).join(', ')}`);
    }
  }
  warn.mockRestore();
  console.log(`checkpoint crash points: ${seen.size - failures.length} of ${seen.size} distinct states (of ${points.length} points) resumable`);
  expect(failures).toEqual([]);
  expect(freshLoadable).toBeGreaterThan(0);
  // After the sequence: the leftovers are gone, two checkpoints are kept, the newest is latest.
  expect(hidden(dir)).toEqual([]);
  expect(checkpoints(dir)).toEqual(['checkpoint-000002', 'checkpoint-000003']);
  expect(checkResumable(dir)).toBe('checkpoint-000003');
  expect(hidden(fresh)).toEqual([]);
  expect(checkResumable(fresh)).toBe('checkpoint-000001');
}, 60_000);

describe('saving a step again, pruning, and loading around damage', () => {
  let dir: string;
  let model: Transformer;
  let trainer: Trainer;
  const save = (step: number, options: Record<string, unknown> = {}, keep = 2) =>
    saveCheckpoint(dir, model, trainer.optimizer, { step, optimizerStep: trainer.optimizer.step, options }, { keep });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(root, 'unit-'));
    model = new Transformer(validateConfig(CONFIG));
    model.init(2);
    trainer = newTrainer(model);
  });
  afterEach(() => {
    trainer.dispose();
    model.dispose();
  });
  const latest = () => fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim();

  test('the same contents again keep the checkpoint; other contents get a new name, never overwriting', () => {
    save(5);
    const first = fs.statSync(path.join(dir, 'checkpoint-000005', 'model.safetensors')).ino;
    expect(save(5)).toBe(path.join(dir, 'checkpoint-000005'));
    expect(fs.statSync(path.join(dir, 'checkpoint-000005', 'model.safetensors')).ino).toBe(first); // untouched
    expect(save(5, { lr: 2 })).toBe(path.join(dir, 'checkpoint-000005.1'));
    expect(latest()).toBe('checkpoint-000005.1');
    expect(save(5, { lr: 3 })).toBe(path.join(dir, 'checkpoint-000005.2'));
    expect(checkpoints(dir)).toEqual(['checkpoint-000005.1', 'checkpoint-000005.2']);
    expect(loadModel(dir).state!.options).toEqual({ lr: 3 });
    expect(save(6)).toBe(path.join(dir, 'checkpoint-000006'));
    expect(checkpoints(dir)).toEqual(['checkpoint-000005.2', 'checkpoint-000006']);
  });

  test('pruning orders steps as numbers and never removes what latest names', () => {
    save(999_999);
    save(1_000_000);
    expect(checkpoints(dir).sort()).toEqual(['checkpoint-1000000', 'checkpoint-999999']);
    save(1_000_001);
    expect(checkpoints(dir).sort()).toEqual(['checkpoint-1000000', 'checkpoint-1000001']);
    // A run that went back to an earlier step: the newer-numbered checkpoints stay until they are the oldest.
    save(3, {}, 1);
    expect(latest()).toBe('checkpoint-000003');
    expect(checkpoints(dir)).toEqual(['checkpoint-000003']);
  });

  test('latest missing or naming a missing checkpoint: the newest complete one loads, with a warning', () => {
    save(1);
    save(2);
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      fs.rmSync(path.join(dir, 'checkpoint-000002', 'model.safetensors'));
      expect(resolveCheckpointDir(dir)).toBe(path.join(dir, 'checkpoint-000001'));
      fs.rmSync(path.join(dir, 'latest'));
      expect(resolveCheckpointDir(dir)).toBe(path.join(dir, 'checkpoint-000001'));
      expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([
        expect.stringMatching(/latest names checkpoint-000002, which is missing or incomplete; using checkpoint-000001, the newest complete checkpoint/),
        expect.stringMatching(/latest is missing; using checkpoint-000001/),
      ]);
      expect(warn.mock.calls[0]![1]).toEqual({ code: 'WAVEMOE_CHECKPOINT_FALLBACK' });
    } finally {
      warn.mockRestore();
    }
    fs.rmSync(path.join(dir, 'checkpoint-000001'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'latest'), 'checkpoint-000002\n');
    expect(() => loadModel(dir)).toThrow(/latest names checkpoint-000002, which is missing or incomplete, and .* holds no other complete checkpoint/);
  });

  test('leftovers of a live process are left alone; loading ignores all leftovers', () => {
    save(1);
    const live = path.join(dir, `.checkpoint-000002.partial-${process.ppid}`); // the parent of this worker: running
    fs.mkdirSync(live);
    save(2);
    expect(fs.existsSync(live)).toBe(true);
    expect(resolveCheckpointDir(dir)).toBe(path.join(dir, 'checkpoint-000002'));
  });
});
