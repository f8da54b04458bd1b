/**
 * Checkpoints: a directory per save, and a `latest` pointer that names the newest complete one.
 *   out/latest                      "checkpoint-000120"
 *   out/checkpoint-000120/config.json          model config (snake_case)
 *                        /model.safetensors    weights, PyTorch names, row-major, weight[out, in]
 *                        /optimizer.safetensors AdamW moments: {name}.exp_avg, {name}.exp_avg_sq
 *                        /trainer_state.json   step, optimizer step, data position, options
 * A save is written into a temporary directory, every file flushed, the directory renamed into place, and only
 * then is `latest` replaced (atomically). The previous checkpoint stays valid until the new one is complete; a
 * crash or a full disk at any moment leaves a loadable latest checkpoint. A checkpoint directory is never overwritten:
 * a step saved again with other contents goes to checkpoint-000120.1 (.2, ...); see saveCheckpoint.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeFsError, fsyncDirectory, isStaleTempFile, processAlive, writeFileAtomic, WriteError } from '../io/atomic_write';
import { readSafetensors, writeSafetensors, type SafetensorsArray } from '../io/safetensors';
import { clip, preview } from '../io/preview';
import { minParameterCount, validateConfig, type ModelConfig } from '../models/config';
import { Transformer, type ModelDType } from '../models/transformer';
import type { Tensor } from '../tensor';
import type { Device } from '../native';
import { usableDevice } from '../device';
import type { AdamW } from './optimizer';

export interface TrainerState {
  step: number;
  optimizerStep: number;
  /** Free-form options of the run (learning rate, batch, seed...), for resuming with the same settings. */
  options: Record<string, unknown>;
}

function asArray(t: Tensor): SafetensorsArray {
  return t.toArray();
}

/**
 * A checkpoint directory's name: the step, zero-padded, and when that step is saved again with different contents
 * (a resumed run saving before it trains, a new run in an old run's directory) a generation: checkpoint-000120.1.
 * Existing checkpoint directories are never overwritten, so `latest` can name a complete one at every instant.
 */
const CHECKPOINT_DIR = /^checkpoint-(\d+)(?:\.(\d+))?$/;
/** What a save in progress (`partial`) or a removal in progress (`deleting`) is called; loading never looks at them. */
const LEFTOVER_DIR = /^\.checkpoint-\d+(?:\.\d+)?\.(?:partial|deleting)-(\d+)$/;

function checkpointName(step: number, generation = 0): string {
  const base = `checkpoint-${String(step).padStart(6, '0')}`;
  return generation > 0 ? `${base}.${generation}` : base;
}

interface CheckpointEntry {
  name: string;
  step: number;
  generation: number;
}

/** The checkpoint directories in outDir, oldest first: by step, then generation (numbers, not names: 1000000 > 999999). */
function listCheckpoints(outDir: string): CheckpointEntry[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(outDir, { withFileTypes: true });
  } catch {
    return [];
  }
  const found: CheckpointEntry[] = [];
  for (const e of entries) {
    const m = CHECKPOINT_DIR.exec(e.name);
    if (m && e.isDirectory()) found.push({ name: e.name, step: Number(m[1]), generation: Number(m[2] ?? 0) });
  }
  return found.sort((a, b) => a.step - b.step || a.generation - b.generation);
}

/** The checkpoint `latest` names, or null when it is missing, unreadable or names none. */
function readLatest(outDir: string): string | null {
  try {
    const name = fs.readFileSync(path.join(outDir, 'latest'), 'utf8').trim();
    return CHECKPOINT_DIR.test(name) ? name : null;
  } catch {
    return null;
  }
}

function hasFiles(dir: string, files: readonly string[]): boolean {
  return files.every((f) => {
    try {
      return fs.statSync(path.join(dir, f)).isFile();
    } catch {
      return false;
    }
  });
}

/** Removes what a killed process left: partial saves, half-done removals, temporary files of `latest`. */
function removeLeftovers(outDir: string): void {
  for (const name of fs.readdirSync(outDir)) {
    const m = LEFTOVER_DIR.exec(name);
    if (m ? processAlive(Number(m[1])) : !isStaleTempFile(name)) continue; // not ours, or a live process's
    try {
      fs.rmSync(path.join(outDir, name), { recursive: true, force: true });
    } catch {
      // harmless: loading ignores leftovers, and the next save tries again
    }
  }
}

