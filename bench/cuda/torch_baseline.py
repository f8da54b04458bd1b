#!/usr/bin/env python3
"""PyTorch baseline for `npm run bench:cuda`: the shapes of wavemoe's native CUDA benches, measured in PyTorch on the
same GPU in the same run.

usage: python3 bench/cuda/torch_baseline.py [options] NATIVE.json ...

Each argument is the output (or just the last line) of a native `build/cuda/cuda_test_* --bench`; its last line that
is a JSON object is read, and what it holds decides what is measured (shapes are read from it, never assumed):
  {"results": [{"M","K","N",...}]}                 cuda_test_kernels: torch.matmul, float32, TF32 off
  {"attention": [{"B","H","T","D","causal"}],       cuda_test_attention: F.scaled_dot_product_attention forward and
   "decode": [{"kv_length","B","H","D"}]}            forward+backward, float32 (backend forced: EFFICIENT_ATTENTION,
                                                     else MATH) and bf16 (FLASH_ATTENTION); decoding: one query row
                                                     against a KV cache of kv_length rows, float32 and bf16 flash
  {"moe": [{"N","D","F","E","k"}]}                  cuda_test_moe: a per-expert loop in PyTorch (router linear,
                                                     softmax, top-k, then per expert index_select -> SwiGLU FFN ->
                                                     index_add), forward and forward+backward tokens/s, float32
Optional row keys understood: attention "H_kv" (or "Hkv", "kv_heads": grouped-query attention), "Tq"/"Tk";
moe "bias" (default true: router and expert biases, as moe-small), "aux" (default true: load-balancing and z
losses, as wavemoe's layer); decode "Hq"/"Hkv" as well as "H".

Timing: CUDA events around each sample (a sample is `inner` back-to-back calls, inner chosen so that a sample lasts at
least --min-sample-ms), after --warmup calls; the figure is the median of up to --repeats samples (fewer when a
measurement passes --max-seconds). The same buffers are reused, as the native benches do.
FLOP counts (FlashAttention's convention): attention forward 4·B·H·Tq·Tk·D, halved when causal; forward+backward
3.5 times the forward (the backward does 2.5 times the forward's work). Matmul 2·M·N·K.

Without CUDA (no torch, or torch without a usable GPU) it prints `torch_baseline: SKIPPED (...)` and, last, the JSON
object {"baseline": "torch", "skipped": "..."}, and exits 0: bench/cuda.sh only runs it where torch sees a GPU.
--cpu runs every code path on the CPU instead (a smoke test on tiny fixtures; its figures mean nothing).

Output: a table per section on stdout, then ONE JSON object on the last line (see `result` below); progress and
warnings go to stderr.
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time

SHAPE_SKIP_SUFFIXES = ('_tflops', '_gflops', '_per_s', '_ms', '_us', 'us_per_call', '_gbps')


def log(msg):
    sys.stderr.write(msg + '\n')
    sys.stderr.flush()


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def last_json_object(path):
    """The last line of `path` that parses as a JSON object."""
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = f.read().splitlines()
    for line in reversed(lines):
        line = line.strip()
        if line.startswith('{'):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    raise ValueError(f'{path}: no line holds a JSON object')


def shape_fields(row):
    """The fields of a native row that describe its shape (echoed into ours so that compare.py can match rows)."""
    return {k: v for k, v in row.items()
            if isinstance(v, (bool, int, str)) and not k.endswith(SHAPE_SKIP_SUFFIXES)}


def first_key(row, names, default=None):
    for n in names:
        if n in row and row[n] is not None:
            return row[n]
    return default


def short_error(e):
    s = f'{type(e).__name__}: {e}'.replace('\n', ' ')
    return s if len(s) <= 240 else s[:237] + '...'


# ---------------------------------------------------------------------------------------------------------- timing
class Timer:
    def __init__(self, torch, device, args):
        self.torch, self.device, self.args = torch, device, args
        self.cuda = device.type == 'cuda'

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def _sample(self, fn, inner):
        if self.cuda:
            start = self.torch.cuda.Event(enable_timing=True)
            stop = self.torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop) / inner
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t0) * 1e3 / inner

    def ms(self, fn):
        """Median milliseconds per call of fn."""
        a = self.args
        for _ in range(a.warmup):
            fn()
        self.sync()
        one = self._sample(fn, 1)
        inner = max(1, min(1000, int(math.ceil(a.min_sample_ms / max(one, 1e-4)))))
        samples = []
        t0 = time.perf_counter()
        for r in range(a.repeats):
            samples.append(self._sample(fn, inner))
            if r >= 2 and time.perf_counter() - t0 > a.max_seconds:
                break
        return median(samples)


# ---------------------------------------------------------------------------------------------------------- matmul
def bench_matmul(torch, timer, rows, dev):
    out = []
    for row in rows:
        M, K, N = int(row['M']), int(row['K']), int(row['N'])
        rec = shape_fields(row)
        try:
            A = torch.randn(M, K, device=dev)
            B = torch.randn(K, N, device=dev)
            C = torch.empty(M, N, device=dev)
            ms = timer.ms(lambda: torch.matmul(A, B, out=C))
            rec.update(ms=ms, gflops=2.0 * M * N * K / (ms * 1e6))
            del A, B, C
        except Exception as e:  # noqa: BLE001 (report and go on)
            rec['error'] = short_error(e)
        release(torch, dev)
        out.append(rec)
        log(f'  matmul {M}x{K}x{N}: {fmt(rec.get("gflops"))} GFLOP/s')
    return out


# ---------------------------------------------------------------------------------------------------------- attention
def sdpa_context(torch, backend):
    """A context manager that allows only `backend` (a SDPBackend name), or None where this torch cannot force it."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel([getattr(SDPBackend, backend)])
    except (ImportError, AttributeError):
        pass
    try:  # torch 2.0 - 2.2
        flags = dict(enable_flash=backend == 'FLASH_ATTENTION', enable_mem_efficient=backend == 'EFFICIENT_ATTENTION',
                     enable_math=backend == 'MATH')
        return torch.backends.cuda.sdp_kernel(**flags)
    except (AttributeError, TypeError):
        return None


