/**
 * A key/value cache for decoding: it owns K and V tensors `[batch, kvHeads, capacity, headDim]`, appends the new
 * positions of each step in place, and grows (a larger allocation, the valid rows copied natively) unless its
 * capacity was fixed. Attention over the cache is the fused forward with `kvLength` = the cached length.
 */
import { ops } from '../ops';
import { Tensor, type FloatDType } from '../tensor';
import type { AttentionMask } from '../native/types/attention';
import type { Device } from '../native';

export interface KVCacheOptions {
  batch: number;
  kvHeads: number;
  headDim: number;
  /** Default 'float32'. */
  dtype?: FloatDType;
  /** Where the cache lives ('cpu' default; the model's device when a model makes it). */
  device?: Device;
  /** Rows allocated up front (default 64). */
  capacity?: number;
  /** When true the capacity never grows and appending past it throws. Default false. */
  fixed?: boolean;
}

export interface KVCacheAttendOptions {
  mask: AttentionMask;
  window?: number;
  scale?: number;
  /** Position of the first query; default: the queries are the last cached positions (length - Tq). */
  qOffset?: number;
}

function positiveInteger(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`KVCache: option '${what}' must be a positive integer, got ${String(value)}`);
  }
  return value;
}

export class KVCache {
  readonly batch: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly dtype: FloatDType;
  readonly fixed: boolean;
  readonly device: Device;
  private keys: Tensor;
  private values: Tensor;
  private rows = 0;
  private isDisposed = false;

  constructor(opts: KVCacheOptions) {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('KVCache: options must be an object');
    this.batch = positiveInteger(opts.batch, 'batch');
    this.kvHeads = positiveInteger(opts.kvHeads, 'kvHeads');
    this.headDim = positiveInteger(opts.headDim, 'headDim');
    const dtype = opts.dtype ?? 'float32';
    if (dtype !== 'float32' && dtype !== 'float64') {
      throw new TypeError(`KVCache: option 'dtype' must be 'float32' or 'float64', got ${String(dtype)}`);
    }
    const fixed: unknown = opts.fixed ?? false;
    if (typeof fixed !== 'boolean') {
      throw new TypeError(`KVCache: option 'fixed' must be a boolean, got ${String(fixed)}`);
    }
    this.dtype = dtype;
    this.fixed = fixed;
    this.device = opts.device ?? 'cpu';
    const capacity = positiveInteger(opts.capacity ?? 64, 'capacity');
    this.keys = Tensor.zeros(this.shapeFor(capacity), this.dtype, this.device);
    this.values = Tensor.zeros(this.shapeFor(capacity), this.dtype, this.device);
  }

  /** Positions cached so far. */
  get length(): number {
    return this.rows;
  }

  /** Rows allocated per (batch, head). */
  get capacity(): number {
    return this.live().keys.shape[2]!;
  }

  /** The key tensor `[batch, kvHeads, capacity, headDim]`; the first `length` rows are valid. Replaced on growth. */
  get k(): Tensor {
    return this.live().keys;
  }

  /** The value tensor, laid out as `k`. */
  get v(): Tensor {
    return this.live().values;
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Appends keys and values `[batch, kvHeads, Tnew, headDim]` at position `length`. */
  append(k: Tensor, v: Tensor): void {
    this.live();
    const tnew = this.rowsOf(k, 'k');
    this.rowsOf(v, 'v');
    if (v.shape[2] !== tnew) throw new RangeError(`KVCache.append: 'k' and 'v' must have the same shape`);
    this.reserve(this.rows + tnew);
    ops.attentionKvAppend(this.keys, this.values, k, v, this.rows);
    this.rows += tnew;
  }

  /**
   * out `[batch, Hq, Tq, headDim]` = attention of q (same shape) over the cached positions; `lse` `[batch, Hq, Tq]`
   * is written when given (for a backward pass).
   */
  attend(out: Tensor, q: Tensor, opts: KVCacheAttendOptions, lse: Tensor | null = null): void {
    this.live();
    ops.attentionForward(out, lse, q, this.keys, this.values, { ...opts, kvLength: this.rows });
  }

  /** Forgets every position, keeping the allocation. */
  reset(): void {
    this.live();
    this.rows = 0;
  }

  /** Makes room for `rows` positions: doubles the capacity (at least) unless it is fixed. */
  reserve(rows: number): void {
    this.live();
    const capacity = this.capacity;
    if (rows <= capacity) return;
    if (this.fixed) {
      throw new RangeError(
        `KVCache: ${rows} positions exceed the fixed capacity of ${capacity} (create the cache with a larger ` +
          `'capacity', or without 'fixed' to let it grow)`,
      );
    }
    const grown = Math.max(rows, 2 * capacity);
    const keys = Tensor.zeros(this.shapeFor(grown), this.dtype, this.device);
    const values = Tensor.zeros(this.shapeFor(grown), this.dtype, this.device);
    ops.attentionKvCopy(keys, values, this.keys, this.values, this.rows);
    this.keys.dispose();
    this.values.dispose();
    this.keys = keys;
    this.values = values;
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.keys.dispose();
    this.values.dispose();
    this.isDisposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private shapeFor(capacity: number): number[] {
    return [this.batch, this.kvHeads, capacity, this.headDim];
  }

  private live(): this {
    if (this.isDisposed) throw new Error('KVCache: the cache has been disposed');
    return this;
  }

  // Tnew of new rows `[batch, kvHeads, Tnew, headDim]`, checked before anything is allocated.
  private rowsOf(t: Tensor, name: string): number {
    const s = t.shape;
    if (s.length !== 4 || s[0] !== this.batch || s[1] !== this.kvHeads || s[3] !== this.headDim) {
      throw new RangeError(
        `KVCache.append: '${name}' must have shape [${this.batch}, ${this.kvHeads}, Tnew, ${this.headDim}], ` +
          `got [${s.join(', ')}]`,
      );
    }
    return s[2]!;
  }
}
