#!/usr/bin/env node
'use strict';
/**
 * Fuzzes the parsers of outside data (issue #14) over the compiled library in dist/ (`npx tsc -p tsconfig.json`
 * first). Harnesses and engine: test/fuzz/harnesses.js, test/fuzz/engine.js.
 *
 *   node scripts/fuzz.js [--seconds N] [--seed S] [harness...]   fuzz for about N seconds in total (default 60)
 *   node scripts/fuzz.js --runs N [--seed S] [harness...]        exactly N inputs per harness (reproducible)
 *   node scripts/fuzz.js --repro FILE...                         run saved inputs (test/fuzz/crashes/<harness>-<hash>)
 *   node scripts/fuzz.js --make-corpus                           rewrite test/fuzz/corpus/ with the library's writers
 *   node scripts/fuzz.js --list                                  the harnesses
 * Other options: --timeout MS (one input, default 2000), --jobs J (harnesses run in parallel, default 1),
 * --memory MB (address-space limit of each fuzzing process, default 4096: a runaway allocation fails instead of
 * taking the machine), --crashes DIR (default test/fuzz/crashes), --corpus DIR (default test/fuzz/corpus),
 * --dist DIR (the compiled library to fuzz, default dist/).
 *
 * Each harness runs in its own child process; the parent watches it: an input that runs past the timeout, or a
 * child that dies (V8 heap exhausted, a native abort, the OOM killer), is saved as a crash too. Exit status 1 when
 * anything crashed. Everything derives from --seed (printed), so a run is reproducible: exactly with --runs, as a
 * prefix of the same input sequence with --seconds.
 */
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const E = require('../test/fuzz/engine');
const H = require('../test/fuzz/harnesses');

function parseArgs(argv) {
  const o = { seconds: 60, seed: null, runs: null, timeout: 2000, jobs: 1, memory: 4096, crashes: path.join(ROOT, 'test/fuzz/crashes'), corpus: path.join(ROOT, 'test/fuzz/corpus'), names: [], dist: path.join(ROOT, 'dist'), repro: null, makeCorpus: false, list: false, child: null, state: null, ms: null, skip: [] };
  const num = (v, flag) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${flag} needs a non-negative number, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--seconds') o.seconds = num(next(), a);
    else if (a === '--seed') o.seed = next();
    else if (a === '--runs') o.runs = Math.floor(num(next(), a));
    else if (a === '--timeout') o.timeout = num(next(), a);
    else if (a === '--jobs') o.jobs = Math.max(1, Math.floor(num(next(), a)));
    else if (a === '--memory') o.memory = num(next(), a);
    else if (a === '--crashes') o.crashes = path.resolve(next());
    else if (a === '--corpus') o.corpus = path.resolve(next());
    else if (a === '--dist') o.dist = path.resolve(next());
    else if (a === '--make-corpus') o.makeCorpus = true;
    else if (a === '--list') o.list = true;
    else if (a === '--repro') o.repro = [];
    else if (a === '--child') o.child = next();
    else if (a === '--state') o.state = next();
    else if (a === '--ms') o.ms = num(next(), a);
    else if (a === '--skip') o.skip = next().split(',').filter(Boolean);
    else if (a === '--help' || a === '-h') {
      const text = fs.readFileSync(__filename, 'utf8');
      const doc = text.slice(text.indexOf('/**') + 3, text.indexOf('*/'));
      process.stdout.write(`${doc.replace(/^ \* ?/gm, '').trim()}\n`);
      process.exit(0);
    } else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else if (o.repro) o.repro.push(a);
    else o.names.push(a);
  }
  return o;
}

