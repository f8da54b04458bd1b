'use strict';
/**
 * One fuzz harness per parser of outside data (issue #14). `createHarnesses(lib, workDir)` takes the library's
 * functions (from dist/ for scripts/fuzz.js, from lib/ for the jest tests) and a scratch directory.
 *
 *   safetensors   readSafetensors(file)                       any safetensors file
 *   token_cache   readTokenFile(file, 1000)                   tokenized-data cache files
 *   config        validateConfig(JSON.parse(text), where)     config objects (and non-JSON text as a string)
 *   read_config   readConfig(dir)                             dir/config.json on disk
 *   checkpoint    loadModel(runDir) (resolveCheckpointDir, latest, config.json, model.safetensors,
 *                 trainer_state.json), then loadOptimizerState when optimizer.safetensors is there;
 *                 an input is an archive of the run directory (engine.encodeArchive)
 *   optimizer     loadOptimizerState(dir, optimizer, state)   optimizer.safetensors for a fixed tiny model
 *
 * Each harness: run(bytes) calls the parser on the input; sanity(value, bytes) judges a success (null when fine);
 * paths() lists the paths an error must name; mutate/arbitrary add structure-aware mutation and fast-check
 * generation to the engine's byte mutations.
 */
const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');
const E = require('./engine');

const VOCAB = 1000;
const ADAMW = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
const OPTIMIZER_STATE = { step: 3, optimizerStep: 3, options: {} };

/** The tiny models whose checkpoints seed the corpus (the optimizer harness loads into 'dense'). */
const TINY_CONFIGS = {
  dense: { vocab_size: 16, d_model: 8, n_layers: 1, n_heads: 2, d_ff: 8, max_seq_len: 16 },
  moe: { vocab_size: 16, d_model: 8, n_layers: 1, n_heads: 2, n_kv_heads: 1, ffn: 'moe', n_experts: 2, top_k: 1, activation: 'relu', d_ff: 4, router_bias: true, max_seq_len: 16 },
  wavelet: {
    vocab_size: 16, d_model: 16, n_layers: 1, n_heads: 2, d_ff: 8, embedding: 'wavelet', positional: 'none',
    wavelet: { raw_dim: 16, haar_levels: 1, bandwidth: 1.5, center: 1, scales: [1], mode: 'table', seed: 3 }, max_seq_len: 16,
  },
  seq2seq: {
    vocab_size: 16, d_model: 8, n_layers: 1, n_encoder_layers: 1, n_heads: 2, architecture: 'encoder-decoder', positional: 'sinusoidal',
    norm: 'layernorm', norm_position: 'post', activation: 'gelu', d_ff: 8, tie_embeddings: true, bias: true, max_seq_len: 16,
  },
};

const CONFIG_WORDS = [
  'architecture', 'vocab_size', 'd_model', 'n_layers', 'n_encoder_layers', 'n_heads', 'n_kv_heads', 'embedding', 'wavelet', 'positional',
  'rope_theta', 'norm', 'norm_position', 'norm_eps', 'sliding_window', 'ffn', 'activation', 'd_ff', 'n_experts', 'top_k', 'router',
  'router_renormalize', 'aux_loss_coef', 'router_z_loss_coef', 'capacity_factor', 'attention_bias', 'ffn_bias', 'router_bias',
  'lm_head_bias', 'tie_embeddings', 'max_seq_len', 'bias', 'raw_dim', 'haar_levels', 'bandwidth', 'center', 'scales', 'mode', 'seed',
  'decoder', 'encoder-decoder', 'learned', 'frozen', 'raw', 'table', 'rope', 'sinusoidal', 'none', 'rmsnorm', 'layernorm', 'pre', 'post',
  'dense', 'moe', 'relu', 'gelu', 'swiglu', 'softmax_topk', 'topk_softmax',
];
const STATE_WORDS = ['step', 'optimizerStep', 'options', 'task', 'numbers', 'lr', 'batch'];

