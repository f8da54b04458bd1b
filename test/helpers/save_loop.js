#!/usr/bin/env node
/**
 * A child process for the checkpoint crash tests (test/train/checkpoint_crash.test.ts, checkpoint_full_disk.test.ts).
 * It works over dist/ (rebuild with `npx tsc -p tsconfig.json`) and trains a tiny decoder, so saves are quick.
 *
 *   node save_loop.js loop <dir> <seed>
 *       Resumes from <dir> (which must hold a checkpoint) and saves forever, each save chosen at random (seeded): the
 *       same step again with the same contents, the same step with other contents (a new run's options), or a
 *       training step then a save. Prints "save <step> <kind>" before each save and "saved <ms>" after it, so the
 *       parent can SIGKILL it at random moments during saves. Before each call that changes the directory structure
 *       it waits 0 to 0.5 ms, so that kills land between those calls often (the windows a buggy save would have).
 *   node save_loop.js snapshot <dir> <snapshots> [<fresh-dir>]
 *       Runs a fixed sequence of saves (same step, same step with other contents, new steps with pruning, a save
 *       that cleans a dead process's leftovers; then the very first save into <fresh-dir>) and, before every call
 *       that changes the file system (open for writing, write, rename, remove, mkdir), copies the directory into
 *       <snapshots>/NNNNN-<main|fresh>-<op>/root0: each copy is what a process killed at that instant would leave behind.
 *   node save_loop.js save-once <dir>
 *       Resumes from <dir>, trains one step and saves; on failure prints "ERROR <message>" and exits 2 (used under a
 *       file size limit: ulimit -f).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const CONFIG = { vocab_size: 40, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, max_seq_len: 32 };
const TOKENS = Int32Array.from({ length: 2000 }, (_, i) => (i * 7 + (i >> 3)) % 40);

/** mulberry32: a small seeded generator. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// --- hooks on fs, installed before dist is loaded ----------------------------------------------------------------
const MUTATING = ['openSync', 'writeSync', 'renameSync', 'rmSync', 'unlinkSync', 'rmdirSync', 'mkdirSync', 'writeFileSync', 'appendFileSync'];
const orig = Object.fromEntries(MUTATING.concat(['cpSync', 'readdirSync', 'statSync']).map((k) => [k, fs[k]]));
let snap = null; // snapshot mode: { roots: [dir...], out: dir, n: number, phase: string }
let pause = null; // loop mode: () => milliseconds to wait before a call that changes the directory structure
let inHook = false;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function copyTree(from, to) {
  orig.cpSync.call(fs, from, to, { recursive: true });
}

function takeSnapshot(op, target) {
  const id = String(snap.n++).padStart(5, '0');
  for (const [i, root] of snap.roots.entries()) {
    const to = path.join(snap.out, `${id}-${snap.phase}-${op}`, `root${i}`);
    if (fs.existsSync(root)) copyTree(root, to);
    else orig.mkdirSync.call(fs, to, { recursive: true });
    // A recursive removal killed halfway: the first half of the entries gone (rimraf removes in readdir order).
    if (op === 'rmSync' && typeof target === 'string' && path.dirname(target) === root && fs.existsSync(target) && orig.statSync.call(fs, target).isDirectory()) {
      const entries = orig.readdirSync.call(fs, target);
      if (entries.length > 1) {
        const half = path.join(snap.out, `${id}-${snap.phase}-${op}-half`, `root${i}`);
        copyTree(to, half);
        const inCopy = path.join(half, path.basename(target));
        for (const e of entries.slice(0, Math.ceil(entries.length / 2))) orig.rmSync.call(fs, path.join(inCopy, e), { recursive: true, force: true });
      }
    }
  }
}

/**
 * Wraps the calls that change the file system. Snapshot mode copies the directory before each; loop mode waits a
 * random fraction of a millisecond before each one that changes the directory structure (a slow disk's metadata
 * operations), which widens the windows between them so that random kills land in each of them often.
 */
