/**
 * The model family: decoder-only or encoder-decoder transformers assembled from lib/nn modules by a validated
 * ModelConfig. Parameter names follow docs/checkpoints (PyTorch style): `embed.weight`, `layers.{i}.attn.wq.weight`,
 * `layers.{i}.moe.experts.{e}.w1.weight`, `encoder.layers.{i}.*`, `norm.weight`, `lm_head.weight|bias`.
 */
import type { KVCache } from '../generate/kv_cache';
import { ops, runAsync, Scalar, scalar } from '../ops';
import { Tensor } from '../tensor';
import type { Device } from '../native';
import type { AttentionOptions } from '../nn/attention';
import { Block, type FeedForwardLike } from '../nn/block';
import { Embedding } from '../nn/embedding';
import { FeedForward } from '../nn/feed_forward';
import { Linear } from '../nn/linear';
import { Module, moveTensor } from '../nn/module';
import { MoE } from '../nn/moe';
import { Norm } from '../nn/norm';
import { WaveletEmbedding } from '../nn/wavelet_embedding';
import type { Parameter } from '../nn/parameter';
import { validateConfig, type ModelConfig } from './config';

export type ModelDType = 'float32' | 'float64';

/** Anything that turns token ids into [.., d_model] vectors and takes their gradient back. */
export interface TokenEmbedding extends Module {
  forward(ids: Tensor, slot?: string): Tensor;
  backward(dout: Tensor, slot?: string): void;
}

/** Builds the feed-forward of block `name` (dense or mixture of experts). */
function makeFeedForward(name: string, c: ModelConfig, dtype: ModelDType): FeedForwardLike {
  if (c.ffn === 'dense') return new FeedForward(`${name}.ffn`, c.d_model, c.d_ff, c.activation, c.ffn_bias, dtype);
  return new MoE(`${name}.moe`, {
    dModel: c.d_model,
    dFf: c.d_ff,
    nExperts: c.n_experts,
    topK: c.top_k,
    router: c.router,
    renormalize: c.router_renormalize,
    activation: c.activation,
    bias: c.ffn_bias,
    routerBias: c.router_bias,
    capacityFactor: c.capacity_factor,
    auxLossCoef: c.aux_loss_coef,
    zLossCoef: c.router_z_loss_coef,
    dtype,
  });
}

function makeEmbedding(c: ModelConfig, dtype: ModelDType): TokenEmbedding {
  if (c.embedding === 'learned') return new Embedding('embed', c.vocab_size, c.d_model, dtype);
  return new WaveletEmbedding(c.vocab_size, c.wavelet, dtype);
}

class Stack extends Module {
  readonly layers: Block[];
  readonly norm: Norm;
  constructor(prefix: string, n: number, c: ModelConfig, dtype: ModelDType, decoderOfSeq2Seq: boolean, causal: boolean) {
    super();
    const attn = (mask: 'causal' | 'none', rope: boolean): AttentionOptions => ({
      dModel: c.d_model,
      nHeads: c.n_heads,
      nKvHeads: c.n_kv_heads,
      bias: c.attention_bias,
      mask,
      slidingWindow: mask === 'causal' ? c.sliding_window : null,
      rope: rope && c.positional === 'rope' ? { theta: c.rope_theta } : null,
      dtype,
    });
    this.layers = Array.from({ length: n }, (_, i) =>
      this.addModule(
        new Block(
          `${prefix}layers.${i}`,
          {
            norm: c.norm,
            normPosition: c.norm_position,
            normEps: c.norm_eps,
            self: attn(causal ? 'causal' : 'none', true),
            cross: decoderOfSeq2Seq ? attn('none', false) : null,
            dtype,
          },
          makeFeedForward(`${prefix}layers.${i}`, c, dtype),
        ),
      ),
    );
    this.norm = this.addModule(new Norm(`${prefix}norm`, c.norm, c.d_model, c.norm_eps, dtype));
  }

  forward(x: Tensor, context: Tensor | null): Tensor {
    let h = x;
    for (const layer of this.layers) h = layer.forward(h, context);
    return this.norm.forward(h);
  }

  backward(dout: Tensor, dContext: Tensor | null): Tensor {
    let d = this.norm.backward(dout);
    for (let i = this.layers.length - 1; i >= 0; i--) d = this.layers[i]!.backward(d, dContext);
    return d;
  }
}

/** The state of an incremental decode: one KV cache per decoder layer (and per cross-attention), the position. */
export interface DecodeState {
  readonly batch: number;
  readonly self: KVCache[];
  readonly cross: KVCache[];
  /** The encoder output [B, S, C] (encoder-decoder models). */
  context: Tensor | null;
  /** Positions decoded so far. */
  position: number;
  dispose(): void;
}

