#!/usr/bin/env python3
"""PyTorch baseline for wavemoe's GPU training and generation speed (issue 13; bench/gpu_train.js is wavemoe's side,
bench/gpu_train.sh runs both and prints the ratios).

The project's own PyTorch implementation (model.py: the same moe-small and moe-base, same shapes) on one GPU:

  eager   fp32   plain float32 (PyTorch's default, left as it is: no TF32 in matmuls)
  eager   bf16   torch.autocast(device_type='cuda', dtype=torch.bfloat16) around forward + loss; float32 master
                 weights, gradients and AdamW state (no GradScaler: bf16 needs none)
  compile fp32 / bf16   the same step with the forward + loss function under torch.compile (mode default; the
                 backward is compiled by AOTAutograd with it; the MoE's data-dependent expert split graph-breaks)
  (tf32 too when --precisions names it: torch.backends.cuda.matmul.fp32_precision = 'tf32', or the older flags)

One training step = zero_grad(set_to_none=True), forward, mean cross-entropy + the MoE auxiliary losses, backward,
clip_grad_norm_(1.0), AdamW(lr 3e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on rank >= 2 tensors) step:
wavemoe's Trainer defaults. One fixed batch of random tokens per model (the loss must fall). Each (model, mode,
precision) starts from the same initial weights (seed 0, built and initialised on the CPU, then moved to the GPU) and
a fresh optimizer. Each step is timed between torch.cuda.synchronize() calls; after --warmup steps (at least 3 under
torch.compile, whose first steps compile and recompile), tokens/s = batch * seq / median step. Peak memory:
torch.cuda.max_memory_allocated after reset_peak_memory_stats (weights, gradients, AdamW state, activations).
MFU as bench/gpu_train.js: FLOPs per token = 6 * N_active + 12 * n_layers * seq * d_model (N_active: wq, wk, wv,
wo, router, top_k experts, lm_head), over the GPU's dense peak at that precision (PEAKS, or --peak-tflops).

Order: every eager run first (model by model, with generation after the --gen-model's), then the torch.compile
runs, so that a --budget-s deadline cuts the compile runs first. Only one model is on the GPU at a time.

Generation (eager only; the decode loop of bench_generate.py on the GPU): greedy with a preallocated KV cache, the
--gen-model, a random --gen-prompt-token prompt per row, --gen-new new tokens, at each --gen-batches size and each
precision (bf16: under autocast), a synchronize after every token; one short warm-up, then the median over
--gen-repeats of decode_tokens_per_s = batch * (new - 1) / (first to last new token), e2e_tokens_per_s, ttft_ms,
step_ms_median. On the GPU the decode path is plain nn.Linear + matmul attention (model.FAST_DECODE = False: the
GEMV path is an OpenBLAS workaround; --fast-decode uses it).

  python3 bench/pytorch/bench_gpu_train.py                          # both presets at the issue's shapes, on cuda:0
  python3 bench/pytorch/bench_gpu_train.py --models moe-small --steps 5 --warmup 2 --modes eager
  /usr/bin/python3 bench/pytorch/bench_gpu_train.py --device cpu --tiny     # smoke test without a GPU

Without a GPU (and --device cuda...) it prints `bench:gpu-train: SKIPPED (<reason>)` and exits 0. Output: one line per
run, a `gpu-train-result {json}` line after each (kept by gpu_train.sh if the run is cut short), last ONE JSON object.
"""
import argparse
import copy
import gc
import json
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep bench/pytorch free of __pycache__
import common  # noqa: E402

