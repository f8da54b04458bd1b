/**
 * AdamW over a model's parameters (the native adamwStep kernel, PyTorch semantics), with global-norm clipping.
 * Weight decay applies to matrices (rank ≥ 2), not to norms' scales or biases, as is usual for transformers.
 */
import { ops } from '../ops';
import { Tensor } from '../tensor';
import type { Parameter } from '../nn/parameter';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export class AdamW {
  /** Steps taken (the bias-correction counter). */
  step = 0;
  readonly m = new Map<string, Tensor>();
  readonly v = new Map<string, Tensor>();
  private readonly trainable: Parameter[];

  constructor(
    params: Parameter[],
    readonly opts: AdamWOptions,
  ) {
    this.trainable = params.filter((p) => p.grad !== null);
    for (const p of this.trainable) {
      // Moments live with their parameter (on its device): move the model before making its optimizer.
      this.m.set(p.name, Tensor.zeros(p.value.shape, p.value.dtype, p.value.device));
      this.v.set(p.name, Tensor.zeros(p.value.shape, p.value.dtype, p.value.device));
    }
  }

  /**
   * Clips the global gradient norm to maxNorm (if > 0) and returns the norm before clipping. normOut (float64 [1])
   * also receives it, for update(lr, normOut) in a recorded step.
   */
  clipGradNorm(maxNorm: number, normOut?: Tensor): number {
    const grads = this.trainable.map((p) => p.grad!);
    return ops.clipGradNorm(grads, maxNorm > 0 ? maxNorm : Infinity, normOut); // Infinity: measure only
  }

  /**
   * One AdamW step at learning rate lr. With skipIfNonFinite (clipGradNorm's normOut), every parameter's update is
   * skipped when it holds NaN or ±Infinity, decided when the step runs; the caller then takes back the step count.
   */
  update(lr: number, skipIfNonFinite?: Tensor): void {
    this.step += 1;
    for (const p of this.trainable) {
      ops.adamwStep(p.value, p.grad!, this.m.get(p.name)!, this.v.get(p.name)!, {
        lr,
        beta1: this.opts.beta1,
        beta2: this.opts.beta2,
        eps: this.opts.eps,
        weightDecay: p.value.shape.length >= 2 ? this.opts.weightDecay : 0,
        step: this.step,
        skipIfNonFinite,
      });
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}
