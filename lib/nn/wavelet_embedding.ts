/**
 * The wavelet token embedding (see lib/wavelet.ts and docs/wavelet.md): each token owns raw_dim seeded random reals;
 * Haar down to raw_dim / 2^levels, then the complex Morlet transform gives the token's complex values, which the
 * model sees as (re, im) channel pairs. Modes:
 *   frozen  `embed.table` [V, C] built once from the seed, not trained (saved so a checkpoint is self-contained)
 *   table   `embed.table` trained, initialised by the transform
 *   raw     `embed.raw` [V, raw_dim] trained through the fixed linear map W: embedding = raw · W
 */
import { ops } from '../ops';
import { Tensor } from '../tensor';
import type { Device } from '../native';
import { waveletMatrix, waveletRawInit, waveletTableForward, type WaveletTransformOptions } from '../wavelet';
import type { WaveletConfig } from '../models/config';
import { waveletChannels } from '../models/config';
import { Module, moveTensor } from './module';
import { Parameter } from './parameter';

export class WaveletEmbedding extends Module {
  readonly param: Parameter;
  readonly channels: number;
  /** raw mode only: the fixed (raw_dim, C) transform matrix */
  private W: Tensor | null = null;
  private readonly ids = new Map<string, Tensor>();

  constructor(
    readonly vocabSize: number,
    readonly cfg: WaveletConfig,
    dtype: 'float32' | 'float64',
  ) {
    super();
    this.channels = waveletChannels(cfg);
    const transform: WaveletTransformOptions = {
      levels: cfg.haar_levels,
      scales: cfg.scales,
      bandwidth: cfg.bandwidth,
      center: cfg.center,
    };
    const raw = Tensor.zeros([vocabSize, cfg.raw_dim], dtype);
    waveletRawInit(raw, cfg.seed);
    if (cfg.mode === 'raw') {
      this.param = this.addParameter(new Parameter('embed.raw', raw, Tensor.zeros(raw.shape, dtype)));
      this.W = Tensor.zeros([cfg.raw_dim, this.channels], dtype);
      waveletMatrix(this.W, transform);
      return;
    }
    const table = Tensor.zeros([vocabSize, this.channels], dtype);
    waveletTableForward(table, raw, transform);
    raw.dispose();
    const grad = cfg.mode === 'table' ? Tensor.zeros(table.shape, dtype) : null;
    this.param = this.addParameter(new Parameter('embed.table', table, grad));
  }

  forward(ids: Tensor, slot = 'main'): Tensor {
    const out = this.buffers.get(`out_${slot}`, [...ids.shape, this.channels], this.param.value.dtype);
    if (this.W) ops.waveletEmbeddingRawForward(out, ids, this.param.value, this.W);
    else ops.embeddingForward(out, ids, this.param.value);
    this.ids.set(slot, ids);
    return out;
  }

  backward(dout: Tensor, slot = 'main'): void {
    const ids = this.ids.get(slot);
    if (ids === undefined) throw new Error('WaveletEmbedding.backward called before forward');
    if (!this.param.grad) return; // frozen
    if (this.W) ops.waveletEmbeddingRawBackward(this.param.grad, dout, ids, this.W);
    else ops.embeddingBackward(this.param.grad, dout, ids);
  }

  /** The fixed map W goes with the parameter (the parameter itself moves with the others). */
  protected override moveState(device: Device): void {
    if (this.W) this.W = moveTensor(this.W, device);
    this.ids.clear();
  }

  override dispose(): void {
    this.W?.dispose();
    super.dispose();
  }
}
