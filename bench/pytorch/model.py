"""PyTorch reference of wavemoe's decoder family, for the end-to-end speed comparison (issue 9).

It mirrors lib/models/transformer.ts and lib/nn/*.ts for the presets it supports (moe-small, seed-wavelet-tiny):

  ids -> embedding (learned, or a frozen wavelet table) -> Block x L -> RMSNorm -> lm_head (Linear, bias)
  Block (pre-norm): h = x + attn(rmsnorm(x)); out = h + ffn(rmsnorm(h))
  Attention: wq, wk, wv, wo (bias per config); RoPE on interleaved pairs (x[2i], x[2i+1]) rotated by
             pos * theta^(-2i/d_head) (the complex-multiplication form, not rotate_half); causal; scale 1/sqrt(d_head)
  RMSNorm: x * rsqrt(mean(x^2) + eps) * w, eps from the config (1e-5)
  Dense FFN: w2 . act(w1 . x + b1) + b2, GELU = tanh form (or SwiGLU with w3)
  MoE: router Linear (bias) over E experts; softmax over all experts, then top-k (weights not renormalised unless
       router_renormalize); SwiGLU experts w2 . (silu(w1 . x + b1) * (w3 . x + b3)) + b2; dropless.
       Tokens are sorted by expert (stable sort of the flattened top-k assignments), each expert runs one GEMM chain
       on its contiguous slice, and the weighted outputs are index_add-ed back (no dense masking).
       Auxiliary losses (added to the training loss): Switch load balancing coef * E * sum_e f_e * P_e (f_e = share
       of the N*k routed slots, a constant) and router z-loss coef * mean_n logsumexp(logits_n)^2.
  Loss: mean cross-entropy + the MoE auxiliary losses.

Parameter names follow wavemoe's checkpoints (embed.weight, layers.{i}.attn.wq.weight,
layers.{i}.moe.experts.{e}.w1.weight, layers.{i}.moe.gate.weight, norm.weight, lm_head.weight/bias).
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESET_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'lib', 'models', 'presets'))

# The defaults of lib/models/config.ts (DEFAULTS), for the keys this reference reads.
DEFAULTS = {
    'architecture': 'decoder',
    'n_kv_heads': 0,
    'embedding': 'learned',
    'positional': 'rope',
    'rope_theta': 10000.0,
    'norm': 'rmsnorm',
    'norm_position': 'pre',
    'norm_eps': 1e-5,
    'sliding_window': None,
    'ffn': 'dense',
    'activation': 'swiglu',
    'd_ff': 0,
    'n_experts': 8,
    'top_k': 2,
    'router': 'softmax_topk',
    'router_renormalize': False,
    'aux_loss_coef': 0.01,
    'router_z_loss_coef': 0.001,
    'capacity_factor': None,
    'attention_bias': False,
    'ffn_bias': False,
    'router_bias': False,
    'lm_head_bias': True,
    'tie_embeddings': False,
    'max_seq_len': 1024,
    'wavelet': {'raw_dim': 256, 'haar_levels': 4, 'scales': [2]},
}


def load_config(preset):
    """A preset's JSON (lib/models/presets/<name>.json) with config.ts's defaults filled in."""
    path = preset if preset.endswith('.json') else os.path.join(PRESET_DIR, preset + '.json')
    with open(path) as f:
        raw = json.load(f)
    c = {**DEFAULTS, **raw}
    if 'bias' in raw:
        for key in ('attention_bias', 'ffn_bias', 'router_bias', 'lm_head_bias'):
            c[key] = raw.get(key, raw['bias'])
    c['n_kv_heads'] = c['n_kv_heads'] or c['n_heads']
    c['d_ff'] = c['d_ff'] or 4 * c['d_model']
    if c['embedding'] == 'wavelet':
        w = {**DEFAULTS['wavelet'], **raw.get('wavelet', {})}
        channels = 2 * (w['raw_dim'] >> w['haar_levels']) * len(w['scales'])
        assert channels == c['d_model'], f'wavelet channels {channels} != d_model {c["d_model"]}'
    # What this reference implements (everything moe-small and seed-wavelet-tiny use).
    unsupported = {
        'architecture': c['architecture'] != 'decoder',
        'positional': c['positional'] != 'rope',
        'norm': c['norm'] != 'rmsnorm',
        'norm_position': c['norm_position'] != 'pre',
        'sliding_window': c['sliding_window'] is not None,
        'capacity_factor': c['capacity_factor'] is not None,
        'tie_embeddings': bool(c['tie_embeddings']),
    }
    bad = [k for k, v in unsupported.items() if v]
    if bad:
        raise ValueError(f'{path}: this PyTorch reference does not implement {bad}')
    return c


# Decoding one token at a time: use BLAS GEMV (torch.addmv) for the projections instead of nn.Linear's GEMM with one
# row (OpenBLAS 0.3.21 packs the whole weight for an M = 1 GEMM; GEMV streams it), and do the attention of the one
# query over the cache with a fused multiply-sum instead of per-head BLAS calls. Same arithmetic; set False to time
# the plain nn.Linear / matmul path.
FAST_DECODE = True


def linear(mod, x):
    """mod(x), through GEMV when x is one row and no gradient is needed. After prepare_decode(), the GEMV reads a
    transposed copy of the weight ([in, out] row-major: OpenBLAS's sgemv 'N' kernel, measured faster here)."""
    if FAST_DECODE and x.numel() == mod.in_features and not torch.is_grad_enabled():
        v = x.reshape(-1)
        wt = getattr(mod, 'decode_weight_t', None)
        w = wt.t() if wt is not None else mod.weight
        y = torch.addmv(mod.bias, w, v) if mod.bias is not None else torch.mv(w, v)
        return y.view(*x.shape[:-1], mod.out_features)
    return mod(x)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(max_len, head_dim, theta):
    """cos and sin [max_len, head_dim/2] of pos * theta^(-2i/head_dim), computed in float64 as wavemoe does."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(max_len, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return angles.cos().float(), angles.sin().float()


def apply_rope(x, cos, sin):
    """x [B, T, H, D]; cos, sin [T, D/2]. Rotates each interleaved pair (x[2i], x[2i+1]) by its angle."""
    x0, x1 = x.unflatten(-1, (-1, 2)).unbind(-1)
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, H = c['d_model'], c['n_heads']
        self.n_heads, self.n_kv_heads, self.head_dim = H, c['n_kv_heads'], D // H
        kv = self.n_kv_heads * self.head_dim
        bias = c['attention_bias']
        self.wq = nn.Linear(D, D, bias=bias)
        self.wk = nn.Linear(D, kv, bias=bias)
        self.wv = nn.Linear(D, kv, bias=bias)
        self.wo = nn.Linear(D, D, bias=bias)
        self.scale = 1.0 / math.sqrt(self.head_dim)

    def _qkv(self, x, cos, sin):
        B, T, _ = x.shape
        q = apply_rope(linear(self.wq, x).view(B, T, self.n_heads, self.head_dim), cos, sin)
        k = apply_rope(linear(self.wk, x).view(B, T, self.n_kv_heads, self.head_dim), cos, sin)
        v = linear(self.wv, x).view(B, T, self.n_kv_heads, self.head_dim)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, D]

    def _repeat_kv(self, t):
        rep = self.n_heads // self.n_kv_heads
        return t if rep == 1 else t.repeat_interleave(rep, dim=1)

    def _merge(self, o):
        B, H, T, D = o.shape
        return linear(self.wo, o.transpose(1, 2).reshape(B, T, H * D))

    def forward(self, x, cos, sin, mask_bias):
        """Training / full-sequence forward. mask_bias: [T, T] additive causal mask (0 / -inf)."""
        q, k, v = self._qkv(x, cos, sin)
        k, v = self._repeat_kv(k), self._repeat_kv(v)
        # scores = mask + scale * q k^T in one batched GEMM (baddbmm), softmax, then p v.
        B, H, T, D = q.shape
        scores = torch.baddbmm(mask_bias, q.reshape(B * H, T, D), k.reshape(B * H, T, D).transpose(1, 2), alpha=self.scale)
        o = torch.bmm(scores.softmax(-1), v.reshape(B * H, T, D)).view(B, H, T, D)
        return self._merge(o)

    def forward_cached(self, x, cos, sin, cache, pos):
        """Inference with a preallocated KV cache (k, v each [B, Hkv, capacity, D]): writes the new positions at
        [pos, pos + T) and attends over the cache's first pos + T rows (causal within the new block)."""
        q, k, v = self._qkv(x, cos, sin)
        kc, vc = cache
        T = x.shape[1]
        kc[:, :, pos:pos + T] = k
        vc[:, :, pos:pos + T] = v
        L = pos + T
        keys, values = self._repeat_kv(kc[:, :, :L]), self._repeat_kv(vc[:, :, :L])
        if FAST_DECODE and T == 1:
            p = ((keys * q).sum(-1, keepdim=True) * self.scale).softmax(-2)  # [B, H, L, 1]
            return self._merge((p * values).sum(-2, keepdim=True))
        scores = torch.matmul(q, keys.transpose(-1, -2)) * self.scale  # [B, H, T, L]
        if T > 1:
            i = torch.arange(T, device=scores.device)[:, None] + pos
            j = torch.arange(L, device=scores.device)[None, :]
            scores = scores.masked_fill(j > i, float('-inf'))
        o = torch.matmul(scores.softmax(-1), values)
        return self._merge(o)


class FeedForward(nn.Module):
    def __init__(self, d_model, d_ff, activation, bias):
        super().__init__()
        self.activation = activation
        self.w1 = nn.Linear(d_model, d_ff, bias=bias)
        self.w2 = nn.Linear(d_ff, d_model, bias=bias)
        self.w3 = nn.Linear(d_model, d_ff, bias=bias) if activation == 'swiglu' else None

    def forward(self, x):
        if self.w3 is not None:
            h = F.silu(linear(self.w1, x)) * linear(self.w3, x)
        elif self.activation == 'relu':
            h = F.relu(linear(self.w1, x))
        else:
            h = F.gelu(linear(self.w1, x), approximate='tanh')
        return linear(self.w2, h)


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        D = c['d_model']
        self.n_experts, self.top_k = c['n_experts'], c['top_k']
        self.router, self.renormalize = c['router'], c['router_renormalize']
        self.aux_coef, self.z_coef = c['aux_loss_coef'], c['router_z_loss_coef']
        self.gate = nn.Linear(D, self.n_experts, bias=c['router_bias'])
        self.experts = nn.ModuleList(FeedForward(D, c['d_ff'], c['activation'], c['ffn_bias']) for _ in range(self.n_experts))
        self.aux_loss = None

    def _route(self, logits):
        if self.router == 'softmax_topk':
            probs = logits.softmax(-1)
            weight, expert = probs.topk(self.top_k, dim=-1)
            if self.renormalize:
                weight = weight / weight.sum(-1, keepdim=True)
        else:  # topk_softmax (Mixtral)
            probs = None
            top, expert = logits.topk(self.top_k, dim=-1)
            weight = top.softmax(-1)
        return probs, weight, expert

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        N, k, E = x.shape[0], self.top_k, self.n_experts
        logits = linear(self.gate, x)
        probs, weight, expert = self._route(logits)

        if N == 1 and not torch.is_grad_enabled():
            # Decoding one token: run its k experts directly.
            out = None
            for j, e in enumerate(expert[0].tolist()):
                y = self.experts[e](x) * weight[0, j]
                out = y if out is None else out + y
            self.aux_loss = None
            return out.view(shape)

        flat = expert.reshape(-1)  # [N*k]
        _, order = torch.sort(flat, stable=True)  # routed slots grouped by expert, token order within each
        counts = torch.bincount(flat, minlength=E)
        token = order.div(k, rounding_mode='floor')
        xs = x.index_select(0, token)
        outs = []
        start = 0
        for e, n in enumerate(counts.tolist()):
            if n:
                outs.append(self.experts[e](xs[start:start + n]))
                start += n
        ys = torch.cat(outs) * weight.reshape(-1).index_select(0, order)[:, None]
        out = torch.zeros_like(x).index_add_(0, token, ys.to(x.dtype))  # .to: a no-op unless under autocast

        if torch.is_grad_enabled():
            if probs is None:
                probs = logits.softmax(-1)
            f = counts.to(x.dtype) / (N * k)  # a constant (no gradient), as in Switch
            balance = E * (f * probs.mean(0)).sum()
            z = torch.logsumexp(logits, dim=-1).pow(2).mean()
            self.aux_loss = self.aux_coef * balance + self.z_coef * z
        else:
            self.aux_loss = None
        return out.view(shape)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attn_norm = RMSNorm(c['d_model'], c['norm_eps'])
        self.attn = Attention(c)
        self.ffn_norm = RMSNorm(c['d_model'], c['norm_eps'])
        self.is_moe = c['ffn'] == 'moe'
        if self.is_moe:
            self.moe = MoE(c)
        else:
            self.ffn = FeedForward(c['d_model'], c['d_ff'], c['activation'], c['ffn_bias'])

    def ffn_module(self, x):
        return self.moe(x) if self.is_moe else self.ffn(x)

    def forward(self, x, cos, sin, mask_bias):
        h = x + self.attn(self.attn_norm(x), cos, sin, mask_bias)
        return h + self.ffn_module(self.ffn_norm(h))

    def forward_cached(self, x, cos, sin, cache, pos):
        h = x + self.attn.forward_cached(self.attn_norm(x), cos, sin, cache, pos)
        return h + self.ffn_module(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        V, D = c['vocab_size'], c['d_model']
        if c['embedding'] == 'learned':
            self.embed = nn.Embedding(V, D)
        else:
            # The frozen wavelet table [V, d_model]: not trained; for timing a fixed random table of the same shape
            # and scale stands in for the Morlet transform's values.
            self.embed = None
            self.register_buffer('embed_table', torch.randn(V, D, generator=torch.Generator().manual_seed(0)) * 0.5)
        self.layers = nn.ModuleList(Block(c) for _ in range(c['n_layers']))
        self.norm = RMSNorm(D, c['norm_eps'])
        self.lm_head = nn.Linear(D, V, bias=c['lm_head_bias'])
        hd = D // c['n_heads']
        cos, sin = rope_tables(c['max_seq_len'], hd, float(c['rope_theta']))
        self.register_buffer('rope_cos', cos, persistent=False)
        self.register_buffer('rope_sin', sin, persistent=False)
        self._masks = {}

    @torch.no_grad()
    def init_weights(self, seed=0):
        """wavemoe's init: N(0, 0.02) for embeddings, projections and the router; residual output projections
        (wo, w2) N(0, 0.02/sqrt(2L)); biases 0; norm scales 1."""
        g = torch.Generator().manual_seed(seed)
        out_std = 0.02 / math.sqrt(2 * self.config['n_layers'])
        for name, p in self.named_parameters():
            if name.endswith('norm.weight'):
                p.fill_(1.0)
            elif name.endswith('.bias'):
                p.zero_()
            elif name.endswith('wo.weight') or name.endswith('w2.weight'):
                p.normal_(0.0, out_std, generator=g)
            else:
                p.normal_(0.0, 0.02, generator=g)
        return self

    def _embed(self, ids):
        return self.embed(ids) if self.embed is not None else F.embedding(ids, self.embed_table)

    def _mask(self, T, device, dtype):
        key = (T, device, dtype)
        m = self._masks.get(key)
        if m is None:
            m = torch.full((T, T), float('-inf'), device=device, dtype=dtype).triu(1)
            self._masks[key] = m
        return m

    def forward(self, ids):
        """ids [B, T] -> logits [B, T, V]."""
        T = ids.shape[1]
        x = self._embed(ids)
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        mask = self._mask(T, x.device, x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.norm(x))

    def aux_loss(self):
        terms = [l.moe.aux_loss for l in self.layers if l.is_moe and l.moe.aux_loss is not None]
        return sum(terms) if terms else None

    def loss(self, ids, targets):
        """(total, cross-entropy): mean cross-entropy plus the MoE auxiliary losses."""
        logits = self.forward(ids)
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))
        aux = self.aux_loss()
        return (ce + aux if aux is not None else ce), ce

    # ---- generation with a KV cache -------------------------------------------------------------------------------
    def new_cache(self, batch, capacity, device=None):
        """Per layer K and V [batch, Hkv, capacity, d_head], float32, on `device` (default: where the model is)."""
        c = self.config
        hd = c['d_model'] // c['n_heads']
        shape = (batch, c['n_kv_heads'], capacity, hd)
        device = self.rope_cos.device if device is None else device
        return [(torch.zeros(shape, device=device), torch.zeros(shape, device=device)) for _ in self.layers]

    def decode(self, ids, cache, pos):
        """Feeds ids [B, Tn] at positions [pos, pos + Tn); returns the logits of the last position [B, V]."""
        T = ids.shape[1]
        x = self._embed(ids)
        cos, sin = self.rope_cos[pos:pos + T], self.rope_sin[pos:pos + T]
        for layer, kv in zip(self.layers, cache):
            x = layer.forward_cached(x, cos, sin, kv, pos)
        return linear(self.lm_head, self.norm(x[:, -1]))

    @torch.no_grad()
    def prepare_decode(self, transposed=True):
        """Once, before decoding: keep a transposed copy [in, out] of every Linear's weight for the GEMV path (a
        load-time layout choice, as inference engines make; the copies are not kept in sync with training)."""
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                mod.decode_weight_t = mod.weight.t().contiguous() if transposed else None
        return self

    @torch.inference_mode()
    def generate_greedy(self, prompt, new_tokens, on_token=None):
        """Greedy decoding: prompt [B, Tp] -> [B, new_tokens]. on_token(i) is called after token i is known."""
        B, Tp = prompt.shape
        cache = self.new_cache(B, Tp + new_tokens)
        logits = self.decode(prompt, cache, 0)
        out = []
        tok = logits.argmax(-1, keepdim=True)
        out.append(tok)
        if on_token:
            on_token(0)
        pos = Tp
        for i in range(1, new_tokens):
            logits = self.decode(tok, cache, pos)
            pos += 1
            tok = logits.argmax(-1, keepdim=True)
            out.append(tok)
            if on_token:
                on_token(i)
        return torch.cat(out, dim=1)


