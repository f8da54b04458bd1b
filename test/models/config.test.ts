import { validateConfig, waveletChannels } from '../../lib/models/config';
import { preset, PRESET_NAMES } from '../../lib/models/presets';

const minimal = { vocab_size: 100, d_model: 16, n_layers: 1, n_heads: 2 };

test('every preset validates, with the sizes the design gives', () => {
  expect([...PRESET_NAMES].sort()).toEqual(['moe-base', 'moe-small', 'seed-wavelet-tiny', 'seq2seq-small']);
  // moe-base, sized for one GPU (issue #13)
  expect(preset('moe-base')).toMatchObject({
    architecture: 'decoder', d_model: 768, n_layers: 12, n_heads: 12, n_kv_heads: 12, ffn: 'moe', activation: 'swiglu',
    n_experts: 8, d_ff: 2048, top_k: 2, norm: 'rmsnorm', positional: 'rope', vocab_size: 50254, max_seq_len: 1024,
  });
  const moe = preset('moe-small');
  expect(moe).toMatchObject({ d_model: 256, n_layers: 4, n_heads: 8, n_kv_heads: 8, ffn: 'moe', n_experts: 8, d_ff: 512, top_k: 2 });
  expect(moe).toMatchObject({ router: 'softmax_topk', router_renormalize: false, attention_bias: false, ffn_bias: true, router_bias: true, lm_head_bias: true });
  const tiny = preset('seed-wavelet-tiny');
  expect(waveletChannels(tiny.wavelet)).toBe(32);
  expect(tiny).toMatchObject({ embedding: 'wavelet', d_model: 32, n_heads: 4, d_ff: 64, norm: 'rmsnorm', positional: 'rope' });
  const s2s = preset('seq2seq-small');
  expect(s2s).toMatchObject({ architecture: 'encoder-decoder', norm: 'layernorm', norm_position: 'post', positional: 'sinusoidal', activation: 'relu' });
  expect(s2s.n_encoder_layers).toBeGreaterThan(0);
});

test('defaults are filled in', () => {
  const c = validateConfig(minimal);
  expect(c).toMatchObject({ architecture: 'decoder', n_kv_heads: 2, d_ff: 64, norm_eps: 1e-5, positional: 'rope', sliding_window: null, capacity_factor: null });
  expect(validateConfig({ ...minimal, bias: true })).toMatchObject({ attention_bias: true, ffn_bias: true, router_bias: true, lm_head_bias: true });
});

test.each([
  [{ ...minimal, d_modle: 3 }, /unknown key 'd_modle'/],
  [{ ...minimal, nlayers: 3 }, /did you mean 'n_layers'/],
  [{ vocab_size: 100, d_model: 16, n_heads: 2 }, /'n_layers' is required/],
  [{ ...minimal, d_model: 15 }, /divisible by 'n_heads'/],
  [{ ...minimal, n_kv_heads: 3, n_heads: 4, d_model: 16 }, /divisible by 'n_kv_heads'/],
  [{ ...minimal, d_model: 6, n_heads: 2 }, /must be even/],
  [{ ...minimal, norm: 'batchnorm' }, /'norm' must be one of 'rmsnorm', 'layernorm'/],
  [{ ...minimal, norm_eps: 0 }, /'norm_eps' must be a number in \(0, 1\]/],
  [{ ...minimal, rope_theta: Infinity }, /rope_theta/],
  [{ ...minimal, top_k: 3, n_experts: 2 }, /'top_k' must be an integer in \[1, 2\]/],
  [{ ...minimal, sliding_window: 0 }, /sliding_window/],
  [{ ...minimal, capacity_factor: -1 }, /capacity_factor/],
  [{ ...minimal, embedding: 'wavelet' }, /gives 32 channels per token; 'd_model' must equal it, got 16/],
  [{ ...minimal, d_model: 32, embedding: 'wavelet', wavelet: { haar_levels: 9 } }, /haar_levels/],
  [{ ...minimal, wavelet: { scale: 2 } }, /unknown key 'wavelet.scale'/],
  [{ ...minimal, architecture: 'encoder-decoder' }, /'n_encoder_layers' must be an integer in \[1/],
  [{ ...minimal, tie_embeddings: 'yes' }, /'tie_embeddings' must be true or false/],
  [[1, 2], /must be a JSON object/],
  [{ ...minimal, tie_embeddings: true, embedding: 'wavelet', d_model: 32 }, /'tie_embeddings' needs the learned embedding/],
])('bad config %# is a clear error', (cfg, message) => {
  expect(() => validateConfig(cfg, 'my.json')).toThrow(message);
  expect(() => validateConfig(cfg, 'my.json')).toThrow(/^my.json: /);
});

test('an unknown preset lists the available ones', () => {
  expect(() => preset('moe-huge')).toThrow(/unknown preset 'moe-huge' \(available: moe-small/);
});

test('NaN and infinities are shown as such in errors (JSON would print null)', () => {
  expect(() => validateConfig({ vocab_size: 100, d_model: NaN })).toThrow(/'d_model' must be an integer in \[\d+, \d+\], got NaN/);
  expect(() => validateConfig({ vocab_size: 100, d_model: 64, n_layers: 1, n_heads: 2, d_ff: 64, max_seq_len: 16, rope_theta: -Infinity })).toThrow(/got -Infinity/);
});