export interface LossResult {
  /** Mean next-token cross-entropy over non-ignored targets. */
  loss: number;
  /** Mixture-of-experts auxiliary losses (already weighted by their coefficients), 0 for dense models. */
  auxLoss: number;
}

/** LossResult as Scalars: inside runAsync (Transformer.runAsync) they hold their values once the run completes. */
export interface LossScalars {
  loss: Scalar;
  /** One per MoE layer (summed: LossResult.auxLoss). */
  auxLosses: Scalar[];
}

export class Transformer extends Module {
  readonly embed: TokenEmbedding;
  readonly decoder: Stack;
  readonly encoder: Stack | null;
  readonly lmHead: Linear;
  private positions: Tensor | null = null;
  private encoderOut: Tensor | null = null;
  /** Recorded runs of this model queued or running on a background thread: its buffers are in use. */
  private inFlight = 0;
  /** True while a runAsync callback records: its calls are queued behind the runs in flight, which is safe. */
  private recording = false;
  private isDisposed = false;
  readonly config: ModelConfig;

  constructor(
    config: ModelConfig,
    readonly dtype: ModelDType = 'float32',
  ) {
    super();
    if (dtype !== 'float32' && dtype !== 'float64') {
      throw new TypeError(`Transformer: dtype must be 'float32' or 'float64', got ${String(dtype)}`);
    }
    // Validated again (cheap, idempotent): a hand-written config object gets the config's messages and defaults
    // rather than a TypeError from deep inside a layer.
    const c = validateConfig(config);
    this.config = c;
    this.embed = this.addModule(makeEmbedding(c, dtype));
    const seq2seq = c.architecture === 'encoder-decoder';
    this.encoder = seq2seq ? this.addModule(new Stack('encoder.', c.n_encoder_layers, c, dtype, false, false)) : null;
    this.decoder = this.addModule(new Stack('', c.n_layers, c, dtype, seq2seq, true));
    // Tied: the output layer reuses the embedding table [vocab, d_model] as its weight (saved once, as embed.weight).
    const tied = c.tie_embeddings && this.embed instanceof Embedding ? this.embed.weight : null;
    this.lmHead = this.addModule(new Linear('lm_head', c.d_model, c.vocab_size, c.lm_head_bias, dtype, tied));
    if (c.positional === 'sinusoidal') {
      this.positions = Tensor.zeros([c.max_seq_len, c.d_model], dtype);
      ops.sinusoidalPositions(this.positions, 0);
    }
  }

  /** Seeded initialisation (GPT-2 style: N(0, 0.02), residual output projections scaled by 1/√(2·layers)). */
  init(seed = 0): void {
    const c = this.config;
    // Sinusoidal positions have unit amplitude: token embeddings start on the same scale (Vaswani et al. reach it by
    // multiplying N(0, 1/d) embeddings by √d), or the positions drown the tokens (measured: the numbers task does not
    // learn with N(0, 0.02) embeddings and reaches 90% exact match in 300 steps with N(0, 1)).
    if (this.embed instanceof Embedding) this.embed.init(seed, c.positional === 'sinusoidal' ? 1 : 0.02);
    const outStd = 0.02 / Math.sqrt(2 * (c.n_layers + c.n_encoder_layers));
    this.decoder.layers.forEach((b, i) => b.init(seed + 1000 * (i + 1), outStd));
    this.encoder?.layers.forEach((b, i) => b.init(seed + 500_000 + 1000 * (i + 1), outStd));
    this.lmHead.init(seed + 999_999, 0.02);
  }

  /**
   * Records `record`, which calls this model's methods (decode, forward, ...), and runs it as one background job
   * (ops.runAsync). Runs execute in the order they were recorded, so concurrent generations on one model take turns
   * step by step, and a step may be recorded while the previous one still runs. Meanwhile synchronous calls on the
   * model throw: its scratch buffers belong to the queued runs.
   */
  async runAsync<T>(record: () => T): Promise<T> {
    let recorded = false;
    const run = runAsync(() => {
      this.recording = true;
      let result: T;
      try {
        result = record();
      } finally {
        this.recording = false;
      }
      recorded = true;
      this.inFlight++;
      return result;
    });
    try {
      return await run;
    } finally {
      if (recorded) this.inFlight--;
    }
  }

  private assertIdle(method: string): void {
    if (this.isDisposed) throw new Error(`Transformer.${method}: the model has been disposed`);
    if (this.inFlight > 0 && !this.recording) {
      throw new Error(`Transformer.${method}: the model is running a background step (a generation in progress); await it before calling ${method}`);
    }
  }

  /** Parameters by name. */
  namedParameters(): Map<string, Parameter> {
    return new Map(this.parameters().map((p) => [p.name, p]));
  }

