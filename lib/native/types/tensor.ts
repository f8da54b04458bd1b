/** The native Tensor class as the addon exports it; lib/tensor.ts subclasses it. */
export type DType = 'float32' | 'float64' | 'int32';
export type TypedArrayOf<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : Int32Array;
export type AnyTypedArray = Float32Array | Float64Array | Int32Array;
/** Where a tensor lives: the CPU, or a CUDA GPU ('cuda' is 'cuda:0'); GPUs need the CUDA-enabled build. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export interface NativeTensor {
  /** A copy of the shape. */
  readonly shape: number[];
  readonly dtype: DType;
  readonly numel: number;
  readonly disposed: boolean;
  /** 'cpu' or 'cuda:N'. */
  readonly device: 'cpu' | `cuda:${number}`;
  /**
   * A new tensor on `device` holding a copy of this one (a copy also when the device is the same, so that every
   * tensor has one owner to dispose). Needs the CUDA-enabled build and a GPU for 'cuda'; otherwise it throws, saying why.
   */
  to(device: Device): this;
  /** Copies the elements out into a new typed array owned by JavaScript (from a GPU: waits for its queued work). */
  toArray(): AnyTypedArray;
  /** Copies a typed array of the matching type and length in. */
  copyFrom(data: AnyTypedArray): this;
  fill(value: number): this;
  /** A view with another shape and the same element count, sharing storage. */
  reshape(shape: number[]): this;
  /** A view of rows [start, start + length) along the first dimension, sharing storage. */
  narrow(start: number, length: number): this;
  /** Frees the native memory now (views keep shared storage alive). Safe to call twice. */
  dispose(): void;
}

export interface NativeTensorClass {
  new (dtype: DType, shape: number[], device?: Device): NativeTensor;
}