/** Removes a checkpoint directory: renamed aside first, so a crash midway never leaves a half-deleted checkpoint. */
function removeCheckpoint(outDir: string, name: string): void {
  const aside = path.join(outDir, `.${name}.deleting-${process.pid}`);
  try {
    fs.renameSync(path.join(outDir, name), aside);
  } catch {
    return;
  }
  try {
    fs.rmSync(aside, { recursive: true, force: true });
  } catch {
    // a hidden leftover: the next save removes it
  }
}

function sameFile(a: string, b: string): boolean {
  const sa = fs.statSync(a);
  const sb = fs.statSync(b);
  if (!sa.isFile() || !sb.isFile() || sa.size !== sb.size) return false;
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.alloc(1 << 20);
    const bb = Buffer.alloc(1 << 20);
    for (let pos = 0; pos < sa.size; ) {
      const n = fs.readSync(fa, ba, 0, ba.length, pos);
      if (n === 0 || fs.readSync(fb, bb, 0, n, pos) !== n || !ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
      pos += n;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

/** Whether two directories hold the same files with the same bytes. */
function sameContents(a: string, b: string): boolean {
  try {
    const files = fs.readdirSync(a).sort();
    if (files.join('/') !== fs.readdirSync(b).sort().join('/')) return false;
    return files.every((f) => sameFile(path.join(a, f), path.join(b, f)));
  } catch {
    return false;
  }
}

export interface SaveOptions {
  /** How many complete checkpoints to keep (default 2). */
  keep?: number;
}

/**
 * Saves a checkpoint and points `latest` at it. At every instant — a kill, a crash or a full disk at any point —
 * `latest` names a complete checkpoint (once one was saved):
 *   1. leftovers of killed processes are removed (hidden names, never loaded);
 *   2. the files are written into `.checkpoint-N.partial-PID`, each flushed to disk;
 *   3. the directory is renamed to a name no existing checkpoint has (checkpoint-N, or checkpoint-N.G when step N is
 *      on disk already with other contents; with the same contents the existing one is kept and nothing is written);
 *   4. `latest` is replaced atomically;
 *   5. old checkpoints beyond `keep` are renamed aside, then removed; never the new one or the one `latest` names.
 * An error (a full disk: ENOSPC, a file size limit: EFBIG) names the file and the cause, removes what this save
 * wrote, and leaves the previous checkpoint and `latest` as they were.
 */
export function saveCheckpoint(
  outDir: string,
  model: Transformer,
  optimizer: AdamW | null,
  state: TrainerState,
  opts: SaveOptions = {},
): string {
  const previous = readLatest(outDir);
  const sameStep = listCheckpoints(outDir).filter((c) => c.step === state.step);
  const existing = sameStep[sameStep.length - 1];
  let name = checkpointName(state.step, existing ? existing.generation + 1 : 0);
  const tmpDir = path.join(outDir, `.${name}.partial-${process.pid}`);
  const fail = (doing: string, err: unknown): never => {
    const reason = err instanceof WriteError ? err.reason : describeFsError(err);
    const kept = previous ? `the previous checkpoint ${path.join(outDir, previous)} is intact` : 'no earlier checkpoint exists';
    const error = new Error(`could not save checkpoint ${path.join(outDir, name)}: ${doing}: ${reason}; ${kept}`, { cause: err });
    throw Object.assign(error, { code: (err as NodeJS.ErrnoException | null)?.code });
  };
  let doing = `creating ${outDir}`;
  try {
    fs.mkdirSync(outDir, { recursive: true });
    try {
      removeLeftovers(outDir);
    } catch {
      // best effort: leftovers are never loaded
    }
    fs.rmSync(tmpDir, { recursive: true, force: true });
    doing = `creating ${tmpDir}`;
    fs.mkdirSync(tmpDir);
    doing = 'writing config.json';
    writeFileAtomic(path.join(tmpDir, 'config.json'), `${JSON.stringify(model.config, null, 2)}\n`);
    doing = 'writing model.safetensors';
    writeSafetensors(
      path.join(tmpDir, 'model.safetensors'),
      model.parameters().map((p) => [p.name, { shape: p.value.shape, data: asArray(p.value) }]),
      { format: 'pt', producer: 'wavemoe' },
    );
    if (optimizer) {
      doing = 'writing optimizer.safetensors';
      const entries: Array<[string, { shape: number[]; data: SafetensorsArray }]> = [];
      for (const [n, m] of optimizer.m) entries.push([`${n}.exp_avg`, { shape: m.shape, data: asArray(m) }]);
      for (const [n, v] of optimizer.v) entries.push([`${n}.exp_avg_sq`, { shape: v.shape, data: asArray(v) }]);
      writeSafetensors(path.join(tmpDir, 'optimizer.safetensors'), entries);
    }
    doing = 'writing trainer_state.json';
    writeFileAtomic(path.join(tmpDir, 'trainer_state.json'), `${JSON.stringify(state, null, 2)}\n`);
    if (existing && sameContents(tmpDir, path.join(outDir, existing.name))) {
      name = existing.name; // saved already, byte for byte: keep it (e.g. a final save right after a periodic one)
      fs.rmSync(tmpDir, { recursive: true, force: true });
    } else {
      doing = `renaming ${tmpDir} to ${name}`;
      fs.renameSync(tmpDir, path.join(outDir, name));
      fsyncDirectory(outDir);
    }
  } catch (err) {
    try {
      fs.rmSync(tmpDir, { recursive: true, force: true });
    } catch {
      // the next save removes it
    }
    fail(doing, err);
  }
  if (previous !== name) {
    try {
      writeFileAtomic(path.join(outDir, 'latest'), `${name}\n`);
    } catch (err) {
      if (name !== existing?.name) removeCheckpoint(outDir, name); // `latest` still names the previous one
      fail(`writing ${path.join(outDir, 'latest')}`, err);
    }
  }
  prune(outDir, name, opts.keep ?? 2);
  return path.join(outDir, name);
}

/** Removes the oldest checkpoints beyond `keep`; never `newest` nor the one `latest` names. Best effort. */
function prune(outDir: string, newest: string, keep: number): void {
  const latest = readLatest(outDir);
  const all = listCheckpoints(outDir);
  const excess = all.length - Math.max(1, keep);
  if (!(excess > 0)) return;
  const stale = all.filter((c) => c.name !== newest && c.name !== latest).slice(0, excess);
  for (const c of stale) removeCheckpoint(outDir, c.name);
}

/**
 * The checkpoint directory a path means: a run directory (through `latest`) or a checkpoint directory itself.
 * When `latest` is missing (a first save killed before writing it) or names a directory that is missing or lacks
 * its files (removed by hand, or left so by an older wavemoe), the newest complete checkpoint-* directory is used,
 * with a warning (process warning WAVEMOE_CHECKPOINT_FALLBACK). A `latest` that does not hold a checkpoint name is
 * an error: saves replace it atomically, so it was edited by hand.
 */
export function resolveCheckpointDir(dir: string): string {
  const latest = path.join(dir, 'latest');
  let named: string | null = null;
  if (fs.existsSync(latest)) {
    try {
      named = fs.readFileSync(latest, 'utf8').trim();
    } catch (err) {
      throw new Error(`cannot read ${latest}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!CHECKPOINT_DIR.test(named)) throw new Error(`${latest} does not name a checkpoint: ${preview(named)}`); // clipped (fuzzing, #14)
    if (hasFiles(path.join(dir, named), ['config.json', 'model.safetensors'])) return path.join(dir, named);
  } else if (fs.existsSync(path.join(dir, 'model.safetensors'))) {
    return dir;
  }
  const fallback = listCheckpoints(dir)
    .reverse()
    .find((c) => hasFiles(path.join(dir, c.name), ['config.json', 'model.safetensors', 'trainer_state.json']));
  // A name that passed CHECKPOINT_DIR is digits, but it can be megabytes of them (fuzzing).
  const problem = named === null ? `${latest} is missing` : `${latest} names ${clip(named)}, which is missing or incomplete`;
  if (fallback) {
    process.emitWarning(`${problem}; using ${fallback.name}, the newest complete checkpoint in ${dir}`, { code: 'WAVEMOE_CHECKPOINT_FALLBACK' });
    return path.join(dir, fallback.name);
  }
  if (named !== null) throw new Error(`${problem}, and ${dir} holds no other complete checkpoint`);
  throw new Error(`no checkpoint in ${dir} (expected ${latest} or ${path.join(dir, 'model.safetensors')})`);
}

export function readConfig(dir: string): ModelConfig {
  const file = path.join(dir, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return validateConfig(raw, file);
}

/**
 * Copies named arrays into tensors, checking that names and shapes match exactly. `tensors`: the file, read already.
 * Names and shapes from the file are clipped in messages (fuzzing, issue #14: they can be megabytes long).
 */
function loadInto(file: string, targets: Map<string, Tensor>, tensors = readSafetensors(file).tensors): void {
  for (const [name, t] of targets) {
    const src = tensors.get(name);
    if (!src) throw new Error(`${file}: missing tensor '${name}'`);
    if (src.shape.join(',') !== t.shape.join(',')) {
      const dims = src.shape.length > 16 ? `${src.shape.slice(0, 16).join(', ')}, ... (${src.shape.length} dimensions)` : src.shape.join(', ');
      throw new Error(`${file}: '${name}' has shape [${dims}], the model expects [${t.shape.join(', ')}]`);
    }
    if (src.dtype === 'I32') throw new Error(`${file}: '${name}' is I32, expected a float tensor`);
    t.copyFrom(t.dtype === 'float32' ? Float32Array.from(src.data) : Float64Array.from(src.data));
  }
  for (const name of tensors.keys()) {
    if (!targets.has(name)) throw new Error(`${file}: unexpected tensor ${preview(name)} (not a parameter of this model)`);
  }
}

export interface LoadedCheckpoint {
  dir: string;
  model: Transformer;
  state: TrainerState | null;
}

/** trainer_state.json, checked: an object with non-negative integer steps and an `options` object ({} if absent). */
function readTrainerState(stateFile: string): TrainerState {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${stateFile}: ${err instanceof Error ? err.message : String(err)}`);
  }
  // Fuzzing, issue #14: `null` threw a TypeError, a negative optimizerStep passed, and a non-object `options` passed
  // (callers read state.options.task).
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${stateFile}: must be a JSON object`);
  const state = raw as Partial<TrainerState>;
  const step = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
  if (!step(state.step) || !step(state.optimizerStep)) {
    throw new Error(`${stateFile}: 'step' and 'optimizerStep' must be non-negative integers`);
  }
  const options = state.options ?? {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new Error(`${stateFile}: 'options' must be an object, got ${preview(options)}`);
  }
  return { ...state, options } as TrainerState;
}

/**
 * The model of a checkpoint directory (or a run directory: its `latest`), with its trainer state when saved. The
 * weights are read on the CPU, then the model moves to `device` ('cuda', 'cuda:N'; float32 weights are copied bit for
 * bit, so a checkpoint written from a GPU loads on the CPU and back unchanged).
 */
export function loadModel(dir: string, dtype: ModelDType = 'float32', device: Device = 'cpu'): LoadedCheckpoint {
  const target = usableDevice(device); // before any reading: a GPU that cannot be used fails at once
  const ckpt = resolveCheckpointDir(dir);
  const config = readConfig(ckpt);
  // The weights are read (an allocation bounded by the file's real size) and checked against the config's size
  // before the model is built, so a config.json claiming a huge model fails clearly instead of allocating it
  // (fuzzing, issue #14).
  const configFile = path.join(ckpt, 'config.json');
  const weightsFile = path.join(ckpt, 'model.safetensors');
  const { tensors } = readSafetensors(weightsFile);
  let stored = 0;
  for (const t of tensors.values()) stored += t.data.length;
  const needed = minParameterCount(config);
  if (needed > stored) {
    throw new Error(`${configFile} describes a model of at least ${needed} parameters, but ${weightsFile} holds ${stored} values`);
  }
  let model: Transformer;
  try {
    model = new Transformer(config, dtype);
  } catch (err) {
    throw new Error(`${configFile}: cannot build the model it describes: ${err instanceof Error ? err.message : String(err)}`);
  }
  let state: TrainerState | null = null;
  try {
    loadInto(weightsFile, new Map(model.parameters().map((p) => [p.name, p.value])), tensors);
    const stateFile = path.join(ckpt, 'trainer_state.json');
    if (fs.existsSync(stateFile)) state = readTrainerState(stateFile);
    model.to(target);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { dir: ckpt, model, state };
}

export function loadOptimizerState(dir: string, optimizer: AdamW, state: TrainerState): void {
  const targets = new Map<string, Tensor>();
  for (const [n, m] of optimizer.m) targets.set(`${n}.exp_avg`, m);
  for (const [n, v] of optimizer.v) targets.set(`${n}.exp_avg_sq`, v);
  loadInto(path.join(dir, 'optimizer.safetensors'), targets);
  optimizer.step = state.optimizerStep;
}
