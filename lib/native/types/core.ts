/** Process settings, introspection and random fills. */
import type { NativeTensor } from './tensor';

export type Isa = 'generic' | 'avx2' | 'avx512';
export type MatmulPrecision = 'fp32' | 'tf32' | 'bf16';

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

/** The caching allocator's counters for one GPU (ops.cudaMemoryStats). */
export interface CudaMemoryStats {
  /** Bytes handed out to tensors and scratch and not yet freed (rounded to the allocator's size classes). */
  bytesInUse: number;
  /** The most bytesInUse has been since the start or resetPeak. */
  peakBytesInUse: number;
  /** Freed bytes kept for reuse (cudaReleaseCached gives them back to the driver). */
  bytesCached: number;
  /** cudaMalloc calls so far: flat after the first training step. */
  deviceMallocs: number;
  allocations: number;
  cacheHits: number;
  /** Times the host has waited for this GPU so far (reading data back, a number result, cudaSynchronize): a recorded
   * training step waits once, at its end, where it reads its loss. */
  hostWaits: number;
}

export interface CoreOps {
  /** True in the CUDA-enabled build (npm run build:cuda). */
  readonly cuda: boolean;
  /** CPU-only build with WAVEMOE_FAKE_CUDA=1 at load: 'cuda' tensors live in host memory and no op has kernels for them (tests of the device plumbing). */
  readonly fakeCuda?: boolean;
  cudaInfo(): CudaInfo;
  /** The caching allocator's counters for a GPU ('cuda:N'); throws in a CPU-only build or without a GPU. */
  cudaMemoryStats(device?: string, options?: { resetPeak?: boolean }): CudaMemoryStats;
  /** Gives the allocator's cached (free) blocks back to the driver. */
  cudaReleaseCached(): void;
  /** Waits until the GPU has done all work queued so far (for timing; reads of data wait by themselves). */
  cudaSynchronize(device?: string): void;
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
  /**
   * Process-wide precision of float32 matrix products (as torch.set_float32_matmul_precision): 'fp32' (default),
   * 'tf32' or 'bf16' round the inputs of every product (Linear layers, the output layer, the MoE router and experts,
   * and fused attention's Q·Kᵀ, P·V and gradient products, as a bf16 FlashAttention-2) to that format and sum in
   * float32; weights, outputs, norms, softmax (attention's too), the loss and AdamW stay float32. On a GPU
   * these are cuBLAS's tensor-core paths; on the CPU they are emulated (same numbers, no speed-up). float64 is exact.
   */
  setMatmulPrecision(precision: MatmulPrecision): void;
  matmulPrecision(): MatmulPrecision;
  /** out[i] ~ U[lo, hi), a pure function of (seed, i). */
  randomUniform(out: NativeTensor, seed: number, lo: number, hi: number): void;
  randomUniformAsync(out: NativeTensor, seed: number, lo: number, hi: number): Promise<void>;
  /** out[i] ~ N(mean, std²), a pure function of (seed, i). */
  randomNormal(out: NativeTensor, seed: number, mean: number, std: number): void;
  randomNormalAsync(out: NativeTensor, seed: number, mean: number, std: number): Promise<void>;
}
