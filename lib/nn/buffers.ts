/**
 * Activation and gradient buffers of a module, allocated once per shape and reused every step, so a training step
 * allocates nothing once shapes are stable (and the garbage collector stays out of the hot path). They live on the
 * module's device (Module.to moves the module and drops the buffers, which are then made again there).
 */
import { Tensor } from '../tensor';
import type { DType, Device } from '../native';

export class Buffers {
  private readonly map = new Map<string, Tensor>();
  private where: Device = 'cpu';

  get device(): Device {
    return this.where;
  }

  /** Frees every buffer; later ones are made on `device`. */
  setDevice(device: Device): void {
    this.dispose();
    this.where = device;
  }

  /** A tensor of this shape and dtype under `key`; reused while the shape is unchanged. Contents are stale. */
  get(key: string, shape: number[], dtype: DType): Tensor {
    const t = this.map.get(key);
    if (t !== undefined && t.dtype === dtype && sameShape(t.shape, shape)) return t;
    t?.dispose();
    const fresh = Tensor.zeros(shape, dtype, this.where);
    this.map.set(key, fresh);
    return fresh;
  }

  /** Like get, filled with zeros (for outputs that kernels accumulate into). */
  zeros(key: string, shape: number[], dtype: DType): Tensor {
    return this.get(key, shape, dtype).fill(0);
  }

  dispose(): void {
    for (const t of this.map.values()) t.dispose();
    this.map.clear();
  }
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