function installHooks() {
  for (const k of MUTATING) {
    fs[k] = function hooked(...args) {
      const structural = k !== 'writeSync' && (k !== 'openSync' || /[wax+]/.test(String(args[1] ?? 'r')));
      if (!inHook && structural) {
        inHook = true;
        try {
          if (snap) takeSnapshot(k, args[0]);
          if (pause) Atomics.wait(sleeper, 0, 0, pause());
        } finally {
          inHook = false;
        }
      } else if (!inHook && snap) {
        inHook = true;
        try {
          takeSnapshot(k, args[0]);
        } finally {
          inHook = false;
        }
      }
      return orig[k].apply(fs, args);
    };
  }
}

const [mode, dir, arg3, arg4] = process.argv.slice(2);
installHooks();

// SAVE_LOOP_DIST: another build to test (e.g. one with a bug put back, to see the tests fail). Only the modules
// needed, not the package's index (quicker to start: a test starts this script many times).
const DIST = process.env.SAVE_LOOP_DIST || path.join(__dirname, '../../dist');
const wavemoe = {
  ...require(path.join(DIST, 'train/checkpoint')),
  ...require(path.join(DIST, 'train/trainer')),
  ...require(path.join(DIST, 'train/sources')),
  ...require(path.join(DIST, 'models/config')),
  ...require(path.join(DIST, 'models/transformer')),
};

function resume(from) {
  const { model, state, dir: ckpt } = wavemoe.loadModel(from);
  const trainer = new wavemoe.Trainer(model, wavemoe.languageModelSource(TOKENS, TOKENS, 2, 8, 0), { steps: 1e9, lr: 1e-3 });
  trainer.resumeFrom(ckpt, state);
  return { model, trainer, options: state.options };
}

function save(into, model, trainer, options) {
  return wavemoe.saveCheckpoint(into, model, trainer.optimizer, { step: trainer.step, optimizerStep: trainer.optimizer.step, options }, { keep: 2 });
}

function fresh() {
  const model = new wavemoe.Transformer(wavemoe.validateConfig(CONFIG));
  model.init(1);
  const trainer = new wavemoe.Trainer(model, wavemoe.languageModelSource(TOKENS, TOKENS, 2, 8, 0), { steps: 1e9, lr: 1e-3 });
  return { model, trainer };
}

if (mode === 'loop') {
  const random = rng(Number(arg3));
  const { model, trainer, options } = resume(dir);
  pause = () => random() * 0.5;
  for (let i = 0; ; i++) {
    const r = random();
    const kind = r < 0.3 ? 'same' : r < 0.6 ? 'variant' : 'train';
    if (kind === 'train') trainer.trainStep();
    const opts = kind === 'variant' ? { ...options, variant: Math.floor(random() * 1e9) } : options;
    process.stdout.write(`save ${trainer.step} ${kind}\n`); // a pipe: written synchronously
    const t0 = performance.now();
    save(dir, model, trainer, opts);
    process.stdout.write(`saved ${(performance.now() - t0).toFixed(3)}\n`);
  }
} else if (mode === 'snapshot') {
  const freshDir = arg4;
  const { model, trainer, options } = resume(dir);
  snap = { roots: [dir], out: arg3, n: 0, phase: 'main' };
  save(dir, model, trainer, options); // the same step, the same contents
  save(dir, model, trainer, { ...options, variant: 1 }); // the same step, other contents
  save(dir, model, trainer, { ...options, variant: 2 }); // and again
  trainer.trainStep();
  save(dir, model, trainer, options); // a new step: prunes
  trainer.trainStep();
  save(dir, model, trainer, options);
  takeSnapshot('end');
  if (freshDir) {
    const f = fresh();
    snap.roots = [freshDir];
    snap.phase = 'fresh';
    f.trainer.trainStep();
    save(freshDir, f.model, f.trainer, {}); // the first save of a run: no `latest` yet
    takeSnapshot('end');
  }
  snap = null;
  process.stdout.write(`snapshots ${fs.readdirSync(arg3).length}\n`);
} else if (mode === 'save-once') {
  const { model, trainer, options } = resume(dir);
  trainer.trainStep();
  try {
    save(dir, model, trainer, options);
    process.stdout.write('saved\n');
  } catch (err) {
    process.stdout.write(`ERROR ${err.message}\n`);
    process.exitCode = 2;
  }
} else {
  process.stderr.write(`save_loop.js: unknown mode ${mode}\n`);
  process.exitCode = 64;
}
