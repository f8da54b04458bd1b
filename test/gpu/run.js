#!/usr/bin/env node
/**
 * The GPU comparison suite without jest (for a GPU machine that has Node but no node_modules, e.g. one reached
 * through scripts/device-check.sh): every case of cases.js on the CPU and on cuda:0 in the CUDA-enabled addon.
 *   node test/gpu/run.js [name filter]
 * Prints one line per output and exits 1 on any failure; without a CUDA build or GPU, prints SKIPPED and exits 0.
 */
'use strict';
const { cases, runCase } = require('./cases');
const { findCudaAddon } = require('./find_addon');

const { addon, skip } = findCudaAddon();
if (skip) {
  console.log(`gpu suite: SKIPPED (${skip})`);
  process.exit(0);
}
const filter = process.argv[2] ?? '';
let failed = 0, checked = 0;
for (const c of cases.filter((x) => x.name.includes(filter))) {
  let rows;
  try {
    rows = runCase(addon, c, 'cuda:0');
  } catch (e) {
    console.log(`FAIL ${c.name}: ${e.message}`);
    ++failed;
    continue;
  }
  for (const r of rows) {
    ++checked;
    const ok = r.ratio <= 1;
    if (!ok) ++failed;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${c.name} :: ${r.output}  worst ${r.ratio.toFixed(3)} of tol` +
      (ok ? '' : ` at ${r.index}: gpu ${r.got} cpu ${r.want}`));
  }
}
// Recorded runs: numbers and index checks read back at the run's end, one wait per run (recorded.js).
async function recordedRuns() {
  if (filter && !'recorded'.includes(filter)) return;
  let rows;
  try {
    rows = await require('./recorded').recordedChecks(addon, 'cuda:0');
  } catch (e) {
    rows = [{ name: 'recorded runs', ok: false, detail: e.stack }];
  }
  for (const r of rows) {
    ++checked;
    if (!r.ok) ++failed;
    console.log(`${r.ok ? 'ok  ' : 'FAIL'} recorded: ${r.name}${r.ok ? '' : `: ${r.detail}`}`);
  }
}

// Models on the GPU against the CPU (needs dist/: npm run build:ts, or carried by scripts/device-prepare.sh).
const path = require('node:path');
const fs = require('node:fs');
function models() {
  if (!filter && fs.existsSync(path.join(__dirname, '..', '..', 'dist', 'index.js'))) {
    const { spawnSync } = require('node:child_process');
    const { file } = require('./find_addon').findCudaAddon();
    const r = spawnSync(process.execPath, [path.join(__dirname, 'model_child.js')], {
      encoding: 'utf8', env: { ...process.env, WAVEMOE_ADDON: file }, timeout: 900_000,
    });
    if (r.status !== 0) {
      console.log(`FAIL models: model_child exited ${r.status}: ${r.stderr.slice(-2000)}`);
      ++failed;
    } else {
      const out = JSON.parse(r.stdout);
      if (out.waits) {
        const ok = out.waits.max <= 1;
        ++checked;
        if (!ok) ++failed;
        console.log(`${ok ? 'ok  ' : 'FAIL'} model tiny-moe: host waits per recorded training step ${JSON.stringify(out.waits.perStep)} (at most 1)`);
      }
      for (const rep of out.results ?? []) {
        const ok = rep.worstLoss <= 1 && rep.worstGrad.ratio <= 1 && rep.worstLogit <= 1;
        if (!ok) ++failed;
        ++checked;
        console.log(`${ok ? 'ok  ' : 'FAIL'} model ${rep.name}: loss ${rep.worstLoss.toFixed(3)}, gradient ` +
          `${rep.worstGrad.ratio.toFixed(3)}, decode logits ${rep.worstLogit.toFixed(3)} of tol; peak ` +
          `${(rep.peakGpuBytes / 2 ** 20).toFixed(0)} MiB; ${JSON.stringify(rep.steps)}` +
          (ok ? '' : ` worst gradient: ${JSON.stringify(rep.worstGrad)}`));
      }
    }
  } else if (!filter) {
    console.log('models: skipped (no dist/: npm run build:ts)');
  }
}

recordedRuns().then(() => {
  models();
  console.log(`gpu suite: ${checked} outputs checked, ${failed} failed (${JSON.stringify(addon.cudaInfo().devices?.[0]?.name)})`);
  process.exit(failed ? 1 : 0);
});
