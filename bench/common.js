'use strict';
// Helpers shared by the benches: integer flags, medians, timing.

/** Parses `--key <integer>` pairs over `defaults`; values must be >= min. Unknown keys are an error. */
function parseIntArgs(argv, defaults, min = 1) {
  const opts = parseArgs(argv, defaults);
  for (const [key, v] of Object.entries(opts)) {
    if (v < min) throw new Error(`--${key} needs an integer >= ${min}`);
  }
  return opts;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median milliseconds of fn over `repeats` runs after one warm-up. */
function timeMs(fn, repeats) {
  fn();
  const times = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(times);
}

module.exports = { parseIntArgs, median, timeMs };

/**
 * Runs one of the PyTorch baseline scripts under bench/pytorch with Debian's /usr/bin/python3 and returns the JSON
 * object on its last line, or { skipped: reason } when python3-torch is not installed or the script fails.
 * Its human-readable lines are passed through to stderr.
 */
function runPytorch(script, args) {
  const { spawnSync } = require('node:child_process');
  const fs = require('node:fs');
  const path = require('node:path');
  const python = process.env.WAVEMOE_PYTHON || '/usr/bin/python3';
  if (!fs.existsSync(python)) return { skipped: `${python} not found (install python3-torch for the PyTorch baseline)` };
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return { skipped: `${python} cannot import torch (apt-get install python3-torch)` };
  const r = spawnSync(python, [path.join(__dirname, 'pytorch', script), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 << 20,
  });
  const lines = (r.stdout || '').trim().split('\n');
  for (const line of lines.slice(0, -1)) process.stderr.write(`  [pytorch] ${line}\n`);
  if (r.status !== 0) return { skipped: `${script} exited with status ${r.status}` };
  return JSON.parse(lines[lines.length - 1]);
}

/** Least-squares slope of ys against xs. */
function slope(xs, ys) {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den > 0 ? num / den : 0;
}

/** Parses `--key value` pairs over `defaults`, keeping each default's type (number or string). */
function parseArgs(argv, defaults) {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts)) throw new Error(`unknown argument '${argv[i]}' (known: ${Object.keys(defaults).map((k) => `--${k}`).join(', ')})`);
    if (typeof defaults[key] === 'boolean') {
      opts[key] = true;
      continue;
    }
    if (i + 1 >= argv.length) throw new Error(`argument '${argv[i]}' needs a value`);
    const v = argv[++i];
    if (typeof defaults[key] === 'number') {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`--${key} needs an integer >= 0, got '${v}'`);
      opts[key] = n;
    } else {
      opts[key] = v;
    }
  }
  return opts;
}

module.exports.runPytorch = runPytorch;
module.exports.slope = slope;
module.exports.parseArgs = parseArgs;