function tag(x) {
  return Object.prototype.toString.call(x).slice(8, -1);
}

function isPlainObject(x) {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

function writeFresh(file, bytes) {
  // unlink first: truncating and rewriting a file is slow on ext4 (when the scratch directory is not on tmpfs)
  fs.rmSync(file, { force: true, recursive: true });
  fs.writeFileSync(file, bytes);
}

// ---------------------------------------------------------------------------------------------------------------
// Sanity checks of successful parses

const DTYPE_TAG = { F32: 'Float32Array', F64: 'Float64Array', I32: 'Int32Array' };

function safetensorsSanity(v, fileBytes) {
  if (!v || tag(v.tensors) !== 'Map') return 'tensors is not a Map';
  if (!isPlainObject(v.metadata)) return 'metadata is not an object';
  for (const k of Object.keys(v.metadata)) if (typeof v.metadata[k] !== 'string') return `metadata.${E.clip(k, 40)} is not a string`;
  let total = 0;
  for (const [name, t] of v.tensors) {
    if (name === '__metadata__') return '__metadata__ returned as a tensor';
    if (!DTYPE_TAG[t.dtype] || !Object.prototype.hasOwnProperty.call(DTYPE_TAG, t.dtype)) return `'${E.clip(name, 40)}' has dtype ${E.clip(t.dtype, 40)}`;
    if (!Array.isArray(t.shape)) return `'${E.clip(name, 40)}' shape is not an array`;
    let n = 1;
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) return `'${E.clip(name, 40)}' has dimension ${d}`;
      n *= d;
      // every partial product must be exact (as the reference implementation's checked multiplication): native code
      // multiplies dimensions in 64 bits
      if (!Number.isSafeInteger(n)) return `'${E.clip(name, 40)}' shape [${t.shape.join(', ')}] overflows`;
    }
    if (tag(t.data) !== DTYPE_TAG[t.dtype]) return `'${E.clip(name, 40)}' data is a ${tag(t.data)} for ${t.dtype}`;
    if (t.data.length !== n) return `'${E.clip(name, 40)}' has ${t.data.length} elements for shape [${t.shape.join(', ')}]`;
    total += t.data.byteLength;
  }
  if (total > fileBytes.length) return `tensors hold ${total} bytes, more than the ${fileBytes.length}-byte file`;
  return null;
}

