/** A trainable tensor, its gradient (null when frozen) and its checkpoint name (PyTorch style, row-major). */
import { Tensor } from '../tensor';
import type { Device } from '../native';

export class Parameter {
  constructor(
    /** e.g. `layers.0.attn.wq.weight` */
    public name: string,
    private valueTensor: Tensor,
    private gradTensor: Tensor | null,
  ) {}

  /** The weights. Replaced (not changed in place) by Module.to: do not keep it across a move. */
  get value(): Tensor {
    return this.valueTensor;
  }

  get grad(): Tensor | null {
    return this.gradTensor;
  }

  static create(name: string, shape: number[], dtype: 'float32' | 'float64', trainable = true): Parameter {
    return new Parameter(name, Tensor.zeros(shape, dtype), trainable ? Tensor.zeros(shape, dtype) : null);
  }

  /** Copies value and gradient to `device` and frees the old ones (Module.to calls this once per parameter). */
  moveTo(device: Device): void {
    this.rebind(this.valueTensor.to(device), this.gradTensor?.to(device) ?? null);
  }

  /** Replaces value and gradient (freeing the old ones), e.g. with views of a moved block (MoE experts). */
  rebind(value: Tensor, grad: Tensor | null): void {
    const old = [this.valueTensor, this.gradTensor];
    this.valueTensor = value;
    this.gradTensor = grad;
    for (const t of old) if (t !== value && t !== grad) t?.dispose();
  }

  dispose(): void {
    this.valueTensor.dispose();
    this.gradTensor?.dispose();
  }
}
