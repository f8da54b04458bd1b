/**
 * Sparsely gated mixture-of-experts feed-forward: a router picks top_k of n_experts experts per token, each expert
 * is a SwiGLU or two-layer ReLU/GELU FFN, and the outputs are mixed by the router's weights. One native call per
 * forward (`moeForward`) and one per backward (`moeBackward`); see lib/native/types/moe.ts for the math.
 *
 * Each expert matrix is stored as ONE [E, ...] tensor (what the kernels read); the per-expert Parameters
 * (`{name}.experts.{e}.w1.weight`, ...) are views into it, for value and grad alike, so the optimizer and
 * checkpoints see PyTorch-style per-expert names without copies.
 */
import { ops, Scalar, scalar } from '../ops';
import { Tensor } from '../tensor';
import type { Device } from '../native';
import type { MoeGrads, MoeOptions, MoeParams, MoeSaved, MoeWork } from '../native/types/moe';
import { Module, moveTensor } from './module';
import { Parameter } from './parameter';

export interface MoEConfig {
  dModel: number;
  /** Hidden width of each expert. */
  dFf: number;
  nExperts: number;
  topK: number;
  router: 'softmax_topk' | 'topk_softmax';
  /** Renormalise the k mixing weights to sum to 1 (softmax_topk). */
  renormalize: boolean;
  activation: 'swiglu' | 'relu' | 'gelu';
  /** Expert biases b1, b2 (and b3). */
  bias: boolean;
  /** Router bias. */
  routerBias: boolean;
  /** null: dropless. */
  capacityFactor: number | null;
  auxLossCoef: number;
  zLossCoef: number;
  dtype: 'float32' | 'float64';
}

/** Routing statistics of the last forward, for logging. */
export interface MoEStats {
  tokens: number;
  /** (token, slot) pairs routed to each expert, before capacity drops. */
  counts: number[];
  /** Pairs each expert dropped (over capacity). */
  dropped: number[];
  /** counts / (tokens · top_k): the f_e of the load-balancing loss. */
  loadFraction: number[];
  /** Unweighted load-balancing loss E · Σ f_e · P_e. */
  loadBalancingLoss: number;
  /** Unweighted router z-loss. */
  zLoss: number;
  /** The weighted sum of both: what auxLoss() returns. */
  auxLoss: number;
}

type Matrix = 'w1' | 'w2' | 'w3';
type Block = { value: Tensor; grad: Tensor };

export class MoE extends Module {
  readonly gateWeight: Parameter;
  readonly gateBias: Parameter | null;
  /** Scale of the auxiliary losses' gradients (the trainer sets it to its gradient-accumulation scale). */
  auxGradScale = 1;
  private readonly blocks = new Map<string, Block>();
  /** Each expert parameter as a view of its block: rebuilt when the blocks move (moveState). */
  private readonly views: Array<{ param: Parameter; key: string; e: number; shape: number[] }> = [];
  private params!: MoeParams;
  private grads!: MoeGrads;
  private readonly opts: MoeOptions;
  private input: Tensor | null = null;
  private saved: MoeSaved | null = null;
  /** The weighted auxiliary loss of the last forward (set when its run completes if the forward was recorded). */
  private lastAux = new Scalar(0);

  constructor(
    name: string,
    readonly config: MoEConfig,
  ) {
    super();
    const { dModel: D, dFf: F, nExperts: E, topK, dtype } = config;
    if (!Number.isInteger(E) || E < 1) throw new RangeError(`MoE ${name}: nExperts must be a positive integer, got ${E}`);
    if (!Number.isInteger(topK) || topK < 1 || topK > E) {
      throw new RangeError(`MoE ${name}: topK must be an integer in [1, ${E}], got ${topK}`);
    }
    this.gateWeight = this.addParameter(Parameter.create(`${name}.gate.weight`, [E, D], dtype));
    this.gateBias = config.routerBias ? this.addParameter(Parameter.create(`${name}.gate.bias`, [E], dtype)) : null;
    const glu = config.activation === 'swiglu';
    const shapes: [Matrix, number[]][] = [['w1', [F, D]], ['w2', [D, F]], ...(glu ? [['w3', [F, D]] as [Matrix, number[]]] : [])];
    for (let e = 0; e < E; e++) {
      for (const [m, shape] of shapes) {
        this.expertParameter(`${name}.experts.${e}.${m}.weight`, m, e, shape);
        if (config.bias) this.expertParameter(`${name}.experts.${e}.${m}.bias`, `b${m.slice(1)}`, e, [shape[0]!]);
      }
    }
    this.bindTensors();
    this.opts = {
      topK,
      router: config.router,
      renormalize: config.renormalize,
      activation: config.activation,
      capacityFactor: config.capacityFactor,
      auxLossCoef: config.auxLossCoef,
      zLossCoef: config.zLossCoef,
    };
  }