PRESETS = ['moe-small', 'moe-base']
SHAPES = {'moe-small': (16, 256), 'moe-base': (16, 1024)}  # (batch, seq): the issue's
# Keep in sync with TINY in bench/gpu_train.js.
TINY = {
    'moe-small': {'vocab_size': 512, 'd_model': 64, 'n_layers': 2, 'n_heads': 4, 'n_kv_heads': 4, 'd_ff': 128,
                  'max_seq_len': 128},
    'moe-base': {'vocab_size': 1024, 'd_model': 96, 'n_layers': 3, 'n_heads': 4, 'n_kv_heads': 4, 'd_ff': 192,
                 'max_seq_len': 128},
}
TINY_SHAPE = (2, 32)
# Dense peak TFLOP/s by GPU name (vendor datasheets; no sparsity). Keep in sync with PEAKS in bench/gpu_train.js.
PEAKS = [
    (r'H[12]00 NVL', 'H100/H200 NVL', {'fp32': 60, 'tf32': 417.5, 'bf16': 835}),
    (r'H100 PCIe', 'H100 PCIe', {'fp32': 51, 'tf32': 378, 'bf16': 756}),
    (r'GH200|H200|H100', 'H100/H200 SXM', {'fp32': 67, 'tf32': 494.7, 'bf16': 989.4}),
    (r'A100', 'A100', {'fp32': 19.5, 'tf32': 156, 'bf16': 312}),
]
PRECISIONS = ['fp32', 'tf32', 'bf16']
MODES = ['eager', 'compile']
RESULT = 'gpu-train-result '


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', default=','.join(PRESETS), help='comma-separated, of: ' + ', '.join(PRESETS))
    p.add_argument('--batch', default='', help='one integer for every model, or moe-small=16,moe-base=16')
    p.add_argument('--seq', default='', help='one integer, or moe-small=256,moe-base=1024 (the defaults)')
    p.add_argument('--steps', type=int, default=None, help='timed steps (default 10; --tiny 3)')
    p.add_argument('--warmup', type=int, default=None, help='warm-up steps (default 3; --tiny 1; compile: >= 3)')
    p.add_argument('--precisions', default='fp32,bf16', help='of fp32, tf32, bf16')
    p.add_argument('--modes', default='eager,compile', help='eager, compile (torch.compile, mode default)')
    p.add_argument('--device', default='cuda:0')
    p.add_argument('--tiny', action='store_true', help='small configs of the same shape (TINY), batch 2 x 32')
    p.add_argument('--peak-tflops', default='', help='one number for every precision, or fp32=67,bf16=989')
    p.add_argument('--gen-model', default='moe-small', choices=PRESETS)
    p.add_argument('--gen-batches', default='', help='default 1,32 (--tiny 1,4)')
    p.add_argument('--gen-prompt', type=int, default=None, help='prompt tokens per row (default 32; --tiny 8)')
    p.add_argument('--gen-new', type=int, default=None, help='new tokens (default 128; --tiny 16)')
    p.add_argument('--gen-repeats', type=int, default=2)
    p.add_argument('--gen-precisions', default='', help='default: --precisions')
    p.add_argument('--no-gen', action='store_true')
    p.add_argument('--fast-decode', action='store_true', help="decode through model.py's GEMV path (FAST_DECODE)")
    p.add_argument('--adamw', default='default', choices=['default', 'foreach', 'fused', 'for-loop'],
                   help="AdamW implementation (default: PyTorch's choice, foreach on CUDA)")
    p.add_argument('--budget-s', type=float, default=0, help='no new run starts after this many seconds (0: none)')
    p.add_argument('--threads', type=int, default=0, help='torch.set_num_threads (0: leave)')
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()

    def names(flag, value, allowed):
        out = [x.strip() for x in value.split(',') if x.strip()]
        bad = [x for x in out if x not in allowed]
        if bad or not out:
            p.error(f'{flag}: {bad or value!r} not among {", ".join(allowed)}')
        return out

    def per_model(flag, value, index):
        out = {m: (TINY_SHAPE if a.tiny else SHAPES[m])[index] for m in PRESETS}
        if not value:
            return out
        if re.fullmatch(r'\d+', value):
            return {m: int(value) for m in PRESETS}
        for pair in value.split(','):
            m, _, x = pair.partition('=')
            if m not in PRESETS or not re.fullmatch(r'\d+', x) or int(x) < 1:
                p.error(f'{flag}: {pair!r} is not <model>=<integer> (models: {", ".join(PRESETS)})')
            out[m] = int(x)
        return out

    a.models = names('--models', a.models, PRESETS)
    a.precisions = names('--precisions', a.precisions, PRECISIONS)
    a.gen_precisions = names('--gen-precisions', a.gen_precisions, PRECISIONS) if a.gen_precisions else a.precisions
    a.modes = names('--modes', a.modes, MODES)
    a.batch = per_model('--batch', a.batch, 0)
    a.seq = per_model('--seq', a.seq, 1)
    a.steps = a.steps if a.steps is not None else (3 if a.tiny else 10)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.tiny else 3)
    a.gen_batches = [int(x) for x in (a.gen_batches or ('1,4' if a.tiny else '1,32')).split(',')]
    a.gen_prompt = a.gen_prompt if a.gen_prompt is not None else (8 if a.tiny else 32)
    a.gen_new = a.gen_new if a.gen_new is not None else (16 if a.tiny else 128)
    if a.steps < 1 or a.warmup < 0 or a.gen_repeats < 1 or a.gen_new < 2 or a.gen_prompt < 1 or \
            min(a.gen_batches) < 1:
        p.error('--steps, --gen-repeats, --gen-prompt and --gen-batches need >= 1, --gen-new >= 2, --warmup >= 0')
    a.peak = parse_peak(p, a.peak_tflops)
    return a


