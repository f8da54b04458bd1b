/**
 * The fuzz harnesses of issue #14 (test/fuzz/harnesses.js), cheaply: every seed corpus file and every saved crash
 * input through the oracle, then each harness fuzzed for about two seconds with a fixed seed. The long runs are
 * `node scripts/fuzz.js --seconds 60` (over dist/).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../../lib/io/safetensors';
import { validateConfig } from '../../lib/models/config';
import { Transformer } from '../../lib/models/transformer';
import { binding } from '../../lib/native';
import { loadModel, loadOptimizerState, readConfig, resolveCheckpointDir, saveCheckpoint } from '../../lib/train/checkpoint';
import { AdamW } from '../../lib/train/optimizer';
import { readTokenFile, writeTokenFile } from '../../lib/train/token_cache';
import * as E from './engine';
import { createHarnesses } from './harnesses';

const CORPUS = path.join(__dirname, 'corpus');
const CRASHES = path.join(__dirname, 'crashes');
const SECONDS = Number(process.env.FUZZ_TEST_SECONDS ?? 2);

/**
 * Every saved crash input (test/fuzz/crashes/<harness>-<hash>, found by scripts/fuzz.js before the fix) and the
 * clear error it gives now. A new crash file must be added here with its expected message.
 */
const EXPECTED: Record<string, RegExp> = {
  // safetensors: JSON.stringify of a deeply nested dtype in the message overflowed the stack (RangeError)
  'safetensors-5661c60208fbbc79': /'a' has unsupported dtype \[\.\.\.\] \(supported: F32, F64, I32\)/,
  // safetensors: a deeply nested dtype printed whole (a 20 kB message)
  'safetensors-c043c06a9e45aeba': /has unsupported dtype \{"a":\{"a".*\.\.\. \(\d+ characters\)/,
  // safetensors: shape [2^53-1, 2^53-1, 0] was accepted as 0 elements
  'safetensors-1ba350f504d93e35': /'a' shape \[9007199254740991, 9007199254740991, 0\] has more than 2\^53 elements/,
  // optimizer.safetensors: the same two through loadOptimizerState
  'optimizer-45f91cb39494a64c': /optimizer\.safetensors: '.*\.exp_avg' has invalid data_offsets \[\.\.\.\]/,
  'optimizer-9801057328c483db': /optimizer\.safetensors: '.*\.exp_avg' has an invalid shape \[\[\[.*\.\.\. \(\d+ characters\)/,
  // config: JSON.stringify of a deeply nested value in the message overflowed the stack
  'config-4884b956ff3d2054': /\/fuzz\/config\.json: 'n_heads' must be an integer in \[1, 1024\], got \[\.\.\.\]/,
  // config: a 12 kB unknown key printed whole
  'config-0f3d564266362537': /\/fuzz\/config\.json: unknown key 'a.*\.\.\. \(\d+ characters\)'/,
  // config: wavelet.raw_dim 2^64 validated (32-bit shift in waveletChannels)
  'config-88e904de243a402f': /\/fuzz\/config\.json: 'wavelet\.raw_dim' must be an integer in \[1, 1048576\]/,
  // config: sliding_window 1e308 validated (the attention kernel refuses it later)
  'config-4f425ee7d3565fbc': /\/fuzz\/config\.json: 'sliding_window' must be a positive integer or null, got 1e\+308/,
  // config: raw_dim 2^32 + 16 validated as 16 channels (the 32-bit shift wrapped)
  'config-1bd99239957a7093': /\/fuzz\/config\.json: 'wavelet\.raw_dim' must be an integer in \[1, 1048576\]/,
  // config: wavelet.__proto__ (an own key after JSON.parse) passed the `in` check and stayed in the config
  'config-77712e8b5a5a0977': /\/fuzz\/config\.json: unknown key 'wavelet\.__proto__'/,
  // readConfig: the same two causes through a file
  'read_config-5754b47d34310847': /config\.json: 'n_heads' must be an integer in \[1, 1024\], got \[\.\.\.\]/,
  'read_config-852709556a97553b': /config\.json: unknown key 'd_mode.*\.\.\. \(\d+ characters\)'/,
  // readConfig: wavelet.toString passed the `in` check and stayed in the config
  'read_config-1fa7fcdf3455289b': /config\.json: unknown key 'wavelet\.toString'/,
  // checkpoint: trainer_state.json `null` threw a TypeError
  'checkpoint-c269763f9519dc1a': /trainer_state\.json: must be a JSON object/,
  // checkpoint: trainer_state.json with options [] loaded (callers read state.options.task)
  'checkpoint-014a7e3609e0412d': /trainer_state\.json: 'options' must be an object, got \[\]/,
  // checkpoint: optimizerStep -1 loaded
  'checkpoint-717f2c9f63a40cf7': /trainer_state\.json: 'step' and 'optimizerStep' must be non-negative integers/,
  // checkpoint: config.json claiming a 2^20-word vocabulary with a 4 kB model.safetensors: the model (140 MB with
  // gradients) was built before the weights were read; now the weights are read and checked first (the oracle's
  // allocation budget is part of this test)
  'checkpoint-a1a87f69f4d62511': /model\.safetensors: header is not valid JSON/,
  // checkpoint: `latest` a directory gave EISDIR without the path (fixed by the resolveCheckpointDir rewrite)
  'checkpoint-e8f32f63e119d3cc': /cannot read .*latest: (Error: )?EISDIR/,
  // checkpoint: deeply nested config value (stack overflow), a long config value, a long `latest`
  'checkpoint-307ffea587f815ad': /config\.json: 'positional' must be one of 'rope', 'sinusoidal', 'none', got \[\.\.\.\]/,
  'checkpoint-ee69401cec3d58dd': /config\.json: 'vocab_size' must be an integer in \[2, 16777216\], got \[.*\.\.\. \(\d+ characters\)/,
  'checkpoint-f130eef373385f5a': /latest does not name a checkpoint: ".*\.\.\. \(\d+ characters\)/,
  // checkpoint: `latest` naming a missing checkpoint with a 600-digit step printed whole (found by CI's fuzzing run)
  'checkpoint-5ee500de06787ac2': /latest names checkpoint-0*4+\.\.\. \(\d+ characters\), which is missing or incomplete/,
};

const lib = {
  readSafetensors,
  writeSafetensors,
  readTokenFile,
  writeTokenFile,
  validateConfig,
  readConfig,
  resolveCheckpointDir,
  loadModel,
  loadOptimizerState,
  saveCheckpoint,
  Transformer,
  AdamW,
  allocStats: () => binding.allocStats(),
};

let scratch: string;
let harnesses: E.Harness[];
beforeAll(() => {
  scratch = E.scratchDir('wavemoe-fuzz-test-');
  harnesses = createHarnesses(lib, scratch);
  // loading a run without `latest` warns (WAVEMOE_CHECKPOINT_FALLBACK); thousands of inputs would flood the output
  jest.spyOn(process, 'emitWarning').mockImplementation(() => {});
});
afterAll(() => {
  jest.restoreAllMocks();
  for (const h of harnesses) h.dispose?.();
  fs.rmSync(scratch, { recursive: true, force: true });
});

const NAMES = ['safetensors', 'token_cache', 'config', 'read_config', 'checkpoint', 'optimizer'];
const harness = (name: string): E.Harness => harnesses.find((h) => h.name === name)!;
const describeCrash = (r: E.Execution): string => (r.crash ? `[${r.crash.kind}] ${r.crash.message}` : r.outcome);

test('every saved crash input has an expected message here', () => {
  const files = fs.existsSync(CRASHES) ? fs.readdirSync(CRASHES).sort() : [];
  expect(files.filter((f) => !(f in EXPECTED))).toEqual([]);
  expect(Object.keys(EXPECTED).filter((f) => !files.includes(f))).toEqual([]);
});

describe.each(NAMES)('%s', (name) => {
  test('the seed corpus: no crash, and the files the library wrote load', () => {
    const h = harness(name);
    const files = fs.readdirSync(path.join(CORPUS, name)).sort();
    expect(files.length).toBeGreaterThan(0);
    let ok = 0;
    for (const f of files) {
      const r = E.execute(h, fs.readFileSync(path.join(CORPUS, name, f)));
      expect(`${f}: ${describeCrash(r)}`).toBe(`${f}: ${r.crash ? 'no crash' : r.outcome}`);
      if (r.outcome === 'ok') ok++;
    }
    expect(ok).toBeGreaterThan(0);
  });

  test('saved crash inputs now give the clear error', () => {
    const h = harness(name);
    const files = Object.keys(EXPECTED).filter((f) => f.startsWith(`${name}-`));
    for (const f of files) {
      const r = E.execute(h, fs.readFileSync(path.join(CRASHES, f)));
      expect(`${f}: ${describeCrash(r)}`).toBe(`${f}: ${r.crash ? 'no crash' : r.outcome}`);
      expect(r.outcome).toMatch(/^error: /);
      expect(r.message).toMatch(EXPECTED[f]!);
      expect(r.message!.length).toBeLessThan(E.MAX_MESSAGE);
    }
  });

  test(`fuzzing for ${SECONDS} s (seed 'jest') finds no crash`, () => {
    const h = harness(name);
    const result = E.fuzzHarness(h, {
      seed: 'jest',
      corpus: E.loadCorpus(path.join(CORPUS, name)),
      deadline: Date.now() + SECONDS * 1000,
      timeoutMs: 2000,
    });
    expect(result.execs).toBeGreaterThan(10);
    expect(result.crashes.map((c) => `[${c.kind}] ${c.message}`)).toEqual([]);
  });
});
