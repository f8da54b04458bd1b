/**
 * Multi-head attention: projections wq, wk, wv, wo; RoPE on q and k (optional); the fused attention kernel
 * (causal, sliding window, none, or cross-attention over another sequence); grouped-query heads when
 * nKvHeads < nHeads. Activations are [B, T, C]; the kernel works on [B, H, T, D].
 */
import { KVCache } from '../generate/kv_cache';
import { ops } from '../ops';
import type { Tensor } from '../tensor';
import { Linear } from './linear';
import { Module } from './module';

export interface AttentionOptions {
  dModel: number;
  nHeads: number;
  nKvHeads: number;
  bias: boolean;
  /** 'causal' for decoder self-attention, 'none' for encoder self-attention and cross-attention. */
  mask: 'causal' | 'none';
  slidingWindow: number | null;
  /** Rotary positions on q and k (self-attention only). */
  rope: { theta: number } | null;
  dtype: 'float32' | 'float64';
}

interface Saved {
  B: number;
  T: number;
  S: number; // key length
  q: Tensor; // [B, H, T, D] after RoPE
  k: Tensor; // [B, Hkv, S, D]
  v: Tensor;
  o: Tensor; // [B, H, T, D]
  lse: Tensor; // [B, H, T]
}

export class Attention extends Module {
  readonly wq: Linear;
  readonly wk: Linear;
  readonly wv: Linear;
  readonly wo: Linear;
  readonly headDim: number;
  private saved: Saved | null = null;

  constructor(
    name: string,
    readonly opts: AttentionOptions,
  ) {
    super();
    const { dModel, nHeads, nKvHeads, bias, dtype } = opts;
    this.headDim = dModel / nHeads;
    const kvDim = nKvHeads * this.headDim;
    this.wq = this.addModule(new Linear(`${name}.wq`, dModel, dModel, bias, dtype));
    this.wk = this.addModule(new Linear(`${name}.wk`, dModel, kvDim, bias, dtype));
    this.wv = this.addModule(new Linear(`${name}.wv`, dModel, kvDim, bias, dtype));
    this.wo = this.addModule(new Linear(`${name}.wo`, dModel, dModel, bias, dtype));
  }

  init(seed: number, outStd: number): void {
    this.wq.init(seed + 1, 0.02);
    this.wk.init(seed + 2, 0.02);
    this.wv.init(seed + 3, 0.02);
    this.wo.init(seed + 4, outStd);
  }

  private kernelOptions(): { mask: 'causal' | 'none' | 'sliding_window'; window?: number } {
    const { mask, slidingWindow } = this.opts;
    if (mask === 'causal' && slidingWindow !== null) return { mask: 'sliding_window', window: slidingWindow };
    return { mask };
  }

  /** [B, T, H·D] → [B, H, T, D], with RoPE (positions from posOffset) applied first when configured. */
  private toHeads(key: string, x: Tensor, B: number, T: number, H: number, rope: boolean, posOffset = 0): Tensor {
    const D = this.headDim;
    const x4 = x.reshape([B, T, H, D]);
    if (rope && this.opts.rope) ops.ropeForward(x4, x4, this.opts.rope.theta, posOffset);
    const out = this.buffers.get(key, [B, H, T, D], x.dtype);
    ops.permute0213(out, x4);
    return out;
  }

