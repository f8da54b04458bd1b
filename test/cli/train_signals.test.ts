/**
 * Ctrl-C during a save. A save is synchronous, so a SIGINT that arrives during one is handled after it is complete:
 *  - once: the save completes, training stops after the current step (the one saved, or the next: steps run off the
 *    event loop, so the signal may be handled while the next one runs) with a final save, and the process exits 0;
 *    a final save of the step just saved finds the same bytes on disk and keeps that checkpoint;
 *  - twice: the save still completes, then the process exits 130 at once, without a final save.
 * Either way `latest` names a complete checkpoint and no temporary files are left. The signal is sent the moment the
 * save's partial directory appears (fs.watch), and counts as "during the save" only if that directory still exists
 * once the signal has been sent; runs where it does not are retried.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../../lib/train/checkpoint';

const BIN = path.resolve(__dirname, '../../bin/wavemoe.js');
const ATTEMPTS = 5;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wavemoe-signals-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Outcome {
  code: number | null;
  stderr: string;
  /** The step whose save was in progress when the signals were sent, if they all landed inside it. */
  savingStep: number | null;
  out: string;
}

/** Trains with a save every step; at the second save, sends `signals` SIGINTs (20 ms apart) while it is in progress. */
function interruptDuringSave(name: string, signals: number): Promise<Outcome> {
  const out = path.join(dir, name);
  fs.mkdirSync(out); // so it can be watched before the run starts
  // seq2seq-small (1.3M parameters) takes tens of milliseconds to save: room to land inside a save.
  const child = spawn(
    process.execPath,
    [BIN, 'train', '--preset', 'seq2seq-small', '--task', 'numbers', '--steps', '100000', '--batch', '4', '--eval-every', '0', '--save-every', '1', '--out', out],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let partials = 0;
  let savingStep: number | null = null;
  let sent = false;
  const watcher = fs.watch(out, (_event, file) => {
    const m = file ? /^\.checkpoint-(\d+)\.partial-\d+$/.exec(file.toString()) : null;
    if (!m || sent || !fs.existsSync(path.join(out, m[0])) || ++partials < 2) return;
    sent = true;
    const partial = path.join(out, m[0]);
    child.kill('SIGINT');
    const rest = (left: number): void => {
      if (left === 0) {
        if (fs.existsSync(partial)) savingStep = Number(m[1]); // every signal was sent while the save was running
        return;
      }
      setTimeout(() => {
        child.kill('SIGINT');
        rest(left - 1);
      }, 20);
    };
    rest(signals - 1);
  });
  return new Promise((resolve) => {
    child.on('close', (code) => {
      watcher.close();
      resolve({ code, stderr, savingStep, out });
    });
  });
}

async function landedInsideASave(name: string, signals: number): Promise<Outcome & { savingStep: number }> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const r = await interruptDuringSave(`${name}-${attempt}`, signals);
    expectValidRun(r.out);
    if (r.savingStep !== null) {
      console.log(`${signals} SIGINT(s) landed inside the save of step ${r.savingStep} (attempt ${attempt + 1})`);
      return r as Outcome & { savingStep: number };
    }
  }
  throw new Error(`no SIGINT landed inside a save in ${ATTEMPTS} attempts`);
}

/** `latest` names a complete checkpoint that loads; no partial saves or temporary files are left. */
function expectValidRun(out: string): string {
  expect(fs.readdirSync(out).filter((n) => n.startsWith('.'))).toEqual([]);
  const name = fs.readFileSync(path.join(out, 'latest'), 'utf8').trim();
  const loaded = loadModel(out);
  expect(loaded.dir).toBe(path.join(out, name));
  expect(loaded.state!.step).toBe(Number(/^checkpoint-(\d+)/.exec(name)![1]));
  loaded.model.dispose();
  return name;
}

const checkpointName = (step: number) => `checkpoint-${String(step).padStart(6, '0')}`;

/**
 * The save that was running when the signal came completed: its checkpoint is on disk, whole. Training stops at the
 * end of that step or, when steps run off the event loop and the signal is handled during the next one, of the next.
 */
function expectInterruptedSaveCompleted(r: Outcome & { savingStep: number }): number {
  const interrupted = path.join(r.out, checkpointName(r.savingStep));
  expect(fs.readdirSync(interrupted).sort()).toEqual(['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json']);
  const last = expectValidRun(r.out);
  expect([checkpointName(r.savingStep), checkpointName(r.savingStep + 1)]).toContain(last);
  return Number(/^checkpoint-(\d+)$/.exec(last)![1]);
}

test('Ctrl-C during a save: the save completes, training stops with a final save, exit 0', async () => {
  const r = await landedInsideASave('once', 1);
  expect(r.stderr).toMatch(/interrupted, saving a checkpoint after this step \(Ctrl-C again to quit without saving\)/);
  expect(r.code).toBe(0);
  const stopped = expectInterruptedSaveCompleted(r);
  // Stopped at the interrupted save's step, the final save found the same bytes on disk and kept that checkpoint
  // (no checkpoint-N.1); one step later, it is a new one.
  expect(r.stderr).toMatch(new RegExp(`stopped at step ${stopped}; checkpoint .*${checkpointName(stopped)}\\n`));
}, 60_000);

test('Ctrl-C twice during a save: the save completes, then exit 130', async () => {
  const r = await landedInsideASave('twice', 2);
  expect(r.code).toBe(130);
  expect(r.stderr).toMatch(/interrupted again, exiting (without a final save|now); .*latest names the last complete checkpoint/);
  expect(r.stderr).not.toMatch(/stopped at step/);
  expectInterruptedSaveCompleted(r);
}, 60_000);