function configSanity(lib, where, cfg, keys) {
  if (!isPlainObject(cfg)) return 'config is not an object';
  const got = Object.keys(cfg).sort().join(',');
  if (got !== keys.config) return `config keys ${E.clip(got, 200)}`;
  const int = (k, lo, hi) => Number.isSafeInteger(cfg[k]) && cfg[k] >= lo && cfg[k] <= hi;
  for (const [k, lo, hi] of [
    ['vocab_size', 2, 2 ** 24], ['d_model', 1, 65536], ['n_layers', 1, 1024], ['n_heads', 1, 1024], ['d_ff', 1, 2 ** 22],
    ['n_experts', 1, 1024], ['max_seq_len', 1, 2 ** 20], ['n_encoder_layers', 0, 1024],
  ]) {
    if (!int(k, lo, hi)) return `${k} = ${E.clip(JSON.stringify(cfg[k]), 60)}`;
  }
  if (!int('n_kv_heads', 1, cfg.n_heads) || cfg.n_heads % cfg.n_kv_heads !== 0) return `n_kv_heads = ${cfg.n_kv_heads}`;
  if (cfg.d_model % cfg.n_heads !== 0) return 'd_model not divisible by n_heads';
  if (!int('top_k', 1, cfg.n_experts)) return `top_k = ${cfg.top_k}`;
  if ((cfg.architecture === 'encoder-decoder') !== cfg.n_encoder_layers > 0) return 'n_encoder_layers does not match the architecture';
  for (const [k, options] of [
    ['architecture', ['decoder', 'encoder-decoder']], ['embedding', ['learned', 'wavelet']], ['positional', ['rope', 'sinusoidal', 'none']],
    ['norm', ['rmsnorm', 'layernorm']], ['norm_position', ['pre', 'post']], ['ffn', ['dense', 'moe']], ['activation', ['relu', 'gelu', 'swiglu']],
    ['router', ['softmax_topk', 'topk_softmax']],
  ]) {
    if (!options.includes(cfg[k])) return `${k} = ${E.clip(JSON.stringify(cfg[k]), 60)}`;
  }
  for (const k of ['router_renormalize', 'attention_bias', 'ffn_bias', 'router_bias', 'lm_head_bias', 'tie_embeddings']) {
    if (typeof cfg[k] !== 'boolean') return `${k} is not a boolean`;
  }
  for (const k of ['rope_theta', 'norm_eps']) if (!(Number.isFinite(cfg[k]) && cfg[k] > 0)) return `${k} = ${cfg[k]}`;
  for (const k of ['aux_loss_coef', 'router_z_loss_coef']) if (!(Number.isFinite(cfg[k]) && cfg[k] >= 0)) return `${k} = ${cfg[k]}`;
  if (cfg.capacity_factor !== null && !(Number.isFinite(cfg.capacity_factor) && cfg.capacity_factor > 0)) return `capacity_factor = ${cfg.capacity_factor}`;
  if (cfg.sliding_window !== null && !(Number.isSafeInteger(cfg.sliding_window) && cfg.sliding_window >= 1)) return `sliding_window = ${cfg.sliding_window}`;
  if (cfg.tie_embeddings && cfg.embedding !== 'learned') return 'tied embeddings without the learned embedding';
  const w = cfg.wavelet;
  if (!isPlainObject(w)) return 'wavelet is not an object';
  const wkeys = Object.keys(w).sort().join(',');
  if (wkeys !== keys.wavelet) return `wavelet keys ${E.clip(wkeys, 200)}`;
  if (!(Number.isSafeInteger(w.raw_dim) && w.raw_dim >= 1)) return `wavelet.raw_dim = ${w.raw_dim}`;
  if (!(Number.isSafeInteger(w.haar_levels) && w.haar_levels >= 0)) return `wavelet.haar_levels = ${w.haar_levels}`;
  const perScale = w.raw_dim / 2 ** w.haar_levels;
  if (!Number.isSafeInteger(perScale) || perScale < 1) return `wavelet.raw_dim ${w.raw_dim} is not divisible by 2^${w.haar_levels}`;
  if (!Array.isArray(w.scales) || !w.scales.length || !w.scales.every((s) => Number.isFinite(s) && s > 0)) return 'wavelet.scales';
  if (!(Number.isFinite(w.bandwidth) && w.bandwidth > 0 && Number.isFinite(w.center) && w.center > 0)) return 'wavelet bandwidth/center';
  if (!['frozen', 'raw', 'table'].includes(w.mode)) return `wavelet.mode = ${E.clip(JSON.stringify(w.mode), 60)}`;
  if (!(Number.isSafeInteger(w.seed) && w.seed >= 0)) return `wavelet.seed = ${w.seed}`;
  // the channels the wavelet embedding really produces, in exact arithmetic
  if (cfg.embedding === 'wavelet' && 2 * perScale * w.scales.length !== cfg.d_model) {
    return `wavelet embedding gives ${2 * perScale * w.scales.length} channels (raw_dim ${w.raw_dim}, ${w.haar_levels} levels, ${w.scales.length} scales) but d_model is ${cfg.d_model}`;
  }
  // what a checkpoint saves (JSON.stringify(model.config)) must load back unchanged
  let again;
  try {
    again = lib.validateConfig(JSON.parse(JSON.stringify(cfg)), where);
  } catch (e) {
    return `the validated config does not validate again: ${E.clip(e && e.message, 200)}`;
  }
  if (!util.isDeepStrictEqual(again, cfg)) return 'the validated config changes when validated again';
  return null;
}