  /** Registers expert e's view of block `key` ([E, ...shape], created on first use) as a Parameter. */
  private expertParameter(name: string, key: string, e: number, shape: number[]): void {
    const { nExperts: E, dtype } = this.config;
    let b = this.blocks.get(key);
    if (b === undefined) {
      b = { value: Tensor.zeros([E, ...shape], dtype), grad: Tensor.zeros([E, ...shape], dtype) };
      this.blocks.set(key, b);
    }
    const view = (t: Tensor): Tensor => t.narrow(e, 1).reshape(shape);
    const param = this.addParameter(new Parameter(name, view(b.value), view(b.grad)));
    this.views.push({ param, key, e, shape });
  }

  /** The kernel's view of the weights and gradients: the blocks and the gate, as they are now. */
  private bindTensors(): void {
    const value = (key: string): Tensor | null => this.blocks.get(key)?.value ?? null;
    const grad = (key: string): Tensor | null => this.blocks.get(key)?.grad ?? null;
    this.params = {
      gateWeight: this.gateWeight.value,
      gateBias: this.gateBias?.value ?? null,
      w1: value('w1')!,
      b1: value('b1'),
      w2: value('w2')!,
      b2: value('b2'),
      w3: value('w3'),
      b3: value('b3'),
    };
    this.grads = {
      gateWeight: this.gateWeight.grad,
      gateBias: this.gateBias?.grad ?? null,
      w1: grad('w1'),
      b1: grad('b1'),
      w2: grad('w2'),
      b2: grad('b2'),
      w3: grad('w3'),
      b3: grad('b3'),
    };
  }

  /** The expert blocks move whole; each expert parameter becomes a view of the moved block. */
  protected override moveState(device: Device, moved: Set<Parameter>): void {
    for (const b of this.blocks.values()) {
      b.value = moveTensor(b.value, device);
      b.grad = moveTensor(b.grad, device);
    }
    for (const { param, key, e, shape } of this.views) {
      const b = this.blocks.get(key)!;
      param.rebind(b.value.narrow(e, 1).reshape(shape), b.grad.narrow(e, 1).reshape(shape));
      moved.add(param);
    }
    for (const p of [this.gateWeight, this.gateBias]) {
      if (p) {
        p.moveTo(device);
        moved.add(p);
      }
    }
    this.input = null;
    this.saved = null;
    this.bindTensors();
  }

  /** w1, w3 and the gate N(0, 0.02), w2 N(0, outStd), biases 0 (as FeedForward). */
  init(seed: number, outStd: number): void {
    ops.randomNormal(this.gateWeight.value, seed, 0, 0.02);
    this.gateBias?.value.fill(0);
    for (const [key, b] of this.blocks) {
      if (key === 'w1') ops.randomNormal(b.value, seed + 1, 0, 0.02);
      else if (key === 'w3') ops.randomNormal(b.value, seed + 3, 0, 0.02);
      else if (key === 'w2') ops.randomNormal(b.value, seed + 2, 0, outStd);
      else b.value.fill(0);
    }
  }