function loadLib(distDir) {
  // the library's process warnings (e.g. WAVEMOE_CHECKPOINT_FALLBACK for a run without `latest`) would flood the output
  process.removeAllListeners('warning');
  const need = (rel) => {
    const file = path.join(distDir, rel);
    if (!fs.existsSync(`${file}.js`)) {
      throw new Error(`${file}.js is missing: build the library first (npx tsc -p tsconfig.json)`);
    }
    return require(file);
  };
  const st = need('io/safetensors');
  const tc = need('train/token_cache');
  const cfg = need('models/config');
  const ck = need('train/checkpoint');
  const { Transformer } = need('models/transformer');
  const { AdamW } = need('train/optimizer');
  const { binding } = need('native/index');
  return {
    readSafetensors: st.readSafetensors,
    writeSafetensors: st.writeSafetensors,
    readTokenFile: tc.readTokenFile,
    writeTokenFile: tc.writeTokenFile,
    validateConfig: cfg.validateConfig,
    readConfig: ck.readConfig,
    resolveCheckpointDir: ck.resolveCheckpointDir,
    loadModel: ck.loadModel,
    loadOptimizerState: ck.loadOptimizerState,
    saveCheckpoint: ck.saveCheckpoint,
    Transformer,
    AdamW,
    allocStats: () => binding.allocStats(),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Child: fuzz one harness, keeping the current input in a state file for the parent

function child(o) {
  const lib = loadLib(o.dist);
  // the parent removes this directory (with the state file) even when this process is killed
  const scratch = path.join(path.dirname(o.state), 'work');
  fs.mkdirSync(scratch);
  try {
    const harness = H.createHarnesses(lib, scratch).find((h) => h.name === o.child);
    const corpus = E.loadCorpus(path.join(o.corpus, harness.name));
    const fd = fs.openSync(o.state, 'r+');
    const slot = Buffer.alloc(8 + (harness.maxLen ?? 1 << 20));
    let counter = 0;
    const onInput = (bytes) => {
      slot.writeUInt32LE(++counter >>> 0, 0);
      slot.writeUInt32LE(bytes.length, 4);
      bytes.copy(slot, 8);
      fs.writeSync(fd, slot, 0, 8 + bytes.length, 0);
    };
    const result = E.fuzzHarness(harness, {
      seed: o.seed,
      corpus,
      deadline: o.runs === null ? Date.now() + o.ms : undefined,
      runs: o.runs ?? undefined,
      timeoutMs: o.timeout,
      crashDir: o.crashes,
      onInput,
      skip: o.skip,
      log: (line) => process.stdout.write(`  ${line}\n`),
    });
    if (harness.dispose) harness.dispose();
    fs.closeSync(fd);
    process.send({ type: 'result', result }, () => process.exit(0));
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Parent

function runChild(o, name, seed, ms, runs, skip) {
  return new Promise((resolve) => {
    const stateFile = path.join(E.scratchDir('wavemoe-fuzz-state-'), 'current');
    fs.writeFileSync(stateFile, Buffer.alloc(8));
    const args = ['--no-warnings', __filename, '--child', name, '--seed', seed, '--state', stateFile, '--timeout', String(o.timeout), '--crashes', o.crashes, '--corpus', o.corpus, '--dist', o.dist];
    if (skip.length) args.push('--skip', skip.join(','));
    if (runs !== null) args.push('--runs', String(runs));
    else args.push('--ms', String(Math.max(1, Math.round(ms))));
    const stdio = ['ignore', 'inherit', 'inherit', 'ipc'];
    // ulimit -v: a runaway allocation fails (and is reported) instead of pushing the machine into the OOM killer
    const proc = fs.existsSync('/bin/sh') && o.memory > 0
      ? spawn('/bin/sh', ['-c', `ulimit -v ${Math.floor(o.memory * 1024)} 2>/dev/null; exec "$0" "$@"`, process.execPath, ...args], { stdio })
      : spawn(process.execPath, args, { stdio });
    let result = null;
    let lastCounter = -1;
    let lastChange = Date.now();
    let hung = false;
    proc.on('message', (m) => {
      if (m && m.type === 'result') result = m.result;
    });
    const readCurrent = () => {
      try {
        const b = fs.readFileSync(stateFile);
        const len = b.readUInt32LE(4);
        return { counter: b.readUInt32LE(0), input: b.subarray(8, 8 + len) };
      } catch {
        return { counter: 0, input: Buffer.alloc(0) };
      }
    };
    const timer = setInterval(() => {
      const { counter } = readCurrent();
      if (counter !== lastCounter) {
        lastCounter = counter;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > o.timeout + 1000 && !hung) {
        hung = true;
        proc.kill('SIGKILL');
      }
    }, 100);
    proc.on('exit', (code, signal) => {
      clearInterval(timer);
      const current = readCurrent();
      fs.rmSync(path.dirname(stateFile), { recursive: true, force: true });
      if (result) return resolve({ result, died: null });
      const kind = hung ? 'timeout' : 'died';
      const message = hung ? `no progress for ${o.timeout + 1000} ms on one input (killed)` : `the fuzzing process died (exit code ${code}, signal ${signal})`;
      resolve({ result: null, died: { kind, message, input: current.input, execs: current.counter } });
    });
  });
}

async function fuzzOne(o, name, seed, totalMs) {
  const start = Date.now();
  const agg = { harness: name, execs: 0, generated: 0, corpusSize: 0, crashes: [], outcomes: new Map(), restarts: 0 };
  let attempt = 0;
  const skip = []; // inputs that hung or killed a child: the restarted child does not run them again
  for (;;) {
    const childSeed = attempt === 0 ? seed : `${seed}/restart${attempt}`;
    const left = totalMs - (Date.now() - start);
    const runsLeft = o.runs === null ? null : o.runs - agg.execs;
    const { result, died } = await runChild(o, name, childSeed, left, runsLeft, skip);
    if (result) {
      agg.execs += result.execs;
      agg.generated += result.generated;
      agg.corpusSize = result.corpusSize;
      agg.crashes.push(...result.crashes);
      for (const [k, n] of result.outcomes) agg.outcomes.set(k, (agg.outcomes.get(k) ?? 0) + n);
      break;
    }
    agg.execs += died.execs;
    const file = E.crashFileName({ name }, died.input);
    skip.push(file);
    fs.mkdirSync(o.crashes, { recursive: true });
    fs.writeFileSync(path.join(o.crashes, file), died.input);
    agg.crashes.push({ harness: name, file, kind: died.kind, message: died.message, bytes: died.input.length, source: 'watchdog' });
    process.stdout.write(`  CRASH ${name} [${died.kind}] ${died.message} -> ${path.join(o.crashes, file)} (${died.input.length} bytes; restarting)\n`);
    attempt++;
    agg.restarts = attempt;
    if (attempt > 20 || (o.runs === null ? Date.now() - start > totalMs - 500 : agg.execs >= o.runs)) break;
  }
  agg.seconds = (Date.now() - start) / 1000;
  return agg;
}

function repro(o) {
  const lib = loadLib(o.dist);
  const scratch = E.scratchDir('wavemoe-fuzz-repro-');
  let bad = 0;
  try {
    const harnesses = H.createHarnesses(lib, scratch);
    for (const file of o.repro) {
      const base = path.basename(file);
      const h = harnesses.filter((x) => base.startsWith(`${x.name}-`)).sort((a, b) => b.name.length - a.name.length)[0];
      if (!h) throw new Error(`${file}: the name does not start with a harness name (${harnesses.map((x) => x.name).join(', ')})`);
      const r = E.execute(h, fs.readFileSync(file), { timeoutMs: o.timeout });
      if (r.crash) bad++;
      console.log(`${base}: ${r.crash ? `CRASH [${r.crash.kind}] ${r.crash.message}` : r.outcome === 'ok' ? 'ok (accepted)' : `clear error: ${E.clip(r.message, 400)}`} (${r.ms.toFixed(1)} ms)`);
    }
    for (const h of harnesses) if (h.dispose) h.dispose();
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  return bad ? 1 : 0;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.child) return child(o);
  const names = ['safetensors', 'token_cache', 'config', 'read_config', 'checkpoint', 'optimizer'];
  if (o.list) {
    console.log(names.join('\n'));
    return 0;
  }
  if (o.makeCorpus) {
    const counts = H.makeCorpus(loadLib(o.dist), o.corpus, ROOT);
    for (const [h, n] of Object.entries(counts)) console.log(`${h}: ${n} files in ${path.join(o.corpus, h)}`);
    return 0;
  }
  if (o.repro) return repro(o);
  loadLib(o.dist); // fail early with the build hint
  const chosen = o.names.length ? o.names : names;
  for (const n of chosen) if (!names.includes(n)) throw new Error(`unknown harness '${n}' (harnesses: ${names.join(', ')})`);
  const seed = o.seed ?? String(crypto.randomInt(2 ** 31));
  const jobs = Math.min(o.jobs, chosen.length);
  const perHarnessMs = (o.seconds * 1000 * jobs) / chosen.length;
  console.log(`fuzz: seed ${seed}, ${o.runs !== null ? `${o.runs} inputs` : `${(perHarnessMs / 1000).toFixed(1)} s`} per harness, ${jobs} at a time, timeout ${o.timeout} ms, node ${process.version}, ${os.cpus().length} cpus`);
  console.log(`      (reproduce: node scripts/fuzz.js --seed ${seed}${o.runs !== null ? ` --runs ${o.runs}` : ` --seconds ${o.seconds}`}${o.names.length ? ` ${o.names.join(' ')}` : ''})`);
  const results = [];
  const queue = chosen.slice();
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      while (queue.length) {
        const name = queue.shift();
        const r = await fuzzOne(o, name, seed, perHarnessMs);
        results.push(r);
        console.log(`${name.padEnd(12)} ${String(r.execs).padStart(8)} execs in ${r.seconds.toFixed(1)} s (${(r.execs / r.seconds).toFixed(0)}/s, ${r.generated} from fast-check), corpus ${r.corpusSize}, ${r.crashes.length} crash${r.crashes.length === 1 ? '' : 'es'}`);
      }
    }),
  );
  results.sort((a, b) => chosen.indexOf(a.harness) - chosen.indexOf(b.harness));
  console.log('\nharness        execs  execs/s  outcomes  crashes');
  for (const r of results) {
    console.log(`${r.harness.padEnd(12)} ${String(r.execs).padStart(8)} ${String(Math.round(r.execs / r.seconds)).padStart(8)} ${String(r.outcomes.size).padStart(9)} ${String(r.crashes.length).padStart(8)}`);
  }
  const crashes = results.flatMap((r) => r.crashes);
  if (crashes.length) {
    console.log(`\n${crashes.length} crash${crashes.length === 1 ? '' : 'es'} (saved in ${path.relative(process.cwd(), o.crashes) || '.'}; rerun one with node scripts/fuzz.js --repro FILE):`);
    for (const c of crashes) console.log(`  ${c.file} [${c.kind}] ${E.clip(c.message, 240)}`);
    return 1;
  }
  console.log('\nno crashes');
  return 0;
}

main().then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (err) => {
    console.error(`fuzz: ${err && err.message ? err.message : err}`);
    process.exitCode = 2;
  },
);
