/** Process settings, introspection and random fills. */
import type { NativeTensor } from './tensor';

export type Isa = 'generic' | 'avx2' | 'avx512';

export interface AllocStats {
  /** Bytes of native tensor memory alive now. */
  liveBytes: number;
  liveAllocations: number;
  peakBytes: number;
  totalAllocations: number;
}

/** What the addon knows of CUDA (ops.cudaInfo()). */
export interface CudaInfo {
  /** Whether this addon was built with CUDA (npm run build:cuda); the default npm install is CPU only. */
  built: boolean;
  /** CUDA builds: whether a GPU can be used now. */
  available?: boolean;
  /** Why not (CPU-only build, no NVIDIA driver, no device...). */
  reason?: string;
  driverVersion?: string;
  runtimeVersion?: string;
  devices?: Array<{ index: number; name: string; computeCapability: string; multiprocessors: number; totalBytes: number; freeBytes: number; description: string }>;
  /** The matmul backend: cuBLAS (which library) or the project's own tiled kernel, and why. */
  matmul?: string;
}

export interface CoreOps {
  readonly cuda: boolean;
  cudaInfo(): CudaInfo;
  numThreads(): number;
  /** Size of the shared thread pool (1..1024). Results are deterministic for a fixed count. */
  setNumThreads(threads: number): void;
  /** The instruction-set variant the micro-kernels use now. */
  isa(): Isa;
  /** The variant chosen for this CPU unless forced: the widest it runs, but avx2 on AMD Zen 3/4 (split 512-bit ops). */
  defaultIsa(): Isa;
  isaSupported(isa: Isa): boolean;
  /** Forces a variant (tests use it to cover every path); throws if this CPU cannot run it. */
  setIsa(isa: Isa): void;
  allocStats(): AllocStats;
  /** out[i] ~ U[lo, hi), a pure function of (seed, i). */
  randomUniform(out: NativeTensor, seed: number, lo: number, hi: number): void;
  randomUniformAsync(out: NativeTensor, seed: number, lo: number, hi: number): Promise<void>;
  /** out[i] ~ N(mean, std²), a pure function of (seed, i). */
  randomNormal(out: NativeTensor, seed: number, mean: number, std: number): void;
  randomNormalAsync(out: NativeTensor, seed: number, mean: number, std: number): Promise<void>;
}
