/** The optimizer step: AdamW and global-norm gradient clipping. */
import type { NativeTensor } from './tensor';

export interface AdamWOptions {
  /** Learning rate, >= 0. */
  lr: number;
  /** 1-based step count (bias correction), an integer >= 1. */
  step: number;
  /** In [0, 1); default 0.9. */
  beta1?: number;
  /** In [0, 1); default 0.999. */
  beta2?: number;
  /** > 0, added to sqrt of the bias-corrected second moment; default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, >= 0; default 0.01 (torch.optim.AdamW's). */
  weightDecay?: number;
  /**
   * A float64 tensor of one element (clipGradNorm's normOut), read when the step runs: if it holds NaN or ±Infinity
   * the step changes nothing. Lets a recorded training step skip a bad update without a trip to JavaScript.
   */
  skipIfNonFinite?: NativeTensor;
}

export interface OptimizerOps {
  /**
   * One AdamW step as torch.optim.AdamW takes it, updating param, m (first moment) and v (second moment) in place:
   * param *= 1 - lr·wd; m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²;
   * param -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps).
   * All four tensors have the same shape and float dtype and must not overlap.
   */
  adamwStep(param: NativeTensor, grad: NativeTensor, m: NativeTensor, v: NativeTensor, opts: AdamWOptions): void;
  adamwStepAsync(
    param: NativeTensor,
    grad: NativeTensor,
    m: NativeTensor,
    v: NativeTensor,
    opts: AdamWOptions,
  ): Promise<void>;
  /**
   * PyTorch's clip_grad_norm_: the L2 norm of all grads together (double accumulation, the same for every thread
   * count); if it exceeds maxNorm every grad is scaled in place by maxNorm / (norm + 1e-6). Returns the norm before
   * clipping. maxNorm > 0, or Infinity to measure only. A non-finite norm (NaN/Infinity in a grad) is returned and
   * nothing is scaled: the caller decides (typically skips the step). grads: a non-empty array of disjoint tensors
   * of one float dtype. normOut (optional, a float64 tensor of one element) receives the norm too, for ops that read
   * it later in a recording (adamwStep's skipIfNonFinite).
   */
  clipGradNorm(grads: NativeTensor[], maxNorm: number, normOut?: NativeTensor): number;
  clipGradNormAsync(grads: NativeTensor[], maxNorm: number, normOut?: NativeTensor): Promise<number>;
}