function stateSanity(state) {
  if (state === null) return null;
  if (!isPlainObject(state)) return 'trainer state is not an object';
  if (!(Number.isSafeInteger(state.step) && state.step >= 0)) return `step = ${E.clip(JSON.stringify(state.step), 60)}`;
  if (!(Number.isSafeInteger(state.optimizerStep) && state.optimizerStep >= 0)) return `optimizerStep = ${E.clip(JSON.stringify(state.optimizerStep), 60)}`;
  if (!isPlainObject(state.options)) return `options = ${E.clip(JSON.stringify(state.options), 60)} (the loader's callers read state.options.task)`;
  return null;
}

// ---------------------------------------------------------------------------------------------------------------

function createHarnesses(lib, workDir) {
  const dirs = {};
  const dirOf = (name) => {
    if (!dirs[name]) {
      dirs[name] = path.join(workDir, name);
      fs.mkdirSync(dirs[name], { recursive: true });
    }
    return dirs[name];
  };
  let keys = null;
  const configKeys = () => {
    if (!keys) {
      const full = lib.validateConfig({ vocab_size: 2, d_model: 2, n_layers: 1, n_heads: 1 }, 'keys');
      keys = { config: Object.keys(full).sort().join(','), wavelet: Object.keys(full.wavelet).sort().join(',') };
    }
    return keys;
  };
  const allocStats = lib.allocStats;
  const seedConfigs = Object.values(TINY_CONFIGS);
  const seedJson = () => seedConfigs.map((c) => E.clone(c));

  const safetensors = {
    name: 'safetensors',
    maxLen: 1 << 20,
    file: () => path.join(dirOf('safetensors'), 'input.safetensors'),
    paths() {
      return [this.file()];
    },
    run(bytes) {
      writeFresh(this.file(), bytes);
      return lib.readSafetensors(this.file());
    },
    sanity: safetensorsSanity,
    minimize: E.minimizeSafetensors,
    mutate: (b, rng) => E.mutateSafetensors(b, rng, { dictionary: ['embed.weight', 'lm_head.weight'] }),
    arbitrary: () => require('fast-check').oneof({ weight: 1, arbitrary: E.bytesArb }, { weight: 4, arbitrary: E.safetensorsArb() }),
  };

  const tokenCache = {
    name: 'token_cache',
    maxLen: 1 << 20,
    file: () => path.join(dirOf('token_cache'), 'tokens.bin'),
    paths() {
      return [this.file()];
    },
    run(bytes) {
      writeFresh(this.file(), bytes);
      return lib.readTokenFile(this.file(), VOCAB);
    },
    sanity(ids, bytes) {
      if (tag(ids) !== 'Int32Array') return `returned a ${tag(ids)}`;
      if (bytes.length < 20 || BigInt(ids.length) !== bytes.readBigUInt64LE(12)) return `${ids.length} ids for a header count of ${bytes.length >= 20 ? bytes.readBigUInt64LE(12) : '?'}`;
      if (20 + 4 * ids.length !== bytes.length) return `${ids.length} ids from a ${bytes.length}-byte file`;
      for (let i = 0; i < ids.length; i++) if (ids[i] < 0 || ids[i] >= VOCAB) return `id ${ids[i]} at ${i}`;
      return null;
    },
    mutate: (b, rng) => E.mutateTokenFile(b, rng),
    arbitrary: () => require('fast-check').oneof({ weight: 1, arbitrary: E.bytesArb }, { weight: 4, arbitrary: E.tokenFileArb(VOCAB) }),
  };

  const WHERE = '/fuzz/config.json';
  const config = {
    name: 'config',
    maxLen: 1 << 20,
    paths: () => [WHERE],
    run(bytes) {
      const text = bytes.toString('utf8');
      let raw;
      try {
        raw = JSON.parse(text);
      } catch {
        raw = text; // not JSON: validateConfig gets the string
      }
      return lib.validateConfig(raw, WHERE);
    },
    sanity: (cfg) => configSanity(lib, WHERE, cfg, configKeys()),
    minimize: E.minimizeJsonText,
    mutate: (b, rng) => E.mutateJson(b, rng, { dictionary: CONFIG_WORDS, others: seedJson() }),
    arbitrary: () => E.configArb(seedJson(), CONFIG_WORDS.slice(0, 32), CONFIG_WORDS.slice(32)),
  };

  const readConfig = {
    name: 'read_config',
    maxLen: 1 << 20,
    file: () => path.join(dirOf('read_config'), 'config.json'),
    paths() {
      return [this.file()];
    },
    run(bytes) {
      writeFresh(this.file(), bytes);
      return lib.readConfig(dirOf('read_config'));
    },
    sanity(cfg) {
      return configSanity(lib, this.file(), cfg, configKeys());
    },
    minimize: E.minimizeJsonText,
    mutate: (b, rng) => (rng.chance(0.8) ? E.mutateJson(b, rng, { dictionary: CONFIG_WORDS, others: seedJson() }) : E.mutateBytes(b, rng)),
    arbitrary: () => require('fast-check').oneof({ weight: 1, arbitrary: E.bytesArb }, { weight: 4, arbitrary: E.configArb(seedJson(), CONFIG_WORDS.slice(0, 32), CONFIG_WORDS.slice(32)) }),
  };

  // The parameter names and shapes of the tiny dense model: dictionaries for the checkpoint/optimizer generators.
  let denseParams = null;
  const paramsOf = () => {
    if (!denseParams) {
      const m = new lib.Transformer(lib.validateConfig(TINY_CONFIGS.dense, 'dense'));
      denseParams = m.parameters().map((p) => [p.name, p.value.shape.slice()]);
      m.dispose();
    }
    return denseParams;
  };

  const checkpoint = {
    name: 'checkpoint',
    maxLen: 1 << 20,
    allocStats,
    runDir: () => path.join(dirOf('checkpoint'), 'run'),
    paths() {
      return [this.runDir()];
    },
    run(bytes) {
      const runDir = this.runDir();
      fs.rmSync(runDir, { recursive: true, force: true });
      fs.mkdirSync(runDir);
      E.materializeArchive(E.decodeArchive(bytes), runDir);
      const loaded = lib.loadModel(runDir);
      let opt = null;
      try {
        if (fs.existsSync(path.join(loaded.dir, 'optimizer.safetensors'))) {
          opt = new lib.AdamW(loaded.model.parameters(), ADAMW);
          lib.loadOptimizerState(loaded.dir, opt, loaded.state ?? { step: 0, optimizerStep: 0, options: {} });
        }
      } catch (e) {
        loaded.model.dispose();
        if (opt) opt.dispose();
        throw e;
      }
      return { loaded, opt };
    },
    sanity({ loaded, opt }) {
      if (!loaded.dir.startsWith(this.runDir())) return `resolved to ${loaded.dir}, outside the run directory`;
      const problem = configSanity(lib, 'checkpoint config', loaded.model.config, configKeys()) ?? stateSanity(loaded.state);
      if (problem) return problem;
      if (opt && loaded.state && opt.step !== loaded.state.optimizerStep) return `optimizer step ${opt.step}, state says ${loaded.state.optimizerStep}`;
      return null;
    },
    release(v) {
      if (!v) return;
      v.loaded.model.dispose();
      if (v.opt) v.opt.dispose();
    },
    // proportional to the checkpoint: parameters + gradients + optimizer moments + copies while loading
    budget: (bytes) => 24 * bytes.length + (32 << 20),
    minimize: E.minimizeArchive,
    mutate: (b, rng) =>
      E.mutateArchive(b, rng, { dictionary: [...CONFIG_WORDS, ...STATE_WORDS, ...paramsOf().map((p) => p[0])], jsonOthers: seedJson() }),
    arbitrary(corpus = []) {
      const fc = require('fast-check');
      const seeds = corpus.filter((b) => b.subarray(0, 4).toString('latin1') === 'WMFZ');
      const replace = fc.record({
        config: fc.option(E.configArb(seedJson(), CONFIG_WORDS.slice(0, 32), CONFIG_WORDS.slice(32)), { freq: 2 }),
        model: fc.option(E.safetensorsArb(paramsOf()), { freq: 3 }),
        optimizer: fc.option(E.safetensorsArb(paramsOf().flatMap(([n, s]) => [[`${n}.exp_avg`, s], [`${n}.exp_avg_sq`, s]])), { freq: 3 }),
        state: fc.option(
          fc.oneof(
            E.jsonTextArb,
            fc.record({ step: fc.oneof(fc.nat(10), fc.constantFrom(...E.INTERESTING_INTS)), optimizerStep: fc.oneof(fc.nat(10), fc.constantFrom(...E.INTERESTING_INTS)), options: fc.oneof(fc.constant({}), fc.jsonValue({ maxDepth: 1 })) }, { requiredKeys: [] })
              .map((o) => Buffer.from(JSON.stringify(o))),
          ),
          { freq: 2 },
        ),
        latest: fc.option(fc.oneof(fc.constantFrom('checkpoint-000003\n', 'checkpoint-000001', 'checkpoint-3', '', 'model.safetensors'), fc.string({ maxLength: 20 })), { freq: 3 }),
      });
      const base = seeds.length ? fc.constantFrom(...seeds) : fc.constant(E.encodeArchive([]));
      return fc.tuple(base, replace).map(([archive, r]) => {
        const files = E.decodeArchive(archive);
        const set = (suffix, data) => {
          if (data === null) return;
          const hit = files.find(([n]) => n === suffix || n.endsWith(`/${suffix}`));
          if (hit) hit[1] = data;
          else files.push([suffix, data]);
        };
        set('config.json', r.config);
        set('model.safetensors', r.model);
        set('optimizer.safetensors', r.optimizer);
        set('trainer_state.json', r.state);
        if (r.latest !== null) set('latest', Buffer.from(r.latest));
        return E.encodeArchive(files);
      });
    },
  };

  let fixed = null;
  const optimizer = {
    name: 'optimizer',
    maxLen: 1 << 20,
    allocStats,
    dir: () => path.join(dirOf('optimizer'), 'ckpt'),
    file() {
      return path.join(this.dir(), 'optimizer.safetensors');
    },
    paths() {
      return [this.file()];
    },
    run(bytes) {
      if (!fixed) {
        const model = new lib.Transformer(lib.validateConfig(TINY_CONFIGS.dense, 'dense'));
        fixed = { model, opt: new lib.AdamW(model.parameters(), ADAMW) };
        fs.mkdirSync(this.dir(), { recursive: true });
      }
      fixed.opt.step = 0;
      writeFresh(this.file(), bytes);
      lib.loadOptimizerState(this.dir(), fixed.opt, OPTIMIZER_STATE);
      return fixed.opt;
    },
    sanity(opt) {
      if (opt.step !== OPTIMIZER_STATE.optimizerStep) return `optimizer step ${opt.step}`;
      return null;
    },
    budget: (bytes) => 24 * bytes.length + (16 << 20),
    minimize: E.minimizeSafetensors,
    mutate: (b, rng) => E.mutateSafetensors(b, rng, { dictionary: paramsOf().flatMap(([n]) => [`${n}.exp_avg`, `${n}.exp_avg_sq`]) }),
    arbitrary: () => E.safetensorsArb(paramsOf().flatMap(([n, s]) => [[`${n}.exp_avg`, s], [`${n}.exp_avg_sq`, s]])),
    dispose() {
      if (fixed) {
        fixed.opt.dispose();
        fixed.model.dispose();
        fixed = null;
      }
    },
  };

  return [safetensors, tokenCache, config, readConfig, checkpoint, optimizer];
}

