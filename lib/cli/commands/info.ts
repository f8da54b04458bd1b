/** `wavemoe info`: version, build, CPU features in use, threads, CUDA availability. */
import * as path from 'node:path';
import { Command } from 'commander';
import { ops } from '../../ops';

export function infoLines(): string[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pkg = require(path.resolve(__dirname, '..', '..', '..', 'package.json')) as { version: string };
  const supported = (['avx512', 'avx2', 'generic'] as const).filter((i) => ops.isaSupported(i));
  return [
    `wavemoe ${pkg.version}`,
    `node ${process.versions.node} (N-API ${process.versions.napi}), ${process.platform}-${process.arch}`,
    `cpu kernels: ${ops.isa()} (supported: ${supported.join(', ')}; default here: ${ops.defaultIsa()}; force with WAVEMOE_ISA)`,
    `threads: ${ops.numThreads()}`,
    ...cudaLines(),
  ];
}

function cudaLines(): string[] {
  const c = ops.cudaInfo();
  if (!c.built) return [`cuda: not available: ${c.reason ?? "this build is CPU only"}`];
  const lines = [`cuda: built with CUDA${c.runtimeVersion ? ` (runtime ${c.runtimeVersion}, driver ${c.driverVersion})` : ''}`];
  if (!c.available) lines.push(`  no usable GPU: ${c.reason ?? 'unknown'}`);
  for (const d of c.devices ?? []) lines.push(`  gpu ${d.index}: ${d.description}`);
  lines.push(`  matmul: ${c.matmul ?? 'unknown'}`);
  return lines;
}

export function infoCommand(): Command {
  return new Command('info').description('show version, build, CPU features, threads and CUDA availability').action(() => {
    process.stdout.write(`${infoLines().join('\n')}\n`);
  });
}