  /** x: [B, T, C]; context (cross-attention): [B, S, C], else x itself. */
  forward(x: Tensor, context: Tensor | null = null): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const kvIn = context ?? x;
    const S = kvIn.shape[1]!;
    const { nHeads: H, nKvHeads: Hkv } = this.opts;
    const q = this.toHeads('q', this.wq.forward(x), B, T, H, true);
    const k = this.toHeads('k', this.wk.forward(kvIn), B, S, Hkv, true);
    const v = this.toHeads('v', this.wv.forward(kvIn), B, S, Hkv, false);
    const o = this.buffers.get('o', [B, H, T, this.headDim], x.dtype);
    const lse = this.buffers.get('lse', [B, H, T], x.dtype);
    ops.attentionForward(o, lse, q, k, v, this.kernelOptions());
    const merged = this.buffers.get('merged', [B, T, H, this.headDim], x.dtype);
    ops.permute0213(merged, o);
    this.saved = { B, T, S, q, k, v, o, lse };
    return this.wo.forward(merged.reshape([B, T, C]));
  }

  /** A KV cache sized for this layer's keys and values. */
  createCache(batch: number, capacity: number): KVCache {
    return new KVCache({
      batch,
      kvHeads: this.opts.nKvHeads,
      headDim: this.headDim,
      dtype: this.opts.dtype,
      capacity,
      device: this.device,
    });
  }

  /**
   * Inference with a KV cache: x [B, Tn, C] are the positions after the cache's current length. Self-attention
   * appends their keys and values to `cache`; cross-attention (when `context` is given) fills `cache` once with the
   * context's keys and values and reuses them. No state for backward is kept.
   */
  forwardCached(x: Tensor, cache: KVCache, context: Tensor | null = null): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const { nHeads: H, nKvHeads: Hkv } = this.opts;
    const pos = context ? 0 : cache.length;
    const q = this.toHeads('q', this.wq.forward(x), B, T, H, true, pos);
    if (context) {
      if (cache.length === 0) {
        const S = context.shape[1]!;
        const k = this.toHeads('k', this.wk.forward(context), B, S, Hkv, false);
        const v = this.toHeads('v', this.wv.forward(context), B, S, Hkv, false);
        cache.append(k, v);
      }
    } else {
      const k = this.toHeads('k', this.wk.forward(x), B, T, Hkv, true, pos);
      const v = this.toHeads('v', this.wv.forward(x), B, T, Hkv, false);
      cache.append(k, v);
    }
    const o = this.buffers.get('o', [B, H, T, this.headDim], x.dtype);
    cache.attend(o, q, context ? { mask: 'none' } : { ...this.kernelOptions(), qOffset: pos });
    const merged = this.buffers.get('merged', [B, T, H, this.headDim], x.dtype);
    ops.permute0213(merged, o);
    return this.wo.forward(merged.reshape([B, T, C]));
  }

  /** Returns dx, and adds the context's gradient into dContext when given (cross-attention). */
  backward(dout: Tensor, dContext: Tensor | null = null): Tensor {
    const s = this.saved;
    if (s === null) throw new Error('Attention.backward called before forward');
    const { B, T, S } = s;
    const { nHeads: H, nKvHeads: Hkv } = this.opts;
    const D = this.headDim;
    const dtype = dout.dtype;
    const dMerged = this.wo.backward(dout).reshape([B, T, H, D]);
    const dO = this.buffers.get('dO', [B, H, T, D], dtype);
    ops.permute0213(dO, dMerged);
    const dQ = this.buffers.zeros('dQ', [B, H, T, D], dtype);
    const dK = this.buffers.zeros('dK', [B, Hkv, S, D], dtype);
    const dV = this.buffers.zeros('dV', [B, Hkv, S, D], dtype);
    ops.attentionBackward(dQ, dK, dV, dO, s.q, s.k, s.v, s.o, s.lse, this.kernelOptions());
    const fromHeads = (key: string, g: Tensor, len: number, heads: number, rope: boolean): Tensor => {
      const out = this.buffers.get(key, [B, len, heads, D], dtype);
      ops.permute0213(out, g);
      if (rope && this.opts.rope) {
        const back = this.buffers.zeros(`${key}_rope`, [B, len, heads, D], dtype);
        ops.ropeBackward(back, out, this.opts.rope.theta, 0);
        return back.reshape([B, len, heads * D]);
      }
      return out.reshape([B, len, heads * D]);
    };
    const dxq = this.wq.backward(fromHeads('dq_flat', dQ, T, H, true));
    const dx = this.buffers.get('dx', [B, T, H * D], dtype);
    ops.copy(dx, dxq);
    const dKin = this.wk.backward(fromHeads('dk_flat', dK, S, Hkv, true));
    const target = dContext ?? dx;
    ops.add(target, target, dKin);
    const dVin = this.wv.backward(fromHeads('dv_flat', dV, S, Hkv, false));
    ops.add(target, target, dVin);
    return dx;
  }
}