def sdpa_supports_gqa(torch):
    import inspect
    try:
        return 'enable_gqa' in inspect.signature(torch.nn.functional.scaled_dot_product_attention).parameters
    except (TypeError, ValueError):
        return False


def attention_flops(B, H, Tq, Tk, D, causal):
    f = 4.0 * B * H * Tq * Tk * D
    return f / 2 if causal and Tq == Tk else f


class AttnCase:
    """q [B,H,Tq,D], k/v [B,Hkv,Tk,D] of one dtype, with a fixed output gradient."""

    def __init__(self, torch, dev, dtype, B, H, Hkv, Tq, Tk, D, causal, need_grad):
        self.torch, self.causal = torch, causal
        g = torch.Generator(device=dev)
        g.manual_seed(1234)
        mk = lambda h, t: torch.randn(B, h, t, D, device=dev, dtype=dtype, generator=g)  # noqa: E731
        self.q, self.k, self.v = mk(H, Tq), mk(Hkv, Tk), mk(Hkv, Tk)
        self.gqa = Hkv != H
        self.kwargs = {}
        if self.gqa:
            if sdpa_supports_gqa(torch):
                self.kwargs['enable_gqa'] = True
            else:  # older torch: materialise the repeated heads (outside the timed region)
                self.k = self.k.repeat_interleave(H // Hkv, dim=1)
                self.v = self.v.repeat_interleave(H // Hkv, dim=1)
        if need_grad:
            for t in (self.q, self.k, self.v):
                t.requires_grad_(True)
            self.dout = mk(H, Tq)

    def fwd(self):
        with self.torch.no_grad():
            return self.torch.nn.functional.scaled_dot_product_attention(
                self.q.detach(), self.k.detach(), self.v.detach(), is_causal=self.causal, **self.kwargs)

    def fwd_bwd(self):
        o = self.torch.nn.functional.scaled_dot_product_attention(self.q, self.k, self.v, is_causal=self.causal,
                                                                   **self.kwargs)
        return self.torch.autograd.grad(o, (self.q, self.k, self.v), self.dout)


def math_fits(torch, dev, B, H, Tq, Tk, dtype_bytes, backward):
    """Whether the MATH backend's materialised score matrices (a few copies) fit comfortably."""
    need = B * H * Tq * Tk * dtype_bytes * (6 if backward else 3)
    if dev.type != 'cuda':
        return need < (1 << 30)
    free, _ = torch.cuda.mem_get_info()
    return need < 0.6 * free


def measure_attention_variant(torch, timer, dev, dtype, backends, shape, want_bwd, notes):
    """Tries each backend in turn (forced through sdpa_kernel); returns {backend, fwd_ms[, fwd_bwd_ms]} of the first
    that runs, or {backend: None, error}."""
    B, H, Hkv, Tq, Tk, D, causal = shape
    errors = []
    for backend in backends:
        if backend == 'MATH' and not math_fits(torch, dev, B, H, Tq, Tk, 4 if dtype == torch.float32 else 2, want_bwd):
            errors.append('MATH: score matrix too large for the free memory')
            continue
        ctx = sdpa_context(torch, backend)
        if ctx is None:
            errors.append(f'{backend}: this torch cannot force an SDPA backend')
            continue
        try:
            case = AttnCase(torch, dev, dtype, B, H, Hkv, Tq, Tk, D, causal, want_bwd)
            with ctx:
                rec = {'backend': backend, 'fwd_ms': timer.ms(case.fwd)}
                if want_bwd:
                    rec['fwd_bwd_ms'] = timer.ms(case.fwd_bwd)
            del case
            release(torch, dev)
            if errors:
                rec['fallback_from'] = errors
            return rec
        except Exception as e:  # noqa: BLE001 (the backend refused these inputs: try the next)
            errors.append(f'{backend}: {short_error(e)}')
            release(torch, dev)
    notes.extend(errors)
    return {'backend': None, 'error': '; '.join(errors)}


def default_backend_kernels(torch, dev, dtype, shape):
    """The CUDA kernels PyTorch runs for SDPA with no backend forced (its own choice), read with the profiler."""
    B, H, Hkv, Tq, Tk, D, causal = shape
    try:
        from torch.profiler import ProfilerActivity, profile
        case = AttnCase(torch, dev, dtype, B, H, Hkv, min(Tq, 1024), min(Tk, 1024), D, causal, False)
        case.fwd()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            case.fwd()
            torch.cuda.synchronize()
        names = []
        for ev in prof.key_averages():
            n = ev.key
            if any(s in n.lower() for s in ('fmha', 'flash', 'attention', 'attn', 'cudnn', 'gemm', 'softmax')):
                names.append(n if len(n) <= 120 else n[:117] + '...')
        return names[:4] or ['(no attention kernel recognised)']
    except Exception as e:  # noqa: BLE001
        return [f'(profiler unavailable: {short_error(e)})']


def bench_attention(torch, timer, obj, dev, args, notes):
    is_cuda = dev.type == 'cuda'
    fp32_backends = ['EFFICIENT_ATTENTION', 'MATH']
    # bf16 is compared with PyTorch's flash path only (the issue's target); the CPU has no flash kernel.
    bf16_backends = ['FLASH_ATTENTION'] if is_cuda else ['MATH']
    out_attn, out_dec, defaults = [], [], {}
    seen = set()
    for row in obj.get('attention') or []:
        B, D = int(row['B']), int(row['D'])
        H = int(first_key(row, ('H', 'Hq', 'n_heads')))
        T = int(first_key(row, ('T', 'Tq'), 0))
        Tq, Tk = int(first_key(row, ('Tq',), T)), int(first_key(row, ('Tk',), T))
        Hkv = int(first_key(row, ('H_kv', 'Hkv', 'kv_heads', 'n_kv_heads'), H))
        causal = bool(row.get('causal', True))
        shape = (B, H, Hkv, Tq, Tk, D, causal)
        if shape in seen:  # the native bench repeats each shape per precision: PyTorch's figures are per shape
            continue
        seen.add(shape)
        rec = {k: v for k, v in shape_fields(row).items() if k not in ('precision', 'tensor_cores')}
        flops = attention_flops(B, H, Tq, Tk, D, causal)
        rec['fwd_gflop'] = flops / 1e9
        for label, dtype, backends in (('fp32', torch.float32, fp32_backends), ('bf16_flash', torch.bfloat16,
                                                                                 bf16_backends)):
            if is_cuda and not args.no_profile and label not in defaults:
                defaults[label] = default_backend_kernels(torch, dev, dtype, shape)
            v = measure_attention_variant(torch, timer, dev, dtype, backends, shape, True, notes)
            if v.get('fwd_ms'):
                v['fwd_tflops'] = flops / (v['fwd_ms'] * 1e9)
            if v.get('fwd_bwd_ms'):
                v['fwd_bwd_tflops'] = 3.5 * flops / (v['fwd_bwd_ms'] * 1e9)
            rec[label] = v
        log(f'  attention B={B} H={H} T={Tq}x{Tk} D={D} causal={causal}: fp32 {rec["fp32"].get("backend")} '
            f'{fmt(rec["fp32"].get("fwd_tflops"))}/{fmt(rec["fp32"].get("fwd_bwd_tflops"))} TFLOP/s, bf16 flash '
            f'{fmt(rec["bf16_flash"].get("fwd_tflops"))}/{fmt(rec["bf16_flash"].get("fwd_bwd_tflops"))}')
        out_attn.append(rec)
        if timer_over_budget(args):
            notes.append('time budget spent: the remaining attention rows were not measured')
            break
    for row in obj.get('decode') or []:
        B, D = int(first_key(row, ('B',), 1)), int(row['D'])
        H = int(first_key(row, ('H', 'Hq', 'n_heads')))
        L = int(first_key(row, ('kv_length', 'L', 'Tk'), 0))
        Hkv = int(first_key(row, ('H_kv', 'Hkv', 'kv_heads', 'n_kv_heads'), H))
        shape = (B, H, Hkv, 1, L, D, False)
        rec = shape_fields(row)
        for label, dtype, backends in (('fp32', torch.float32, fp32_backends),
                                       ('fp32_math', torch.float32, ['MATH']),
                                       ('bf16_flash', torch.bfloat16, bf16_backends)):
            v = measure_attention_variant(torch, timer, dev, dtype, backends, shape, False, notes)
            if v.get('fwd_ms'):
                v['us_per_call'] = v.pop('fwd_ms') * 1e3
            rec[label] = v
        fp32 = [rec[k]['us_per_call'] for k in ('fp32', 'fp32_math') if rec[k].get('us_per_call')]
        rec['fp32_best_us_per_call'] = min(fp32) if fp32 else None
        log(f'  decode B={B} H={H} L={L} D={D}: fp32 best {fmt(rec["fp32_best_us_per_call"])} us, bf16 flash '
            f'{fmt(rec["bf16_flash"].get("us_per_call"))} us')
        out_dec.append(rec)
    return out_attn, out_dec, defaults


# ---------------------------------------------------------------------------------------------------------- MoE
class MoELoop:
    """One MoE layer the way a PyTorch user writes it: router linear (+bias), softmax over E, top-k (weights not
    renormalised), then for each expert: index_select its tokens -> SwiGLU FFN w2·(silu(w1·x+b1) ⊙ (w3·x+b3))+b2 ->
    scale by the router weight -> index_add into the output. The routed slots are sorted by expert once (one host
    sync for the counts). With aux (as wavemoe's layer and its --bench): the Switch load-balancing loss
    0.01·E·Σ f_e·P_e (f constant) and the router z-loss 0.001·mean(logsumexp²), in the forward and the
    backward."""

    def __init__(self, torch, dev, N, D, F, E, k, bias, need_grad, aux=True):
        self.torch, self.E, self.k, self.aux = torch, E, k, aux
        self.aux_loss = None
        g = torch.Generator(device=dev)
        g.manual_seed(4321)
        rnd = lambda *s, std=0.02: torch.randn(*s, device=dev, generator=g) * std  # noqa: E731
        self.x = torch.randn(N, D, device=dev, generator=g)
        self.params = {'wg': rnd(E, D, std=1.0 / math.sqrt(D)), 'w1': rnd(E, F, D), 'w3': rnd(E, F, D),
                       'w2': rnd(E, D, F)}
        if bias:
            self.params.update(bg=rnd(E), b1=rnd(E, F), b3=rnd(E, F), b2=rnd(E, D))
        self.bias = bias
        if need_grad:
            self.x.requires_grad_(True)
            for p in self.params.values():
                p.requires_grad_(True)
            self.dout = torch.randn(N, D, device=dev, generator=g)

    def forward(self, x):
        torch, F_ = self.torch, self.torch.nn.functional
        p, E, k = self.params, self.E, self.k
        b = (lambda name, e=None: (p[name] if e is None else p[name][e])) if self.bias else (lambda *a: None)
        logits = F_.linear(x, p['wg'], b('bg'))
        probs = logits.softmax(-1)
        weight, expert = probs.topk(k, dim=-1)
        flat = expert.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts_t = torch.bincount(flat, minlength=E)
        counts = counts_t.tolist()
        token = torch.div(order, k, rounding_mode='floor')
        w_sorted = weight.reshape(-1).index_select(0, order)
        out = torch.zeros_like(x)
        start = 0
        for e, n in enumerate(counts):
            if not n:
                continue
            tok = token[start:start + n]
            xe = x.index_select(0, tok)
            h = F_.silu(F_.linear(xe, p['w1'][e], b('b1', e))) * F_.linear(xe, p['w3'][e], b('b3', e))
            y = F_.linear(h, p['w2'][e], b('b2', e)) * w_sorted[start:start + n, None]
            out.index_add_(0, tok, y.to(out.dtype))  # bf16 under autocast; the sum stays float32
            start += n
        if self.aux:
            f = counts_t.to(x.dtype) / (x.shape[0] * k)  # a constant (no gradient), as in Switch
            balance = E * (f * probs.mean(0)).sum()
            z = torch.logsumexp(logits, dim=-1).pow(2).mean()
            self.aux_loss = 0.01 * balance + 0.001 * z
        return out

    def fwd(self):
        with self.torch.no_grad():
            return self.forward(self.x.detach())

    def fwd_bwd(self):
        out = self.forward(self.x)
        inputs = [self.x] + list(self.params.values())
        if self.aux:
            return self.torch.autograd.grad([out, self.aux_loss], inputs,
                                            [self.dout, self.torch.ones_like(self.aux_loss)])
        return self.torch.autograd.grad(out, inputs, self.dout)


def check_moe(torch, dev):
    """max |loop - reference| / max |reference| of MoELoop's forward against a per-token float64 computation (so
    that the baseline computes the layer it claims to), on a small random case."""
    N, D, F, E, k = 64, 16, 24, 4, 2
    m = MoELoop(torch, dev, N, D, F, E, k, True, False, aux=False)
    m.x = m.x.double()
    m.params = {n: p.double() * 20 for n, p in m.params.items()}  # weights far from 0: the routing matters
    with torch.no_grad():
        got = m.forward(m.x)
        p, F_ = m.params, torch.nn.functional
        probs = F_.linear(m.x, p['wg'], p['bg']).softmax(-1)
        ref = torch.zeros_like(m.x)
        for t in range(N):
            w, idx = probs[t].topk(k)
            for j in range(k):
                e = int(idx[j])
                h = F_.silu(p['w1'][e] @ m.x[t] + p['b1'][e]) * (p['w3'][e] @ m.x[t] + p['b3'][e])
                ref[t] += w[j] * (p['w2'][e] @ h + p['b2'][e])
    return float((got - ref).abs().max() / ref.abs().max())


def bench_moe(torch, timer, rows, dev, args, notes):
    out = []
    for row in rows:
        N, D, F, E, k = (int(row[n]) for n in ('N', 'D', 'F', 'E', 'k'))
        bias = bool(first_key(row, ('bias', 'ffn_bias'), True))
        aux = bool(first_key(row, ('aux', 'aux_losses'), not args.moe_no_aux))
        rec = shape_fields(row)
        rec.update(bias=bias, aux_losses=aux)
        # A bf16 row (wavemoe under the bf16 matmul precision) is compared with the loop under bf16 autocast, the way
        # a PyTorch user trains in bf16.
        bf16 = row.get('precision') == 'bf16'

        def in_precision(fn):
            if not bf16:
                return fn

            def run():
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                    return fn()
            return run

        try:
            m = MoELoop(torch, dev, N, D, F, E, k, bias, True, aux)
            rec['fwd_ms'] = timer.ms(in_precision(m.fwd))
            rec['fwd_tokens_per_s'] = N / (rec['fwd_ms'] * 1e-3)
            rec['fwd_bwd_ms'] = timer.ms(in_precision(m.fwd_bwd))
            rec['fwd_bwd_tokens_per_s'] = N / (rec['fwd_bwd_ms'] * 1e-3)
            del m
        except Exception as e:  # noqa: BLE001
            rec['error'] = short_error(e)
            notes.append(f'moe N={N} D={D} F={F} E={E} k={k}: {rec["error"]}')
        release(torch, dev)
        log(f'  moe N={N} D={D} F={F} E={E} k={k}: fwd {fmt(rec.get("fwd_tokens_per_s"))} tok/s, fwd+bwd '
            f'{fmt(rec.get("fwd_bwd_tokens_per_s"))} tok/s')
        out.append(rec)
        if timer_over_budget(args):
            notes.append('time budget spent: the remaining MoE rows were not measured')
            break
    return out


# ---------------------------------------------------------------------------------------------------------- helpers
_T0 = time.perf_counter()


def timer_over_budget(args):
    return time.perf_counter() - _T0 > args.budget_s


def release(torch, dev):
    if dev.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def fmt(x, digits=1):
    if x is None:
        return '-'
    if abs(x) >= 1000:
        return f'{x:,.0f}'
    if 0 < abs(x) < 1:
        return f'{x:.3g}'
    return f'{x:.{digits}f}'


def print_tables(res):
    if res.get('matmul'):
        print(f'torch.matmul float32 (TF32 off) on {res["device"]}')
        print(f'{"M":>8} {"K":>8} {"N":>8} {"ms":>10} {"GFLOP/s":>10}')
        for r in res['matmul']:
            print(f'{r["M"]:>8} {r["K"]:>8} {r["N"]:>8} {fmt(r.get("ms"), 4):>10} {fmt(r.get("gflops")):>10}'
                  + (f'  {r["error"]}' if r.get('error') else ''))
    if res.get('attention'):
        print('F.scaled_dot_product_attention, TFLOP/s (fwd / fwd+bwd); fp32 backend forced, bf16 = FLASH_ATTENTION')
        print(f'{"B":>4} {"H":>4} {"T":>6} {"D":>4} {"causal":>6} {"fp32 backend":>20} {"fp32 fwd":>9} '
              f'{"fp32 f+b":>9} {"bf16 fwd":>9} {"bf16 f+b":>9}')
        for r in res['attention']:
            a, b = r['fp32'], r['bf16_flash']
            print(f'{r.get("B", "-"):>4} {r.get("H", "-"):>4} {r.get("T", r.get("Tq", "-")):>6} {r.get("D", "-"):>4} '
                  f'{str(r.get("causal", "-")):>6} {str(a.get("backend")):>20} {fmt(a.get("fwd_tflops")):>9} '
                  f'{fmt(a.get("fwd_bwd_tflops")):>9} {fmt(b.get("fwd_tflops")):>9} {fmt(b.get("fwd_bwd_tflops")):>9}')
        for label, names in res.get('sdpa_default_kernels', {}).items():
            print(f'  PyTorch\'s own SDPA choice for {label} (no backend forced), kernels: {"; ".join(names)}')
    if res.get('decode'):
        print('decoding (one query row vs the KV cache), microseconds per call')
        print(f'{"B":>4} {"H":>4} {"kv_len":>8} {"D":>4} {"fp32 sdpa":>10} {"backend":>20} {"fp32 math":>10} '
              f'{"bf16 flash":>10}')
        for r in res['decode']:
            print(f'{r.get("B", "-"):>4} {r.get("H", "-"):>4} {r.get("kv_length", "-"):>8} {r.get("D", "-"):>4} '
                  f'{fmt(r["fp32"].get("us_per_call")):>10} {str(r["fp32"].get("backend")):>20} '
                  f'{fmt(r["fp32_math"].get("us_per_call")):>10} {fmt(r["bf16_flash"].get("us_per_call")):>10}')
    if res.get('moe'):
        print('MoE layer as a PyTorch per-expert loop, float32, tokens/s')
        print(f'{"N":>7} {"D":>5} {"F":>5} {"E":>3} {"k":>2} {"fwd tok/s":>12} {"fwd+bwd tok/s":>14}')
        for r in res['moe']:
            print(f'{r["N"]:>7} {r["D"]:>5} {r["F"]:>5} {r["E"]:>3} {r["k"]:>2} {fmt(r.get("fwd_tokens_per_s")):>12} '
                  f'{fmt(r.get("fwd_bwd_tokens_per_s")):>14}' + (f'  {r["error"]}' if r.get('error') else ''))
    for n in res.get('notes', []):
        print(f'note: {n}')


def skipped(reason):
    print(f'torch_baseline: SKIPPED ({reason})')
    print(json.dumps({'baseline': 'torch', 'skipped': reason}))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('native', nargs='*', help='native --bench outputs (logs or JSON files)')
    ap.add_argument('--warmup', type=int, default=3, help='warm-up calls before each measurement (default 3)')
    ap.add_argument('--repeats', type=int, default=15, help='samples per measurement, median taken (default 15)')
    ap.add_argument('--min-sample-ms', type=float, default=2.0,
                    help='back-to-back calls per sample until a sample lasts this long (default 2)')
    ap.add_argument('--max-seconds', type=float, default=1.5,
                    help='stop sampling one measurement after this long, keeping at least 3 samples (default 1.5)')
    ap.add_argument('--budget-s', type=float, default=300,
                    help='after this many seconds in all, rows still to come are skipped (default 300)')
    ap.add_argument('--moe-no-aux', action='store_true',
                    help='MoE loop without the load-balancing and z losses (default: with them, as wavemoe\'s bench)')
    ap.add_argument('--no-profile', action='store_true', help="don't read PyTorch's default SDPA kernels")
    ap.add_argument('--cpu', action='store_true', help='smoke test on the CPU (tiny fixtures only; no real figures)')
    args = ap.parse_args(argv)

    inputs = []
    for path in args.native:
        try:
            inputs.append((path, last_json_object(path)))
        except (OSError, ValueError) as e:
            log(f'torch_baseline: ignoring {path}: {e}')
    if not inputs:
        ap.error('no native --bench JSON given (or none readable)')

    try:
        import torch
    except ImportError as e:
        return skipped(f'no CUDA device: {sys.executable} cannot import torch ({e})')
    if args.cpu:
        dev = torch.device('cpu')
    else:
        if not torch.cuda.is_available():
            return skipped(f'no CUDA device: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU; '
                           'this baseline needs one (--cpu only smoke-tests the code)')
        dev = torch.device('cuda', 0)
        torch.cuda.set_device(dev)

    # float32 means float32: no TF32 in matmuls (cuBLAS) or convolutions.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if hasattr(torch, 'set_float32_matmul_precision'):
        torch.set_float32_matmul_precision('highest')
    torch.manual_seed(0)

    timer = Timer(torch, dev, args)
    res = {'baseline': 'torch', 'torch': torch.__version__, 'python': sys.version.split()[0]}
    if dev.type == 'cuda':
        p = torch.cuda.get_device_properties(dev)
        res.update(device=torch.cuda.get_device_name(dev), capability=f'{p.major}.{p.minor}',
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                   memory_gib=round(p.total_memory / 2**30, 1))
    else:
        res.update(device='cpu (smoke test: figures mean nothing)')
    clock = 'CUDA events' if dev.type == 'cuda' else 'host clock'
    res.update(tf32=False, timing=(f'{clock}; {args.warmup} warm-up calls; median of up to {args.repeats} samples '
                                   f'of >= {args.min_sample_ms} ms'),
               attention_flops='fwd 4*B*H*Tq*Tk*D (halved when causal); fwd+bwd 3.5x fwd',
               inputs=[os.path.basename(p) for p, _ in inputs])
    notes = []
    log(f'torch_baseline: torch {torch.__version__} on {res["device"]}')
    for path, obj in inputs:
        if obj.get('skipped'):
            notes.append(f'{os.path.basename(path)}: skipped upstream ({obj["skipped"]})')
            continue
        known = False
        if isinstance(obj.get('results'), list):
            known = True
            res['matmul'] = res.get('matmul', []) + bench_matmul(torch, timer, obj['results'], dev)
        if isinstance(obj.get('attention'), list) or isinstance(obj.get('decode'), list):
            known = True
            a, d, defaults = bench_attention(torch, timer, obj, dev, args, notes)
            res['attention'] = res.get('attention', []) + a
            res['decode'] = res.get('decode', []) + d
            if defaults:
                res['sdpa_default_kernels'] = defaults
        if isinstance(obj.get('moe'), list):
            known = True
            if 'moe_loop_check_rel_err' not in res:
                err = check_moe(torch, dev)
                log(f'  moe loop vs per-token reference (float64): max rel err {err:.2e}')
                if not err < 1e-9:
                    raise RuntimeError(f'the MoE loop baseline does not match its per-token reference ({err})')
                res['moe_loop_check_rel_err'] = err
            res['moe'] = res.get('moe', []) + bench_moe(torch, timer, obj['moe'], dev, args, notes)
        if not known:
            notes.append(f'{os.path.basename(path)}: no section this baseline knows (results/attention/decode/moe)')
    res['notes'] = list(dict.fromkeys(notes))  # each once, in order
    res['seconds'] = round(time.perf_counter() - _T0, 1)
    print_tables(res)
    print(json.dumps(res, separators=(',', ':')))
    return 0


if __name__ == '__main__':
    sys.exit(main())