def parse_peak(p, value):
    if not value:
        return None
    if re.fullmatch(r'[\d.]+', value):
        return {k: float(value) for k in PRECISIONS}
    out = {k: None for k in PRECISIONS}
    for pair in value.split(','):
        k, _, x = pair.partition('=')
        try:
            out[k] = float(x)
        except ValueError:
            k = None
        if k not in PRECISIONS:
            p.error(f'--peak-tflops: {pair!r} is not <precision>=<TFLOP/s>')
    return out


def peak_for(gpu_name, override):
    if override:
        return {'label': '--peak-tflops', **override}
    for pattern, label, peaks in PEAKS:
        if gpu_name and re.search(pattern, gpu_name, re.I):
            return {'label': f'table: {label}', **peaks}
    return None


def active_params(c):
    """Weights of the matrix products one token goes through: per layer wq, wk, wv, wo, the router and top_k
    experts; lm_head. Not the embedding (a lookup), norms or biases (as bench/gpu_train.js)."""
    D, L, V, F = c['d_model'], c['n_layers'], c['vocab_size'], c['d_ff']
    kv = c['n_kv_heads'] * (D // c['n_heads'])
    attn = 2 * D * D + 2 * D * kv
    expert = (3 if c['activation'] == 'swiglu' else 2) * D * F
    ffn = c['n_experts'] * D + c['top_k'] * expert if c['ffn'] == 'moe' else expert
    return L * (attn + ffn) + V * D


def flops_per_token(c, T):
    return 6 * active_params(c) + 12 * c['n_layers'] * T * c['d_model']


median = common.median


def config_for(M, name, tiny):
    if not tiny:
        return M.load_config(name)
    with open(os.path.join(M.PRESET_DIR, name + '.json')) as f:
        raw = json.load(f)
    raw.update(TINY[name])
    fd, path = tempfile.mkstemp(suffix='.json')
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(raw, f)
        return M.load_config(path)
    finally:
        os.unlink(path)


def fmt(x, d=1):
    return '-' if x is None else f'{x:.{d}f}'


def emit(kind, rec):
    print(RESULT + json.dumps({'kind': kind, **rec}), flush=True)


def main():
    a = parse()
    t_start = time.perf_counter()
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        print(f'bench:gpu-train: SKIPPED ({sys.executable} cannot import torch: {e})')
        return 0
    import model as M

    cuda = a.device != 'cpu'
    if cuda and not torch.cuda.is_available():
        print(f'bench:gpu-train: SKIPPED (torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU for '
              f'{a.device})')
        return 0
    device = torch.device(a.device)
    dev_type = device.type
    gpu = None
    if cuda:
        if device.index is not None and device.index >= torch.cuda.device_count():
            print(f'bench:gpu-train: SKIPPED ({a.device}: no such GPU; {torch.cuda.device_count()} present)')
            return 0
        torch.cuda.set_device(device)
        props = torch.cuda.get_device_properties(device)
        gpu = {'name': props.name, 'compute_capability': f'{props.major}.{props.minor}',
               'total_gib': props.total_memory / 2 ** 30, 'multiprocessors': props.multi_processor_count}
    if a.threads:
        torch.set_num_threads(a.threads)
    M.FAST_DECODE = a.fast_decode
    peak = peak_for(gpu['name'] if gpu else None, a.peak) if (cuda or a.peak) else None
    has_compile = hasattr(torch, 'compile')
    if has_compile:
        import torch._dynamo as dynamo
        # The MoE's per-expert slices change size every step; recompiles are expected (automatic dynamic shapes).
        for key in ('recompile_limit', 'cache_size_limit'):  # the newer name first
            if hasattr(dynamo.config, key):
                setattr(dynamo.config, key, max(64, getattr(dynamo.config, key)))
                break
    adamw_kw = {}
    if a.adamw == 'foreach':
        adamw_kw = {'foreach': True}
    elif a.adamw == 'fused':
        adamw_kw = {'fused': True}
    elif a.adamw == 'for-loop':
        adamw_kw = {'foreach': False}
    optimizer_desc = (f'AdamW(lr=3e-4, betas=(0.9, 0.95), eps=1e-8, wd=0.1 on rank>=2; {a.adamw}), '
                      'clip_grad_norm_(1.0)')

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    def free():
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    tf32 = {'on': False}

    def set_precision(p):
        """TF32 for float32 matmuls only when p is 'tf32'. PyTorch's default (no TF32) is left untouched otherwise:
        mixing the legacy (allow_tf32, set_float32_matmul_precision) and the newer fp32_precision API raises in
        recent versions, so only one of them is ever used, and only when a tf32 run asks for it."""
        want = p == 'tf32'
        if want == tf32['on']:
            return
        matmul = torch.backends.cuda.matmul
        try:
            new_api = isinstance(matmul.fp32_precision, str)  # PyTorch >= 2.9 (1.13 raises AssertionError)
        except Exception:  # noqa: BLE001
            new_api = False
        if new_api:
            matmul.fp32_precision = 'tf32' if want else 'ieee'
        else:
            torch.set_float32_matmul_precision('high' if want else 'highest')
            matmul.allow_tf32 = want
        tf32['on'] = want

    def out_of_time():
        return a.budget_s > 0 and time.perf_counter() - t_start > a.budget_s

    where = f'{a.device}' + (f' ({gpu["name"]}, {gpu["total_gib"]:.0f} GiB, compute {gpu["compute_capability"]})'
                             if gpu else '')
    peak_desc = (f'{peak["label"]}: fp32 {peak["fp32"]}, tf32 {peak["tf32"]}, bf16 {peak["bf16"]} TFLOP/s' if peak
                 else 'unknown (MFU not computed; --peak-tflops)')
    print(f'bench:gpu-train: PyTorch {torch.__version__} (CUDA {torch.version.cuda}) on {where}; peak {peak_desc}'
          + ('; --tiny configs' if a.tiny else '') + ('' if has_compile else '; no torch.compile in this PyTorch'),
          flush=True)

    meta = {'torch': torch.__version__, 'cuda': torch.version.cuda, 'device': a.device, 'gpu': gpu, 'tiny': a.tiny,
            'peak_tflops': peak}
    emit('meta', meta)
    train, generate, skipped, errors = [], [], [], []
    cpu_models = {}

    def cpu_model(name):
        """The model built and initialised on the CPU once (seed); every run starts from a copy of these weights."""
        if name not in cpu_models:
            t0 = time.perf_counter()
            torch.manual_seed(a.seed)
            m = M.Transformer(config_for(M, name, a.tiny)).init_weights(a.seed)
            m.train()
            cpu_models[name] = (m, time.perf_counter() - t0)
        return cpu_models[name]

    def train_run(name, m, mode, precision, build_s):
        c = m.config
        B, T = a.batch[name], a.seq[name]
        if T > c['max_seq_len']:
            raise ValueError(f'--seq {T} exceeds {name} max_seq_len {c["max_seq_len"]}')
        set_precision(precision)
        g = torch.Generator().manual_seed(a.seed + 1)
        data = torch.randint(0, c['vocab_size'], (B, T + 1), generator=g)
        ids, targets = data[:, :-1].contiguous().to(device), data[:, 1:].contiguous().to(device)
        params = [p for p in m.parameters() if p.requires_grad]
        bf16 = precision == 'bf16'

        def loss_fn(ids, targets):
            with torch.autocast(device_type=dev_type, dtype=torch.bfloat16, enabled=bf16):
                return m.loss(ids, targets)

        if mode == 'compile':
            dynamo.reset()
            m._mask(T, m.rope_cos.device, torch.float32)  # the causal mask cached outside the compiled function
            fn = torch.compile(loss_fn)
        else:
            fn = loss_fn
        m.zero_grad(set_to_none=True)
        free()
        opt = torch.optim.AdamW(M.param_groups(m, 0.1), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, **adamw_kw)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)

        def step():
            opt.zero_grad(set_to_none=True)
            loss, ce = fn(ids, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            return ce.item()

        warmup = max(a.warmup, 3) if mode == 'compile' else a.warmup
        times, losses, first_ms = [], [], None
        try:
            for i in range(warmup + a.steps):
                sync()
                t0 = time.perf_counter()
                ce = step()
                sync()
                dt = (time.perf_counter() - t0) * 1e3
                if i == 0:
                    first_ms = dt
                losses.append(round(ce, 4))
                if i >= warmup:
                    times.append(dt)
            peak_mem = torch.cuda.max_memory_allocated(device) / 2 ** 20 if cuda else None
        finally:
            del opt
            m.zero_grad(set_to_none=True)
            set_precision('fp32')
        med = median(times)
        tps = B * T / (med / 1e3)
        fpt = flops_per_token(c, T)
        pk = peak[precision] if peak else None
        return {
            'impl': 'pytorch', 'mode': mode, 'model': name, 'precision': precision, 'batch': B, 'seq_len': T,
            'tokens_per_step': B * T, 'warmup_steps': warmup, 'timed_steps': len(times),
            'tokens_per_s': tps, 'step_ms_median': med, 'step_ms_min': min(times),
            'step_ms': [round(t, 2) for t in times], 'first_step_ms': first_ms,
            'total_params': sum(p.numel() for p in params), 'active_params': active_params(c),
            'flops_per_token': fpt, 'achieved_tflops': fpt * tps / 1e12, 'peak_tflops': pk,
            'mfu': fpt * tps / (pk * 1e12) if pk else None,
            'peak_mem_mib': peak_mem if cuda else common.peak_rss_mb(),
            'peak_mem_kind': 'torch.cuda.max_memory_allocated (this run)' if cuda else 'peak RSS (process, CPU)',
            'loss': losses, 'build_s': build_s,
        }

    def generate_run(name, m, batch, precision):
        c = m.config
        P = a.gen_prompt
        new = min(a.gen_new, c['max_seq_len'] - P)
        if new < 2:
            raise ValueError(f'--gen-prompt {P} leaves no room for 2 new tokens below max_seq_len {c["max_seq_len"]}')
        set_precision(precision)
        m.eval()
        g = torch.Generator().manual_seed(a.seed + 7)
        prompt = torch.randint(0, c['vocab_size'], (batch, P), generator=g).to(device)
        bf16 = precision == 'bf16'
        if a.fast_decode:
            m.prepare_decode()

        def run(n):
            stamps = []
            sync()
            t0 = time.perf_counter()

            def on_token(i):
                sync()
                stamps.append(time.perf_counter() - t0)

            with torch.autocast(device_type=dev_type, dtype=torch.bfloat16, enabled=bf16):
                out = m.generate_greedy(prompt, n, on_token=on_token)
            return out, stamps

        runs, first = [], None
        try:
            run(min(8, new))  # warm-up
            for _ in range(a.gen_repeats):
                out, stamps = run(new)
                if first is None:
                    first = out[0, :8].tolist()
                steps = [stamps[i] - stamps[i - 1] for i in range(1, len(stamps))]
                runs.append({
                    'ttft_ms': stamps[0] * 1e3,
                    'decode_tokens_per_s': batch * (new - 1) / (stamps[-1] - stamps[0]),
                    'e2e_tokens_per_s': batch * new / stamps[-1],
                    'step_ms_median': median(steps) * 1e3,
                })
        finally:
            m.train()
            set_precision('fp32')
        result = {k: median([r[k] for r in runs]) for k in runs[0]}
        return {'impl': 'pytorch', 'mode': 'eager', 'model': name, 'precision': precision, 'batch': batch,
                'prompt_tokens': P, 'new_tokens': new, 'repeats': len(runs), **result, 'runs': runs,
                'first_tokens': first, 'decode_path': 'GEMV (FAST_DECODE)' if a.fast_decode else 'nn.Linear + matmul'}

    def train_line(r):
        mfu = '-' if r['mfu'] is None else f'{100 * r["mfu"]:.1f}%'
        return (f'pytorch train {r["model"]:9s} {r["precision"]} {r["mode"]:7s} {r["batch"]}x{r["seq_len"]:<5d} '
                f'{r["tokens_per_s"]:10.1f} tokens/s  step {r["step_ms_median"]:8.2f} ms (median of '
                f'{r["timed_steps"]}, min {r["step_ms_min"]:.2f}; first {r["first_step_ms"]:.0f})  MFU {mfu} '
                f'({r["achieved_tflops"]:.2f} TFLOP/s)  peak {fmt(r["peak_mem_mib"], 0)} MiB  '
                f'loss {r["loss"][0]} -> {r["loss"][-1]}')

    def gen_line(g):
        return (f'pytorch generate {g["model"]} {g["precision"]} batch {g["batch"]:2d}: decode '
                f'{g["decode_tokens_per_s"]:.1f} tokens/s (step {g["step_ms_median"]:.2f} ms), TTFT '
                f'{g["ttft_ms"]:.1f} ms ({g["prompt_tokens"]}-token prompt), end-to-end '
                f'{g["e2e_tokens_per_s"]:.1f} tokens/s, {g["new_tokens"]} new, median of {g["repeats"]}')

    def failed(what, e):
        msg = f'{type(e).__name__}: {e}'.strip()
        errors.append({**what, 'error': msg[:2000]})
        print(f'pytorch {" ".join(str(v) for v in what.values())}: FAILED: {msg[:500]}', flush=True)
        free()

    for mode in a.modes:
        for name in a.models:
            if mode == 'compile' and not has_compile:
                skipped.append({'model': name, 'mode': mode,
                                'reason': f'torch.compile needs PyTorch >= 2.0 (this is {torch.__version__})'})
                continue
            if out_of_time():
                skipped.append({'model': name, 'mode': mode, 'reason': f'--budget-s {a.budget_s:g} reached'})
                continue
            try:
                base, build_s = cpu_model(name)
                m = copy.deepcopy(base).to(device)
            except Exception as e:  # noqa: BLE001
                failed({'stage': 'build', 'model': name, 'mode': mode}, e)
                continue
            first = True
            for p in a.precisions:
                if out_of_time():
                    skipped.append({'model': name, 'mode': mode, 'precision': p,
                                    'reason': f'--budget-s {a.budget_s:g} reached'})
                    continue
                try:
                    if not first:
                        m.load_state_dict(base.state_dict())  # the same initial weights for every run
                    first = False
                    r = train_run(name, m, mode, p, build_s)
                    train.append(r)
                    print(train_line(r), flush=True)
                    emit('train', r)
                except Exception as e:  # noqa: BLE001
                    failed({'stage': 'train', 'model': name, 'mode': mode, 'precision': p}, e)
            if mode == 'eager' and name == a.gen_model and not a.no_gen:
                for p in a.gen_precisions:
                    for b in a.gen_batches:
                        if out_of_time():
                            skipped.append({'model': name, 'precision': p, 'gen_batch': b,
                                            'reason': f'--budget-s {a.budget_s:g} reached'})
                            continue
                        try:
                            g = generate_run(name, m, b, p)
                            generate.append(g)
                            print(gen_line(g), flush=True)
                            emit('generate', g)
                        except Exception as e:  # noqa: BLE001
                            failed({'stage': 'generate', 'model': name, 'precision': p, 'gen_batch': b}, e)
            del m
            if mode == 'compile':
                dynamo.reset()  # its caches hold the model
            free()
    if not a.no_gen and a.gen_model not in a.models:
        skipped.append({'model': a.gen_model, 'reason': 'generation: --gen-model is not among --models'})

    print()
    print('model      prec  mode     batch x seq   tokens/s   step ms    MFU  TFLOP/s  peak MiB  loss first -> last')
    for r in train:
        mfu = '-' if r['mfu'] is None else f'{100 * r["mfu"]:.1f}%'
        print(f'{r["model"]:10s} {r["precision"]:5s} {r["mode"]:8s} {str(r["batch"]) + "x" + str(r["seq_len"]):11s} '
              f'{r["tokens_per_s"]:10.1f} {r["step_ms_median"]:9.2f} {mfu:>6s} {r["achieved_tflops"]:8.2f} '
              f'{fmt(r["peak_mem_mib"], 0):>9s}  {r["loss"][0]} -> {r["loss"][-1]}')
    for g in generate:
        print(f'generate {g["model"]} {g["precision"]} batch {g["batch"]}: decode {g["decode_tokens_per_s"]:.1f} '
              f'tokens/s, e2e {g["e2e_tokens_per_s"]:.1f}, TTFT {g["ttft_ms"]:.1f} ms')
    for s in skipped:
        print(f'skipped: {json.dumps(s)}')
    for e in errors:
        print(f'error: {json.dumps(e)}')
    print(json.dumps({
        'bench': 'pytorch_gpu_train',
        'impl': 'pytorch',
        **meta,
        'flops_per_token': '6 * N_active + 12 * n_layers * seq_len * d_model (PaLM; N_active: wq, wk, wv, wo, router, '
                           'top_k experts, lm_head)',
        'optimizer': optimizer_desc,
        'modes': a.modes,
        'steps': a.steps,
        'warmup': a.warmup,
        'seconds': time.perf_counter() - t_start,
        'train': train,
        'generate': generate,
        'skipped': skipped,
        'errors': errors,
    }), flush=True)
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
