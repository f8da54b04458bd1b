/**
 * Model configuration: the JSON a user writes (snake_case, as config.json beside a checkpoint), validated with one
 * message format, with every default filled in. `validateConfig` is the only way a config enters the library.
 */
import { clip, preview } from '../io/preview';

export type Architecture = 'decoder' | 'encoder-decoder';
export type EmbeddingKind = 'learned' | 'wavelet';
export type WaveletMode = 'frozen' | 'raw' | 'table';
export type Positional = 'rope' | 'sinusoidal' | 'none';
export type NormKind = 'rmsnorm' | 'layernorm';
export type NormPosition = 'pre' | 'post';
export type FfnKind = 'dense' | 'moe';
export type Activation = 'relu' | 'gelu' | 'swiglu';
/** softmax_topk: softmax over all experts, then the top k (design rule); topk_softmax: top k logits, then softmax (Mixtral). */
export type RouterRule = 'softmax_topk' | 'topk_softmax';

export interface WaveletConfig {
  /** Random reals per token before the transform. */
  raw_dim: number;
  haar_levels: number;
  /** cmorB-C: bandwidth B and centre frequency C. */
  bandwidth: number;
  center: number;
  scales: number[];
  /** frozen: fixed table; raw: train the raw reals through the fixed linear transform; table: train the table. */
  mode: WaveletMode;
  seed: number;
}

export interface ModelConfig {
  architecture: Architecture;
  vocab_size: number;
  d_model: number;
  n_layers: number;
  /** Encoder layers (encoder-decoder only). */
  n_encoder_layers: number;
  n_heads: number;
  /** Key/value heads (grouped-query attention when fewer than n_heads). */
  n_kv_heads: number;
  embedding: EmbeddingKind;
  wavelet: WaveletConfig;
  positional: Positional;
  rope_theta: number;
  norm: NormKind;
  norm_position: NormPosition;
  norm_eps: number;
  /** Keys a query may see, counting itself; null: all earlier positions. */
  sliding_window: number | null;
  ffn: FfnKind;
  activation: Activation;
  d_ff: number;
  n_experts: number;
  top_k: number;
  router: RouterRule;
  /** Renormalise the k mixing weights to sum to 1 (softmax_topk only). */
  router_renormalize: boolean;
  /** Switch/GShard load-balancing loss coefficient. */
  aux_loss_coef: number;
  router_z_loss_coef: number;
  /** Expert capacity = ceil(capacity_factor · tokens · top_k / n_experts); null: dropless. */
  capacity_factor: number | null;
  attention_bias: boolean;
  ffn_bias: boolean;
  router_bias: boolean;
  lm_head_bias: boolean;
  tie_embeddings: boolean;
  max_seq_len: number;
}

export const WAVELET_DEFAULTS: WaveletConfig = {
  raw_dim: 256,
  haar_levels: 4,
  bandwidth: 1.5,
  center: 1.0,
  scales: [2],
  mode: 'frozen',
  seed: 0,
};

const DEFAULTS: Omit<ModelConfig, 'vocab_size' | 'd_model' | 'n_layers' | 'n_heads'> = {
  architecture: 'decoder',
  n_encoder_layers: 0,
  n_kv_heads: 0, // 0: same as n_heads
  embedding: 'learned',
  wavelet: WAVELET_DEFAULTS,
  positional: 'rope',
  rope_theta: 10000,
  norm: 'rmsnorm',
  norm_position: 'pre',
  norm_eps: 1e-5,
  sliding_window: null,
  ffn: 'dense',
  activation: 'swiglu',
  d_ff: 0, // 0: 4 · d_model
  n_experts: 8,
  top_k: 2,
  router: 'softmax_topk',
  router_renormalize: false,
  aux_loss_coef: 0.01,
  router_z_loss_coef: 0.001,
  capacity_factor: null,
  attention_bias: false,
  ffn_bias: false,
  router_bias: false,
  lm_head_bias: true,
  tie_embeddings: false,
  max_seq_len: 1024,
};

const KNOWN_KEYS = new Set<string>([...Object.keys(DEFAULTS), 'vocab_size', 'd_model', 'n_layers', 'n_heads', 'bias']);

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Channels the wavelet embedding produces: (raw_dim / 2^levels) complex values per scale, as (re, im) pairs. */
export function waveletChannels(w: WaveletConfig): number {
  return 2 * (w.raw_dim >> w.haar_levels) * w.scales.length;
}

