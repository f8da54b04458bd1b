/**
 * Recorded runs on the GPU (test/gpu/recorded.js): numbers and index checks read back once, at the run's end, with
 * the CPU's numbers and error messages. Without a GPU the same checks run CPU against CPU in the default addon, so
 * that a broken check is found here (the GPU's wait counts are then not checked; the SKIPPED line is ops.test.ts's).
 */
import path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { recordedChecks } = require('./recorded') as {
  recordedChecks: (addon: unknown, device: string) => Promise<Array<{ name: string; ok: boolean; detail: string }>>;
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { findCudaAddon } = require('./find_addon') as { findCudaAddon: () => { addon: unknown; skip: string | null } };

const found = findCudaAddon();

test('recorded runs: numbers and bad indices, CPU against CPU (the checks themselves)', async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cpuAddon = require('node-gyp-build')(path.resolve(__dirname, '..', '..')) as unknown;
  const rows = await recordedChecks(cpuAddon, 'cpu');
  expect(rows.length).toBe(6);
  for (const r of rows) expect([r.name, r.ok, r.detail]).toEqual([r.name, true, r.detail]);
});

(found.skip ? test.skip : test)('recorded runs on cuda:0: numbers, one wait per run, bad indices named as on the CPU', async () => {
  const rows = await recordedChecks(found.addon, 'cuda:0');
  expect(rows.length).toBe(8);
  for (const r of rows) expect([r.name, r.ok, r.detail]).toEqual([r.name, true, r.detail]);
});
