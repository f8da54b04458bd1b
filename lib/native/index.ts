/**
 * The only module that touches the raw addon: loads it (a prebuilt binary or the local build, through
 * node-gyp-build) and gives it TypeScript types. Everything else imports `binding` from here.
 */
import * as path from 'node:path';
import type { CoreOps } from './types/core';
import type { ElementwiseOps } from './types/elementwise';
import type { NativeTensorClass } from './types/tensor';
import type { MatmulOps } from './types/matmul';
import type { EmbeddingOps } from './types/embedding';
import type { NormOps } from './types/norm';
import type { ActivationOps } from './types/activation';
import type { SoftmaxOps } from './types/softmax';
import type { RopeOps } from './types/rope';
import type { CrossEntropyOps } from './types/cross_entropy';
import type { OptimizerOps } from './types/optimizer';
import type { AttentionOps } from './types/attention';
import type { MoeOps } from './types/moe';
import type { WaveletOps } from './types/wavelet';
import type { SamplingOps } from './types/sampling';
import type { RecordingOps } from './types/recording';

export type NativeOps = CoreOps &
  ElementwiseOps &
  MatmulOps &
  EmbeddingOps &
  NormOps &
  ActivationOps &
  SoftmaxOps &
  RopeOps &
  CrossEntropyOps &
  OptimizerOps &
  AttentionOps &
  MoeOps &
  WaveletOps &
  SamplingOps &
  RecordingOps;

export interface NativeBinding extends NativeOps {
  Tensor: NativeTensorClass;
  setTensorClass(cls: NativeTensorClass): void;
}

function load(): NativeBinding {
  const root = path.resolve(__dirname, '..', '..');
  // WAVEMOE_ADDON: absolute path of a .node file to load instead (e.g. the sanitized build of scripts/sanitize.sh).
  const override = process.env.WAVEMOE_ADDON;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (override) return require(override) as NativeBinding;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    return nodeGypBuild(root) as NativeBinding;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `wavemoe: could not load the native addon (${reason}).\n` +
        'Possible solutions:\n' +
        (override ? `- WAVEMOE_ADDON=${override} is set: unset it, or name a built .node file.\n` : '') +
        `- Node.js ${process.versions.node} on ${process.platform}-${process.arch}: wavemoe needs Node 20 or newer.\n` +
        '- No prebuilt binary matches this platform: install a C++ compiler and Python, then run `npm rebuild wavemoe`.\n' +
        '- Building from a git checkout: run `npm install` (or `npm run build`) first.',
    );
  }
}

export const binding: NativeBinding = load();
export type { DType, Device, NativeTensor, AnyTypedArray, TypedArrayOf } from './types/tensor';
export type { Isa, AllocStats, CudaInfo, CudaMemoryStats, MatmulPrecision } from './types/core';