/** Validates a user config and fills in defaults. `where` names its source in errors (a file path, a preset). */
export function validateConfig(input: unknown, where = 'config'): ModelConfig {
  const fail = (msg: string): never => {
    throw new ConfigError(`${where}: ${msg}`);
  };
  if (typeof input !== 'object' || input === null || Array.isArray(input)) fail('must be a JSON object');
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!KNOWN_KEYS.has(key)) fail(`unknown key '${clip(key)}'${suggest(key)}`);
  }

  const int = (key: string, lo: number, hi = Number.MAX_SAFE_INTEGER, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (v === undefined) fail(`'${key}' is required`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
      fail(`'${key}' must be an integer in [${lo}, ${hi}], got ${preview(v)}`);
    }
    return v as number;
  };
  const num = (key: string, lo: number, hi: number, fallback: number, open = false): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (open && v === lo)) {
      fail(`'${key}' must be a number in ${open ? '(' : '['}${lo}, ${hi}], got ${preview(v)}`);
    }
    return v as number;
  };
  const oneOf = <T extends string>(key: string, options: readonly T[], fallback: T): T => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'string' || !options.includes(v as T)) {
      fail(`'${key}' must be one of ${options.map((o) => `'${o}'`).join(', ')}, got ${preview(v)}`);
    }
    return v as T;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'boolean') fail(`'${key}' must be true or false, got ${preview(v)}`);
    return v as boolean;
  };

  const bias = raw.bias === undefined ? undefined : bool('bias', false);
  const architecture = oneOf('architecture', ['decoder', 'encoder-decoder'] as const, DEFAULTS.architecture);
  const d_model = int('d_model', 1, 65536);
  const n_heads = int('n_heads', 1, 1024);
  if (d_model % n_heads !== 0) fail(`'d_model' (${d_model}) must be divisible by 'n_heads' (${n_heads})`);
  const n_kv_heads = int('n_kv_heads', 0, n_heads, DEFAULTS.n_kv_heads) || n_heads;
  if (n_heads % n_kv_heads !== 0) fail(`'n_heads' (${n_heads}) must be divisible by 'n_kv_heads' (${n_kv_heads})`);
  const positional = oneOf('positional', ['rope', 'sinusoidal', 'none'] as const, DEFAULTS.positional);
  if (positional === 'rope' && (d_model / n_heads) % 2 !== 0) {
    fail(`RoPE rotates pairs of channels: the head size d_model / n_heads = ${d_model / n_heads} must be even`);
  }
  if (positional === 'sinusoidal' && d_model % 2 !== 0) fail(`sinusoidal positions need an even 'd_model'`);
  const ffn = oneOf('ffn', ['dense', 'moe'] as const, DEFAULTS.ffn);
  const n_experts = int('n_experts', 1, 1024, DEFAULTS.n_experts);
  const top_k = int('top_k', 1, n_experts, Math.min(DEFAULTS.top_k, n_experts));
  const embedding = oneOf('embedding', ['learned', 'wavelet'] as const, DEFAULTS.embedding);
  const wavelet = validateWavelet(raw.wavelet, fail);
  if (embedding === 'wavelet' && waveletChannels(wavelet) !== d_model) {
    fail(`the wavelet embedding gives ${waveletChannels(wavelet)} channels per token; 'd_model' must equal it, got ${d_model}`);
  }
  const capacity = raw.capacity_factor ?? null;
  if (capacity !== null && (typeof capacity !== 'number' || !Number.isFinite(capacity) || capacity <= 0)) {
    fail(`'capacity_factor' must be a positive number or null, got ${preview(capacity)}`);
  }
  const window = raw.sliding_window ?? null;
  // A safe integer (fuzzing, issue #14: 1e308 validated, and the attention kernel refused it at the first forward).
  if (window !== null && (typeof window !== 'number' || !Number.isSafeInteger(window) || window < 1)) {
    fail(`'sliding_window' must be a positive integer or null, got ${preview(window)}`);
  }

  const config: ModelConfig = {
    architecture,
    vocab_size: int('vocab_size', 2, 1 << 24),
    d_model,
    n_layers: int('n_layers', 1, 1024),
    n_encoder_layers: architecture === 'encoder-decoder' ? int('n_encoder_layers', 1, 1024, 0) : int('n_encoder_layers', 0, 0, 0),
    n_heads,
    n_kv_heads,
    embedding,
    wavelet,
    positional,
    rope_theta: num('rope_theta', 0, 1e12, DEFAULTS.rope_theta, true),
    norm: oneOf('norm', ['rmsnorm', 'layernorm'] as const, DEFAULTS.norm),
    norm_position: oneOf('norm_position', ['pre', 'post'] as const, DEFAULTS.norm_position),
    norm_eps: num('norm_eps', 0, 1, DEFAULTS.norm_eps, true),
    sliding_window: window as number | null,
    ffn,
    activation: oneOf('activation', ['relu', 'gelu', 'swiglu'] as const, DEFAULTS.activation),
    d_ff: int('d_ff', 0, 1 << 20, DEFAULTS.d_ff) || 4 * d_model,
    n_experts,
    top_k,
    router: oneOf('router', ['softmax_topk', 'topk_softmax'] as const, DEFAULTS.router),
    router_renormalize: bool('router_renormalize', DEFAULTS.router_renormalize),
    aux_loss_coef: num('aux_loss_coef', 0, 1e3, DEFAULTS.aux_loss_coef),
    router_z_loss_coef: num('router_z_loss_coef', 0, 1e3, DEFAULTS.router_z_loss_coef),
    capacity_factor: capacity as number | null,
    attention_bias: bool('attention_bias', bias ?? DEFAULTS.attention_bias),
    ffn_bias: bool('ffn_bias', bias ?? DEFAULTS.ffn_bias),
    router_bias: bool('router_bias', bias ?? DEFAULTS.router_bias),
    lm_head_bias: bool('lm_head_bias', bias ?? DEFAULTS.lm_head_bias),
    tie_embeddings: bool('tie_embeddings', DEFAULTS.tie_embeddings),
    max_seq_len: int('max_seq_len', 1, 1 << 20, DEFAULTS.max_seq_len),
  };
  if (config.tie_embeddings && config.embedding !== 'learned') fail(`'tie_embeddings' needs the learned embedding`);
  return config;
}