def build(preset, seed=0):
    return Transformer(load_config(preset)).init_weights(seed)


def param_groups(model, weight_decay):
    """AdamW groups as wavemoe's optimizer: decay on tensors of rank >= 2, none on norms' scales and biases."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{'params': decay, 'weight_decay': weight_decay}, {'params': no_decay, 'weight_decay': 0.0}]


def decode_weight_bytes(c, bytes_per_param=4):
    """fp32 parameter bytes read to decode ONE token: its embedding row, every layer's norms and attention
    projections, the router and the k experts it is routed to, the final norm and the whole lm_head."""
    D, V, F_, L = c['d_model'], c['vocab_size'], c['d_ff'], c['n_layers']
    kv = c['n_kv_heads'] * (D // c['n_heads'])
    ab = c['attention_bias']
    attn = D * D * 2 + D * kv * 2 + ((2 * D + 2 * kv) if ab else 0)
    glu = c['activation'] == 'swiglu'
    ffb = c['ffn_bias']
    expert = (3 if glu else 2) * D * F_ + (((2 if glu else 1) * F_ + D) if ffb else 0)
    if c['ffn'] == 'moe':
        ffn = c['n_experts'] * D + (c['n_experts'] if c['router_bias'] else 0) + c['top_k'] * expert
    else:
        ffn = expert
    per_layer = 2 * D + attn + ffn
    total = D + L * per_layer + D + V * D + (V if c['lm_head_bias'] else 0)
    return {
        'embedding_row': D * bytes_per_param,
        'per_layer': per_layer * bytes_per_param,
        'layers': L * per_layer * bytes_per_param,
        'lm_head': (V * D + (V if c['lm_head_bias'] else 0)) * bytes_per_param,
        'total': total * bytes_per_param,
    }
