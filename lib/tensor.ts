/**
 * The user-facing Tensor: native, contiguous, row-major storage that JavaScript reaches only by copy.
 * `dispose()` frees it at once; a finalizer frees what is forgotten. Using a disposed tensor throws.
 */
import { binding } from './native';
import type { AnyTypedArray, DType, Device, NativeTensor, TypedArrayOf } from './native';

const NativeTensorBase = binding.Tensor as unknown as new (dtype: DType, shape: number[], device?: Device) => NativeTensor;

export type FloatDType = 'float32' | 'float64';

function checkShape(shape: readonly number[], what: string): number {
  if (!Array.isArray(shape)) throw new TypeError(`${what}: shape must be an array of integers`);
  let n = 1;
  shape.forEach((d, i) => {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new TypeError(`${what}: shape[${i}] must be a non-negative integer, got ${String(d)}`);
    }
    n *= d;
  });
  return n;
}

// By tag, not instanceof: typed arrays from another realm (a vm context, a test runner) are not instances here.
function dtypeOfArray(data: AnyTypedArray): DType {
  switch ((data as { [Symbol.toStringTag]?: string })[Symbol.toStringTag]) {
    case 'Float32Array':
      return 'float32';
    case 'Float64Array':
      return 'float64';
    case 'Int32Array':
      return 'int32';
  }
  throw new TypeError('expected a Float32Array, Float64Array or Int32Array');
}

export class Tensor extends NativeTensorBase {
  constructor(dtype: DType, shape: number[], device: Device = 'cpu') {
    super(dtype, shape, device);
  }

  /** A zero-filled tensor, on the CPU unless `device` names a GPU. */
  static zeros(shape: number[], dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
    checkShape(shape, 'Tensor.zeros');
    return new Tensor(dtype, shape, device);
  }

  /**
   * A tensor holding a copy of `data`. A typed array keeps its own dtype; a plain number array becomes
   * `dtype` (default float32). The shape defaults to one dimension.
   */
  static from(data: AnyTypedArray | readonly number[], shape?: number[], dtype?: DType): Tensor {
    const isTyped = ArrayBuffer.isView(data);
    const dt: DType = isTyped ? dtypeOfArray(data as AnyTypedArray) : (dtype ?? 'float32');
    if (isTyped && dtype !== undefined && dtype !== dt) {
      throw new TypeError(`Tensor.from: data is a ${dt} array but dtype '${dtype}' was asked for`);
    }
    const s = shape ?? [data.length];
    const n = checkShape(s, 'Tensor.from');
    if (n !== data.length) {
      throw new RangeError(`Tensor.from: shape [${s.join(', ')}] needs ${n} elements, data has ${data.length}`);
    }
    const t = new Tensor(dt, s);
    if (isTyped) {
      t.copyFrom(data as AnyTypedArray);
    } else {
      const arr = dt === 'float32' ? new Float32Array(n) : dt === 'float64' ? new Float64Array(n) : new Int32Array(n);
      (data as readonly number[]).forEach((v, i) => {
        if (typeof v !== 'number') throw new TypeError(`Tensor.from: data[${i}] is not a number`);
        // An int32 store would truncate 1.5 to 1 and wrap 2^31 to -2^31 without a word.
        if (dt === 'int32' && !(Number.isInteger(v) && v >= -2147483648 && v <= 2147483647)) {
          throw new RangeError(`Tensor.from: data[${i}] = ${v} is not an int32 (an integer in [-2147483648, 2147483647])`);
        }
        arr[i] = v;
      });
      t.copyFrom(arr);
    }
    return t;
  }

  /** Normal(mean, std²) values from the counter-based generator: the same numbers on every machine. */
  static randn(shape: number[], opts: { seed?: number; mean?: number; std?: number; dtype?: FloatDType } = {}): Tensor {
    const t = Tensor.zeros(shape, opts.dtype ?? 'float32');
    binding.randomNormal(t, opts.seed ?? 0, opts.mean ?? 0, opts.std ?? 1);
    return t;
  }

  /** Uniform [lo, hi) values from the counter-based generator. */
  static rand(shape: number[], opts: { seed?: number; lo?: number; hi?: number; dtype?: FloatDType } = {}): Tensor {
    const t = Tensor.zeros(shape, opts.dtype ?? 'float32');
    binding.randomUniform(t, opts.seed ?? 0, opts.lo ?? 0, opts.hi ?? 1);
    return t;
  }

  /** The elements as a typed array of the tensor's dtype (a copy). */
  data<D extends DType>(this: Tensor & { dtype: D }): TypedArrayOf<D> {
    return this.toArray() as TypedArrayOf<D>;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  override toString(): string {
    if (this.disposed) return 'Tensor(disposed)';
    const where = this.device === 'cpu' ? '' : `, ${this.device}`;
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}]${where})`;
  }
}

binding.setTensorClass(Tensor as unknown as typeof binding.Tensor);