  /** The saved tensors for N tokens (reused while N and the dtype are unchanged). */
  private savedFor(N: number, dtype: 'float32' | 'float64'): MoeSaved {
    const { dModel: D, dFf: F, nExperts: E, topK: k } = this.config;
    const P = N * k;
    const f = (key: string, shape: number[]): Tensor => this.buffers.get(`saved.${key}`, shape, dtype);
    const i = (key: string, shape: number[]): Tensor => this.buffers.get(`saved.${key}`, shape, 'int32');
    return {
      probs: f('probs', [N, E]),
      lse: f('lse', [N]),
      expert: i('expert', [N, k]),
      weight: f('weight', [N, k]),
      slotRow: i('slotRow', [N, k]),
      rowSlot: i('rowSlot', [P]),
      offsets: i('offsets', [E + 1]),
      counts: i('counts', [E]),
      xp: f('xp', [P, D]),
      a: f('a', [P, F]),
      b: this.config.activation === 'swiglu' ? f('b', [P, F]) : null,
      h: f('h', [P, F]),
      y: f('y', [P, D]),
      aux: this.buffers.get('saved.aux', [2], 'float64'),
    };
  }

  private workFor(N: number, dtype: 'float32' | 'float64'): MoeWork {
    const { dModel: D, dFf: F, nExperts: E, topK: k } = this.config;
    const f = (key: string, shape: number[]): Tensor => this.buffers.get(`work.${key}`, shape, dtype);
    return {
      dy: f('dy', [N * k, D]),
      dh: f('dh', [N * k, F]),
      da: f('da', [N * k, F]),
      db: this.config.activation === 'swiglu' ? f('db', [N * k, F]) : null,
      dweight: f('dweight', [N, k]),
      dlogits: f('dlogits', [N, E]),
    };
  }

  /** x: [..., d_model] → [..., d_model]. The result is a reused buffer. */
  forward(x: Tensor): Tensor {
    const D = this.config.dModel;
    const N = x.numel / D;
    const x2 = x.reshape([N, D]);
    const dtype = x.dtype as 'float32' | 'float64';
    const out = this.buffers.get('out', [N, D], dtype);
    const saved = this.savedFor(N, dtype);
    this.lastAux = scalar(() => ops.moeForward(out, saved, x2, this.params, this.opts));
    this.input = x2;
    this.saved = saved;
    return out.reshape(x.shape);
  }

  /** Adds the parameter gradients (including the auxiliary losses', scaled by auxGradScale) and returns dx. */
  backward(dout: Tensor): Tensor {
    const x = this.input;
    if (x === null || this.saved === null) throw new Error('MoE.backward called before forward');
    const [N, D] = x.shape as [number, number];
    const dtype = x.dtype as 'float32' | 'float64';
    const dx = this.buffers.zeros('dx', [N, D], dtype);
    ops.moeBackward(dx, this.grads, this.workFor(N, dtype), dout.reshape([N, D]), this.saved, x, this.params, {
      ...this.opts,
      auxGradScale: this.auxGradScale,
    });
    return dx.reshape(dout.shape);
  }

  /** The weighted auxiliary loss (load balancing + z-loss) of the last forward. */
  auxLoss(): number {
    return this.lastAux.value;
  }

  /** The same as a Scalar: inside runAsync, it holds the value once the run has completed. */
  auxLossScalar(): Scalar {
    return this.lastAux;
  }

  /** Routing statistics of the last forward, as plain numbers. */
  stats(): MoEStats {
    const s = this.saved;
    if (s === null || this.input === null) throw new Error('MoE.stats called before forward');
    const tokens = this.input.shape[0]!;
    const counts = Array.from(s.counts.toArray());
    const offsets = s.offsets.toArray();
    const aux = s.aux.toArray();
    const pairs = tokens * this.config.topK;
    return {
      tokens,
      counts,
      dropped: counts.map((c, e) => c - (offsets[e + 1]! - offsets[e]!)),
      loadFraction: counts.map((c) => (pairs > 0 ? c / pairs : 0)),
      loadBalancingLoss: aux[0]!,
      zLoss: aux[1]!,
      auxLoss: this.lastAux.value,
    };
  }

  override dispose(): void {
    for (const b of this.blocks.values()) {
      b.value.dispose();
      b.grad.dispose();
    }
    super.dispose();
  }
}