// ---------------------------------------------------------------------------------------------------------------
// The seed corpus: real files from the library's writers, plus hand-made edge cases

function archiveDir(dir) {
  const files = [];
  const walk = (rel) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(r);
      else files.push([r, fs.readFileSync(path.join(dir, r))]);
    }
  };
  walk('');
  return E.encodeArchive(files);
}

/** Writes test/fuzz/corpus/<harness>/* (replacing what is there). `repoRoot` finds the presets. */
function makeCorpus(lib, corpusRoot, repoRoot) {
  const scratch = E.scratchDir('wavemoe-corpus-');
  const out = {};
  const put = (harness, name, bytes) => {
    (out[harness] ??= []).push([name, Buffer.from(bytes)]);
  };
  try {
    // checkpoints of tiny models, through saveCheckpoint
    for (const [name, raw] of Object.entries(TINY_CONFIGS)) {
      const model = new lib.Transformer(lib.validateConfig(raw, name));
      model.init(7);
      const withOptimizer = name !== 'wavelet';
      const opt = withOptimizer ? new lib.AdamW(model.parameters(), ADAMW) : null;
      if (opt) {
        // non-zero moments
        for (const t of [...opt.m.values(), ...opt.v.values()]) {
          const a = t.toArray();
          for (let i = 0; i < a.length; i++) a[i] = ((i * 7919) % 97) / 1000;
          t.copyFrom(a);
        }
      }
      const runDir = path.join(scratch, name);
      const ckpt = lib.saveCheckpoint(runDir, model, opt, { step: 3, optimizerStep: 3, options: { lr: 0.001, task: 'numbers', seed: 1 } });
      put('checkpoint', `${name}-run.wmfz`, archiveDir(runDir));
      put('safetensors', `${name}-model.safetensors`, fs.readFileSync(path.join(ckpt, 'model.safetensors')));
      if (opt) put('safetensors', `${name}-optimizer.safetensors`, fs.readFileSync(path.join(ckpt, 'optimizer.safetensors')));
      if (name === 'dense') {
        put('optimizer', 'dense-optimizer.safetensors', fs.readFileSync(path.join(ckpt, 'optimizer.safetensors')));
        // a checkpoint directory itself (no latest), without trainer state or optimizer
        fs.rmSync(path.join(ckpt, 'trainer_state.json'));
        fs.rmSync(path.join(ckpt, 'optimizer.safetensors'));
        put('checkpoint', 'dense-bare-checkpoint.wmfz', archiveDir(ckpt));
      }
      const configText = fs.readFileSync(path.join(ckpt, 'config.json'));
      put('config', `${name}-saved.json`, configText);
      put('read_config', `${name}-saved.json`, configText);
      put('config', `${name}-user.json`, JSON.stringify(raw));
      if (opt) opt.dispose();
      model.dispose();
    }
    // the optimizer of the dense model, tensors in another order (still valid), and with one missing
    const dense = out.optimizer[0][1];
    const file = path.join(scratch, 'opt.safetensors');
    fs.writeFileSync(file, dense);
    const st = lib.readSafetensors(file);
    const entries = [...st.tensors.entries()].reverse().map(([n, t]) => [n, { shape: t.shape, data: t.data }]);
    lib.writeSafetensors(file, entries);
    put('optimizer', 'dense-optimizer-reversed.safetensors', fs.readFileSync(file));
    lib.writeSafetensors(file, entries.slice(1));
    put('optimizer', 'dense-optimizer-missing-one.safetensors', fs.readFileSync(file));

    // hand-made safetensors edge cases, through writeSafetensors where the writer can make them
    const st1 = (n, tensors, meta) => {
      lib.writeSafetensors(file, tensors, meta);
      put('safetensors', n, fs.readFileSync(file));
    };
    st1('empty.safetensors', []);
    st1('metadata-only.safetensors', [], { format: 'pt', note: '' });
    st1('zero-size.safetensors', [['z', { shape: [0, 3], data: new Float32Array(0) }], ['s', { shape: [], data: new Float32Array([2]) }]]);
    st1('mixed-dtypes.safetensors', [
      ['f64', { shape: [2, 2], data: new Float64Array([1, -2, 3.5, 1e300]) }],
      ['i32', { shape: [3], data: new Int32Array([-1, 0, 2 ** 31 - 1]) }],
      ['f32', { shape: [1, 1, 1], data: new Float32Array([Number.NaN]) }],
    ]);
    const handHeader = (obj, data) => E.joinSafetensors(JSON.stringify(obj), data);
    put('safetensors', 'unaligned-unpadded.safetensors', handHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, Buffer.alloc(8, 1)));
    put('safetensors', 'gap-between-tensors.safetensors', handHeader({ a: { dtype: 'I32', shape: [1], data_offsets: [4, 8] }, b: { dtype: 'I32', shape: [1], data_offsets: [12, 16] } }, Buffer.alloc(16, 2)));
    put('safetensors', 'huge-header-length.safetensors', (() => {
      const b = handHeader({}, Buffer.alloc(0));
      b.writeBigUInt64LE(1n << 60n, 0);
      return b;
    })());
    put('safetensors', 'huge-shape.safetensors', handHeader({ a: { dtype: 'F32', shape: [2 ** 30, 2 ** 30], data_offsets: [0, 4] } }, Buffer.alloc(4)));

    // token caches, through writeTokenFile
    const tok = path.join(scratch, 'tokens.bin');
    const t1 = (n, ids) => {
      lib.writeTokenFile(tok, Int32Array.from(ids));
      put('token_cache', n, fs.readFileSync(tok));
    };
    t1('empty.bin', []);
    t1('one.bin', [VOCAB - 1]);
    t1('range.bin', Array.from({ length: 100 }, (_, i) => i));
    t1('scattered.bin', Array.from({ length: 300 }, (_, i) => (i * 7919) % VOCAB));
    put('token_cache', 'huge-count.bin', (() => {
      const b = Buffer.alloc(24);
      b.writeUInt32LE(0x4b544d57, 0);
      b.writeUInt32LE(1, 4);
      b.writeBigUInt64LE(1n << 60n, 12);
      return b;
    })());

    // configs: the shipped presets, a minimal and an everything-explicit one
    const presetDir = path.join(repoRoot, 'lib', 'models', 'presets');
    for (const f of fs.readdirSync(presetDir).sort()) {
      const text = fs.readFileSync(path.join(presetDir, f));
      put('config', `preset-${f}`, text);
      put('read_config', `preset-${f}`, text);
    }
    const minimal = JSON.stringify({ vocab_size: 2, d_model: 1, n_layers: 1, n_heads: 1, positional: 'none' });
    put('config', 'minimal.json', minimal);
    put('read_config', 'minimal.json', minimal);
    const explicit = JSON.stringify(lib.validateConfig({ ...TINY_CONFIGS.moe, capacity_factor: 1.25, sliding_window: 4, router: 'topk_softmax' }, 'x'), null, 2);
    put('config', 'explicit-moe.json', explicit);
    put('read_config', 'explicit-moe.json', `\ufeff${explicit}`); // a byte-order mark (an error, but a clear one)
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  for (const [harness, files] of Object.entries(out)) {
    const dir = path.join(corpusRoot, harness);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    for (const [name, bytes] of files) fs.writeFileSync(path.join(dir, name), bytes);
  }
  return Object.fromEntries(Object.entries(out).map(([h, files]) => [h, files.length]));
}

module.exports = { createHarnesses, makeCorpus, configSanity, safetensorsSanity, stateSanity, TINY_CONFIGS, VOCAB };
