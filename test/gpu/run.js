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
console.log(`gpu suite: ${checked} outputs checked, ${failed} failed (${JSON.stringify(addon.cudaInfo().devices?.[0]?.name)})`);
process.exit(failed ? 1 : 0);
