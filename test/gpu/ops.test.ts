/**
 * The GPU suite: every op that has a CUDA kernel, run on cuda:0 and on the CPU in the CUDA-enabled addon from the
 * same random inputs, compared within each case's stated tolerance (test/gpu/cases.js). Runs wherever that addon is
 * built (npm run build:cuda) and a GPU is usable; elsewhere it prints one SKIPPED line saying why, and checks what
 * can be checked without a GPU: that every case runs (CPU against CPU) and that the CUDA build, where present, loads
 * and refuses 'cuda' tensors with the reason.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { cases, runCase } = require('./cases') as {
  cases: Array<{ name: string }>;
  runCase: (addon: unknown, c: unknown, device: string) => Array<{ output: string; ratio: number; index: number; got: number; want: number }>;
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { findCudaAddon } = require('./find_addon') as {
  findCudaAddon: () => { addon: { Tensor: new (d: string, s: number[], dev?: string) => unknown; cudaInfo: () => { reason?: string } } | null; file: string; skip: string | null };
};

const found = findCudaAddon();

// Without a GPU the cases still run, CPU against CPU in the default addon: each must run, and reproduce exactly, so
// that a broken case is found here rather than in a rare GPU session.
test.each(cases.map((c) => [c.name, c] as const))('case %s runs on the CPU and reproduces exactly', (_name, c) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cpuAddon = require('node-gyp-build')(require('node:path').resolve(__dirname, '..', '..')) as unknown;
  for (const r of runCase(cpuAddon, c, 'cpu')) expect([r.output, r.ratio]).toEqual([r.output, 0]);
});

if (found.skip) {
  console.log(`SKIPPED GPU suite (${cases.length} cases): ${found.skip}`);
  test('without a GPU, the CUDA build (when present) refuses cuda tensors and says why', () => {
    if (!found.addon) return; // no CUDA build here: nothing to load
    expect(() => new found.addon!.Tensor('float32', [2], 'cuda')).toThrow(/^new Tensor: device 'cuda:0': /);
    expect(() => new found.addon!.Tensor('float32', [2], 'cuda')).toThrow(found.addon.cudaInfo().reason!);
  });
} else {
  describe.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    test('GPU equals CPU within tolerance', () => {
      for (const r of runCase(found.addon, c, 'cuda:0')) {
        if (r.ratio > 1) {
          throw new Error(`${r.output}: worst error ${r.ratio.toFixed(2)}× the tolerance at ${r.index}: gpu ${r.got}, cpu ${r.want}`);
        }
      }
    });
  });
}