  private checkIds(ids: Tensor, what: string): [number, number] {
    if (typeof ids !== 'object' || ids === null || typeof (ids as { reshape?: unknown }).reshape !== 'function') {
      throw new TypeError(`${what} must be an int32 tensor [batch, seq_len], got ${Array.isArray(ids) ? 'an array' : String(ids)}`);
    }
    if (ids.dtype !== 'int32' || ids.shape.length !== 2) {
      throw new TypeError(`${what} must be an int32 tensor [batch, seq_len], got ${ids.dtype} [${ids.shape.join(', ')}]`);
    }
    if (ids.device !== this.device) {
      throw new Error(`${what} is on ${ids.device} but the model is on ${this.device}: move it with .to('${this.device}')`);
    }
    const [B, T] = ids.shape as [number, number];
    if (T > this.config.max_seq_len) {
      throw new RangeError(`${what} has ${T} positions, more than max_seq_len ${this.config.max_seq_len}`);
    }
    return [B, T];
  }

  private embedTokens(ids: Tensor, slot: string): Tensor {
    const [B, T] = ids.shape as [number, number];
    const x = this.embed.forward(ids, slot);
    if (this.positions) {
      const C = this.config.d_model;
      ops.biasAdd(x.reshape([B, T * C]), this.positions.narrow(0, T).reshape([T * C]));
    }
    return x;
  }

  /**
   * Logits [B, T, vocab] for decoder inputs `ids` [B, T] (int32), and for encoder-decoder models the encoder's
   * input `encoderIds` [B, S]. The returned tensor is a reused buffer: read or copy it before the next call.
   */
  forward(ids: Tensor, encoderIds: Tensor | null = null): Tensor {
    this.assertIdle('forward');
    this.checkIds(ids, 'ids');
    let context: Tensor | null = null;
    if (this.encoder) {
      if (encoderIds === null) throw new Error('an encoder-decoder model needs encoderIds');
      this.checkIds(encoderIds, 'encoderIds');
      context = this.encoder.forward(this.embedTokens(encoderIds, 'encoder'), null);
    }
    this.encoderOut = context;
    const h = this.decoder.forward(this.embedTokens(ids, 'decoder'), context);
    return this.lmHead.forward(h);
  }

  /**
   * Starts an incremental decode for `batch` sequences. Encoder-decoder models take the encoder input [B, S] here;
   * it is encoded once. Caches start at `capacity` positions and grow as needed.
   */
  startDecode(batch: number, encoderIds: Tensor | null = null, capacity = 64): DecodeState {
    this.assertIdle('startDecode');
    let context: Tensor | null = null;
    if (this.encoder) {
      if (encoderIds === null) throw new Error('an encoder-decoder model needs encoderIds to decode');
      const [B] = this.checkIds(encoderIds, 'encoderIds');
      if (B !== batch) throw new RangeError(`encoderIds has batch ${B}, expected ${batch}`);
      const out = this.encoder.forward(this.embedTokens(encoderIds, 'encoder'), null);
      context = Tensor.zeros(out.shape, this.dtype, this.device);
      ops.copy(context, out);
    }
    const self = this.decoder.layers.map((l) => l.attn.createCache(batch, capacity));
    const cross = this.encoder ? this.decoder.layers.map((l) => l.crossAttn!.createCache(batch, context!.shape[1]!)) : [];
    return {
      batch,
      self,
      cross,
      context,
      position: 0,
      dispose(): void {
        for (const c of [...self, ...cross]) c.dispose();
        context?.dispose();
      },
    };
  }

  /**
   * Feeds the next tokens ids [B, Tn] (int32) through the decoder with the caches of `state`, and returns the logits
   * of the last position, [B, vocab] (a reused buffer). Only that position goes through the output layer.
   */
  decode(ids: Tensor, state: DecodeState): Tensor {
    this.assertIdle('decode');
    const [B, T] = this.checkIds(ids, 'ids');
    if (B !== state.batch) throw new RangeError(`ids has batch ${B}, the decode state ${state.batch}`);
    if (state.position + T > this.config.max_seq_len) {
      throw new RangeError(`decoding past max_seq_len ${this.config.max_seq_len} (at position ${state.position} + ${T})`);
    }
    const C = this.config.d_model;
    const x = this.embed.forward(ids, 'decode');
    if (this.positions) {
      ops.biasAdd(x.reshape([B, T * C]), this.positions.narrow(state.position, T).reshape([T * C]));
    }
    let h = x;
    this.decoder.layers.forEach((layer, i) => {
      h = layer.forwardCached(h, state.self[i]!, state.cross[i] ?? null, state.context);
    });
    state.position += T;
    // Only the last position needs logits: gather it, then norm and project [B, C].
    return this.lmHead.forward(this.decoder.norm.forward(this.lastPosition(h, B, T)));
  }