/**
 * A lower bound on the number of parameters a model built from `c` holds (its weight matrices; norms and biases not
 * counted), from the config alone. Loaders compare it with the weights file before building the model, so a
 * config.json that claims a huge model with a small model.safetensors is an error rather than a huge allocation
 * (fuzzing, issue #14).
 */
export function minParameterCount(c: ModelConfig): number {
  const C = c.d_model;
  const kvDim = (C / c.n_heads) * c.n_kv_heads;
  const attention = 2 * C * C + 2 * C * kvDim; // wq, wo; wk, wv
  const matrices = c.activation === 'swiglu' ? 3 : 2; // w1, w2 (, w3)
  const ffn = c.ffn === 'moe' ? c.n_experts * (matrices * C * c.d_ff + C) : matrices * C * c.d_ff; // (+ gate rows)
  const embed = c.embedding === 'wavelet' && c.wavelet.mode === 'raw' ? c.vocab_size * c.wavelet.raw_dim : c.vocab_size * C;
  const head = c.tie_embeddings ? 0 : C * c.vocab_size;
  const decoderLayer = (c.architecture === 'encoder-decoder' ? 2 : 1) * attention + ffn; // + cross-attention
  return embed + head + c.n_layers * decoderLayer + c.n_encoder_layers * (attention + ffn);
}

function validateWavelet(v: unknown, fail: (msg: string) => never): WaveletConfig {
  if (v === undefined) return { ...WAVELET_DEFAULTS };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`'wavelet' must be an object`);
  const w = { ...WAVELET_DEFAULTS, ...(v as Partial<WaveletConfig>) };
  for (const key of Object.keys(v as object)) {
    // Own keys only (fuzzing, issue #14: 'toString' and '__proto__' are `in` every object, and were kept in the config).
    if (!Object.prototype.hasOwnProperty.call(WAVELET_DEFAULTS, key)) fail(`unknown key '${clip(`wavelet.${key}`)}'`);
  }
  // Safe integers, and raw_dim at most 2^20 (fuzzing, issue #14: raw_dim 2^64 passed, and waveletChannels' 32-bit
  // shift wrapped 2^32 + 1024 to 1024 channels, so a config asking for 4-billion-wide tables validated; the native
  // random generator refuses seeds past 2^53).
  const isInt = (x: unknown, lo: number, hi = Number.MAX_SAFE_INTEGER): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= lo && x <= hi;
  if (!isInt(w.raw_dim, 1, 1 << 20)) fail(`'wavelet.raw_dim' must be an integer in [1, ${1 << 20}]`);
  if (!isInt(w.haar_levels, 0) || w.raw_dim % 2 ** w.haar_levels !== 0) {
    fail(`'wavelet.haar_levels' must be an integer >= 0 with raw_dim (${w.raw_dim}) divisible by 2^levels`);
  }
  for (const key of ['bandwidth', 'center'] as const) {
    if (typeof w[key] !== 'number' || !Number.isFinite(w[key]) || w[key] <= 0) fail(`'wavelet.${key}' must be a positive number`);
  }
  if (!Array.isArray(w.scales) || w.scales.length === 0 || !w.scales.every((s) => typeof s === 'number' && Number.isFinite(s) && s > 0)) {
    fail(`'wavelet.scales' must be a non-empty array of positive numbers`);
  }
  if (!['frozen', 'raw', 'table'].includes(w.mode)) fail(`'wavelet.mode' must be one of 'frozen', 'raw', 'table'`);
  if (!isInt(w.seed, 0)) fail(`'wavelet.seed' must be a non-negative integer`);
  return w;
}

function suggest(key: string): string {
  const lower = key.toLowerCase().replace(/[^a-z]/g, '');
  for (const known of KNOWN_KEYS) {
    if (known.replace(/_/g, '') === lower) return ` (did you mean '${known}'?)`;
  }
  return '';
}