  /** Rows [B, C] holding position T − 1 of h [B, T, C] (a view when T = 1, else a gather). */
  private lastPosition(h: Tensor, B: number, T: number): Tensor {
    const C = this.config.d_model;
    if (T === 1) return h.reshape([B, C]);
    const index = this.buffers.get(`last_index_${T}`, [B], 'int32');
    index.copyFrom(Int32Array.from({ length: B }, (_, b) => b * T + T - 1));
    const out = this.buffers.get('last', [B, C], this.dtype);
    ops.embeddingForward(out, index, h.reshape([B * T, C])); // a row gather
    return out;
  }

  /** Backward from dlogits [B, T, vocab]; adds every parameter's gradient. */
  backward(dlogits: Tensor): void {
    this.assertIdle('backward');
    const dh = this.lmHead.backward(dlogits);
    let dContext: Tensor | null = null;
    if (this.encoder && this.encoderOut) dContext = this.buffers.zeros('dcontext', this.encoderOut.shape, this.dtype);
    const dx = this.decoder.backward(dh, dContext);
    this.embed.backward(dx, 'decoder');
    if (this.encoder && dContext) this.embed.backward(this.encoder.backward(dContext, null), 'encoder');
  }

  /** The mixture-of-experts feed-forward layers (encoder first), for their auxiliary losses and statistics. */
  moeLayers(): MoE[] {
    const layers = [...(this.encoder?.layers ?? []), ...this.decoder.layers];
    return layers.flatMap((b) => (b.ffn instanceof MoE ? [b.ffn] : []));
  }

  /** Weighted auxiliary losses of the MoE layers from the last forward (load balancing and z-loss). */
  auxLoss(): number {
    let sum = 0;
    for (const m of this.moeLayers()) sum += m.auxLoss();
    return sum;
  }

  /** Per MoE layer, the fraction of routed slots each expert received in the last forward (empty for dense models). */
  expertLoad(): number[][] {
    return this.moeLayers().map((m) => m.stats().loadFraction);
  }

  /**
   * One forward and backward on a batch: mean cross-entropy of `targets` (int32 [B, T]; targets equal to -100 are
   * ignored), gradients added into every parameter's grad (scaled by gradScale, for gradient accumulation).
   */
  lossAndGrad(ids: Tensor, targets: Tensor, encoderIds: Tensor | null = null, gradScale = 1): LossResult {
    const r = this.lossAndGradScalars(ids, targets, encoderIds, gradScale);
    return { loss: r.loss.value, auxLoss: r.auxLosses.reduce((a, s) => a + s.value, 0) };
  }

  /** lossAndGrad with the losses as Scalars, so that it can be recorded (runAsync) and read after the run. */
  lossAndGradScalars(ids: Tensor, targets: Tensor, encoderIds: Tensor | null = null, gradScale = 1): LossScalars {
    const logits = this.forward(ids, encoderIds);
    this.checkTargets(targets, ids);
    const V = this.config.vocab_size;
    const flat = logits.reshape([ids.numel, V]);
    // dlogits overwrite the logits in place: the [B·T, 50254] buffer is the largest of the step.
    const loss = scalar(() => ops.crossEntropyForwardBackward(flat, null, flat, targets.reshape([ids.numel]), { gradScale }));
    const auxLosses = this.moeLayers().map((m) => m.auxLossScalar());
    for (const m of this.moeLayers()) m.auxGradScale = gradScale;
    this.backward(logits);
    return { loss, auxLosses };
  }

  /** Mean cross-entropy without gradients (evaluation). */
  loss(ids: Tensor, targets: Tensor, encoderIds: Tensor | null = null): number {
    return this.lossScalar(ids, targets, encoderIds).value;
  }

  /** loss() as a Scalar, so that it can be recorded (runAsync) and read after the run. */
  lossScalar(ids: Tensor, targets: Tensor, encoderIds: Tensor | null = null): Scalar {
    const logits = this.forward(ids, encoderIds);
    this.checkTargets(targets, ids);
    const V = this.config.vocab_size;
    return scalar(() => ops.crossEntropyForwardBackward(null, null, logits.reshape([ids.numel, V]), targets.reshape([ids.numel])));
  }

  private checkTargets(targets: Tensor, ids: Tensor): void {
    if (typeof targets !== 'object' || targets === null || targets.dtype !== 'int32' || targets.numel !== ids.numel) {
      throw new TypeError(`targets must be int32 with the shape of ids [${ids.shape.join(', ')}]`);
    }
  }

  /** Sinusoidal positions go with the weights. */
  protected override moveState(device: Device): void {
    if (this.positions) this.positions = moveTensor(this.positions, device);
    this.encoderOut = null;
  }

  override dispose(): void {
    this.isDisposed = true;
    this.positions?.dispose();
    super.dispose();
  }
}
