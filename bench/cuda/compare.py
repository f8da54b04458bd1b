#!/usr/bin/env python3
"""wavemoe's CUDA benches against PyTorch on the same GPU, row by row (last step of `npm run bench:cuda`).

usage: python3 bench/cuda/compare.py [--bundle FILE] FILE ...

Each FILE is a native `cuda_test_* --bench` output or bench/cuda/torch_baseline.py's output (a log or just its JSON
line: the last line holding a JSON object is read); which one it is comes from its content. Missing sections are
reported and skipped, so it also runs on the matmul table alone or without the PyTorch figures.

Every ratio is wavemoe's speed over PyTorch's (throughput over throughput, or PyTorch's time over wavemoe's): above 1
means wavemoe is faster.
  matmul     own kernel and cuBLAS (as loaded by wavemoe) vs torch.matmul, float32, TF32 off on both
  attention  fp32 vs PyTorch's SDPA in fp32 (the backend it was forced to, normally EFFICIENT_ATTENTION), forward and
             forward+backward; and vs PyTorch's bf16 FLASH_ATTENTION path (different precision: the issue's target is
             at least 0.7 of it)
  decode     fp32 microseconds per call vs PyTorch's best fp32 SDPA (its forced backend or MATH), and vs bf16 flash
  moe        forward and forward+backward tokens/s vs the PyTorch per-expert loop
Attention ratios use times where the native row gives them (fwd_ms, fwd_bwd_ms), else TFLOP/s, which assumes the
same FLOP count on both sides (FlashAttention's: forward 4·B·H·T²·D, halved when causal; forward+backward 3.5 times
that); when a native row gives both, its FLOP count is checked against that convention and a difference is noted.

Output: tables, then ONE JSON object on the last line with every ratio, a summary and the GPU's name.
--bundle FILE also writes {"native": {...}, "torch": {...}, "compare": {...}} (all inputs and this result) to FILE.
"""
import argparse
import json
import math
import os
import sys

METRIC_SUFFIXES = ('_tflops', '_gflops', '_per_s', '_ms', '_us', 'us_per_call', '_gflop', '_gbps')
FLASH_TARGET = 0.7


def last_json_object(path):
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


def shape_key(row):
    return {k: v for k, v in row.items() if isinstance(v, (bool, int, str)) and not k.endswith(METRIC_SUFFIXES)}


def find_row(rows, native_row):
    """The row of `rows` whose shape fields shared with native_row are all equal (and at least one is shared)."""
    want = shape_key(native_row)
    for r in rows or []:
        have = shape_key(r)
        common = set(want) & set(have)
        if common and all(want[k] == have[k] for k in common):
            return r
    return None


def ratio(a, b):
    """a / b, or None when either is missing or not positive."""
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return None
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return None
    if not (a > 0 and b > 0) or math.isinf(a) or math.isinf(b):
        return None
    return a / b


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def fmt(x, digits=2):
    if x is None:
        return '-'
    if isinstance(x, float) and abs(x) >= 1000:
        return f'{x:,.0f}'
    return f'{x:.{digits}f}' if isinstance(x, float) else str(x)


def attention_flops(row):
    B, H, D = row.get('B'), row.get('H'), row.get('D')
    Tq = row.get('Tq', row.get('T'))
    Tk = row.get('Tk', row.get('T'))
    if None in (B, H, D, Tq, Tk):
        return None
    f = 4.0 * B * H * Tq * Tk * D
    return f / 2 if row.get('causal', True) and Tq == Tk else f


def speed_vs(native_row, tflops_key, ms_key, torch_variant):
    """wavemoe speed / PyTorch speed for one attention figure (times when both have them, else TFLOP/s)."""
    if not torch_variant:
        return None
    if native_row.get(ms_key) is not None and torch_variant.get(ms_key) is not None:
        return ratio(torch_variant[ms_key], native_row[ms_key])
    return ratio(native_row.get(tflops_key), torch_variant.get(tflops_key))


def check_flop_convention(row, notes):
    """If a native attention row gives both TFLOP/s and ms, does its FLOP count match ours?"""
    ours = attention_flops(row)
    for tk, mk, mult in (('fwd_tflops', 'fwd_ms', 1.0), ('fwd_bwd_tflops', 'fwd_bwd_ms', 3.5)):
        if ours and row.get(tk) and row.get(mk):
            theirs = row[tk] * row[mk] * 1e9
            if abs(theirs / (ours * mult) - 1) > 0.02:
                notes.append(f'attention T={row.get("T")}: the native {tk} counts {theirs:.3g} FLOP, this comparison '
                             f'assumes {ours * mult:.3g}; its TFLOP/s are not comparable, the times are used')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('files', nargs='+')
    ap.add_argument('--bundle', help='also write every input and the result as one JSON object to this file')
    args = ap.parse_args(argv)

    notes = []
    kernels = attn = moe = torch_res = None
    native = {}
    for path in args.files:
        try:
            obj = last_json_object(path)
        except (OSError, ValueError) as e:
            notes.append(f'ignored {path}: {e}')
            continue
        name = os.path.basename(path)
        if obj.get('baseline') == 'torch':
            torch_res = obj
        elif obj.get('skipped'):
            notes.append(f'{name}: skipped ({obj["skipped"]})')
        elif isinstance(obj.get('results'), list):
            kernels = native['kernels'] = obj
        elif isinstance(obj.get('attention'), list) or isinstance(obj.get('decode'), list):
            attn = native['attention'] = obj
        elif isinstance(obj.get('moe'), list):
            moe = native['moe'] = obj
        else:
            native[os.path.splitext(name)[0]] = obj  # kept in the bundle, not compared
            notes.append(f'{name}: no section this script compares (kept in --bundle)')
    if torch_res is not None and torch_res.get('skipped'):
        notes.append(f'PyTorch baseline skipped: {torch_res["skipped"]}')
        torch_res = None
    if torch_res is None:
        notes.append('no PyTorch figures: only wavemoe\'s own figures (and own kernel vs cuBLAS) are shown')
    t = torch_res or {}

    devices = sorted({o.get('device') for o in native.values() if o.get('device')})
    out = {'device': devices[0] if len(devices) == 1 else (devices or None),
           'torch_device': t.get('device'), 'torch': t.get('torch'), 'torch_cuda': t.get('cuda'),
           'cublas': (kernels or {}).get('cublas'),
           'ratio': 'wavemoe speed / PyTorch speed (above 1: wavemoe faster)'}
    if t.get('device') and devices and t['device'] not in devices:
        notes.append(f'different devices: native {devices}, PyTorch {t["device"]!r}')

    # ------------------------------------------------------------------ matmul
    if kernels:
        rows = []
        print(f'matmul float32 (TF32 off), GFLOP/s, on {out["device"]}; cuBLAS: {kernels.get("cublas")}')
        print(f'{"M":>6} {"K":>6} {"N":>6} {"own":>9} {"cuBLAS":>9} {"torch":>9} {"own/torch":>10} '
              f'{"cuBLAS/torch":>13} {"own/cuBLAS":>11}')
        for r in kernels['results']:
            tr = find_row(t.get('matmul'), r)
            tg = tr.get('gflops') if tr else None
            rec = {k: r.get(k) for k in ('M', 'K', 'N')}
            rec.update(own_gflops=r.get('own_gflops'), cublas_gflops=r.get('cublas_gflops'), torch_gflops=tg,
                       own_vs_torch=ratio(r.get('own_gflops'), tg), cublas_vs_torch=ratio(r.get('cublas_gflops'), tg),
                       own_vs_cublas=ratio(r.get('own_gflops'), r.get('cublas_gflops')))
            rows.append(rec)
            print(f'{rec["M"]:>6} {rec["K"]:>6} {rec["N"]:>6} {fmt(rec["own_gflops"], 0):>9} '
                  f'{fmt(rec["cublas_gflops"], 0):>9} {fmt(tg, 0):>9} {fmt(rec["own_vs_torch"]):>10} '
                  f'{fmt(rec["cublas_vs_torch"]):>13} {fmt(rec["own_vs_cublas"]):>11}')
        out['matmul'] = rows
    else:
        notes.append('no matmul table (cuda_test_kernels --bench)')

    # ------------------------------------------------------------------ attention
    if attn and attn.get('attention'):
        rows = []
        print('attention: wavemoe fp32 vs PyTorch SDPA fp32 (forced backend) and vs PyTorch bf16 FLASH_ATTENTION')
        print(f'{"prec":>8} {"B":>3} {"H":>3} {"T":>6} {"D":>4} {"causal":>6} {"fwd TF":>7} {"f+b TF":>7} {"vs fp32 fwd":>12} '
              f'{"vs fp32 f+b":>12} {"vs flash fwd":>13} {"vs flash f+b":>13}  torch fp32 backend')
        for r in attn['attention']:
            check_flop_convention(r, notes)
            tr = find_row(t.get('attention'), r) or {}
            f32, fl = tr.get('fp32') or {}, tr.get('bf16_flash') or {}
            # Rows carry their precision (fp32; bf16 on tensor cores or on CUDA cores): fp32 rows are compared with
            # PyTorch's fp32 SDPA, bf16 tensor-core rows with its bf16 flash path (the target). Older rows: fp32.
            precision = r.get('precision', 'fp32')
            vs32 = precision == 'fp32'
            vs_flash = precision == 'fp32' if 'precision' not in r else (precision == 'bf16' and r.get('tensor_cores') is not False)
            if not vs32:
                f32 = {}
            if not vs_flash:
                fl = {}
            rec = shape_key(r)
            rec.update(fwd_tflops=r.get('fwd_tflops'), fwd_bwd_tflops=r.get('fwd_bwd_tflops'),
                       torch_fp32_backend=f32.get('backend'),
                       torch_fp32_fwd_tflops=f32.get('fwd_tflops'), torch_fp32_fwd_bwd_tflops=f32.get('fwd_bwd_tflops'),
                       torch_flash_bf16_fwd_tflops=fl.get('fwd_tflops'),
                       torch_flash_bf16_fwd_bwd_tflops=fl.get('fwd_bwd_tflops'),
                       fwd_vs_torch_fp32=speed_vs(r, 'fwd_tflops', 'fwd_ms', f32),
                       fwd_bwd_vs_torch_fp32=speed_vs(r, 'fwd_bwd_tflops', 'fwd_bwd_ms', f32),
                       fwd_vs_torch_flash_bf16=speed_vs(r, 'fwd_tflops', 'fwd_ms', fl),
                       fwd_bwd_vs_torch_flash_bf16=speed_vs(r, 'fwd_bwd_tflops', 'fwd_bwd_ms', fl))
            rows.append(rec)
            label = precision + ('' if r.get('tensor_cores') is None or vs32 else (' tc' if r['tensor_cores'] else ' cc'))
            print(f'{label:>8} {fmt(r.get("B")):>3} {fmt(r.get("H", r.get("Hq"))):>3} {fmt(r.get("T", r.get("Tq"))):>6} '
                  f'{fmt(r.get("D")):>4} '
                  f'{fmt(r.get("causal")):>6} {fmt(r.get("fwd_tflops"), 1):>7} {fmt(r.get("fwd_bwd_tflops"), 1):>7} '
                  f'{fmt(rec["fwd_vs_torch_fp32"]):>12} {fmt(rec["fwd_bwd_vs_torch_fp32"]):>12} '
                  f'{fmt(rec["fwd_vs_torch_flash_bf16"]):>13} {fmt(rec["fwd_bwd_vs_torch_flash_bf16"]):>13}  '
                  f'{rec["torch_fp32_backend"] or "-"}')
        out['attention'] = rows
        print('  (fp32 rows against PyTorch fp32; bf16 tensor-core rows (tc) against PyTorch bf16 flash, the target being >= '
              f'{FLASH_TARGET} of it; bf16 CUDA-core rows (cc) against neither)')
    elif attn is None:
        notes.append('no attention table (cuda_test_attention --bench not built or not run)')
    if attn and attn.get('decode'):
        rows = []
        print('decoding (one query row vs the KV cache), microseconds per call')
        print(f'{"B":>3} {"H":>3} {"kv_len":>7} {"D":>4} {"wavemoe":>9} {"torch fp32":>11} {"torch flash":>12} '
              f'{"vs fp32":>8} {"vs flash":>9}')
        for r in attn['decode']:
            tr = find_row(t.get('decode'), r) or {}
            best = tr.get('fp32_best_us_per_call')
            fl = (tr.get('bf16_flash') or {}).get('us_per_call')
            us = r.get('us_per_call', r.get('us'))
            rec = shape_key(r)
            rec.update(us_per_call=us, torch_fp32_us_per_call=best, torch_flash_bf16_us_per_call=fl,
                       vs_torch_fp32=ratio(best, us), vs_torch_flash_bf16=ratio(fl, us))
            rows.append(rec)
            print(f'{fmt(r.get("B")):>3} {fmt(r.get("H", r.get("Hq"))):>3} {fmt(r.get("kv_length")):>7} '
                  f'{fmt(r.get("D")):>4} {fmt(us, 1):>9} {fmt(best, 1):>11} {fmt(fl, 1):>12} '
                  f'{fmt(rec["vs_torch_fp32"]):>8} {fmt(rec["vs_torch_flash_bf16"]):>9}')
        out['decode'] = rows

    # ------------------------------------------------------------------ MoE
    if moe:
        rows = []
        print('MoE layer, tokens/s: wavemoe vs a PyTorch per-expert loop (fp32; bf16: wavemoe\'s bf16 matmul precision vs '
              'the loop under bf16 autocast)')
        print(f'{"prec":>5} {"N":>6} {"D":>5} {"F":>5} {"E":>3} {"k":>2} {"fwd":>11} {"f+b":>11} {"torch fwd":>11} '
              f'{"torch f+b":>11} {"vs fwd":>7} {"vs f+b":>7}')
        for r in moe['moe']:
            tr = find_row(t.get('moe'), r) or {}
            rec = shape_key(r)
            rec.update(fwd_tokens_per_s=r.get('fwd_tokens_per_s'), fwd_bwd_tokens_per_s=r.get('fwd_bwd_tokens_per_s'),
                       torch_fwd_tokens_per_s=tr.get('fwd_tokens_per_s'),
                       torch_fwd_bwd_tokens_per_s=tr.get('fwd_bwd_tokens_per_s'),
                       fwd_vs_torch_loop=ratio(r.get('fwd_tokens_per_s'), tr.get('fwd_tokens_per_s')),
                       fwd_bwd_vs_torch_loop=ratio(r.get('fwd_bwd_tokens_per_s'), tr.get('fwd_bwd_tokens_per_s')))
            rows.append(rec)
            print(f'{r.get("precision", "fp32"):>5} {fmt(r.get("N")):>6} {fmt(r.get("D")):>5} {fmt(r.get("F")):>5} {fmt(r.get("E")):>3} '
                  f'{fmt(r.get("k")):>2} {fmt(rec["fwd_tokens_per_s"], 0):>11} '
                  f'{fmt(rec["fwd_bwd_tokens_per_s"], 0):>11} '
                  f'{fmt(rec["torch_fwd_tokens_per_s"], 0):>11} {fmt(rec["torch_fwd_bwd_tokens_per_s"], 0):>11} '
                  f'{fmt(rec["fwd_vs_torch_loop"]):>7} {fmt(rec["fwd_bwd_vs_torch_loop"]):>7}')
        out['moe'] = rows
    else:
        notes.append('no MoE table (cuda_test_moe --bench not built or not run)')

    # ------------------------------------------------------------------ summary
    s = {}
    col = lambda sec, key: [r.get(key) for r in out.get(sec, []) if r.get(key)]  # noqa: E731
    for sec, key in (('matmul', 'own_vs_torch'), ('matmul', 'cublas_vs_torch'), ('matmul', 'own_vs_cublas'),
                     ('attention', 'fwd_vs_torch_fp32'), ('attention', 'fwd_bwd_vs_torch_fp32'),
                     ('attention', 'fwd_vs_torch_flash_bf16'), ('attention', 'fwd_bwd_vs_torch_flash_bf16'),
                     ('decode', 'vs_torch_fp32'), ('decode', 'vs_torch_flash_bf16'),
                     ('moe', 'fwd_vs_torch_loop'), ('moe', 'fwd_bwd_vs_torch_loop')):
        xs = col(sec, key)
        if xs:
            s[f'{sec}_{key}'] = {'geomean': geomean(xs), 'min': min(xs), 'max': max(xs), 'rows': len(xs)}
    flash = col('attention', 'fwd_vs_torch_flash_bf16') + col('attention', 'fwd_bwd_vs_torch_flash_bf16')
    if flash:
        s['attention_flash_target'] = FLASH_TARGET
        s['attention_flash_target_met'] = min(flash) >= FLASH_TARGET
    out['summary'] = s
    out['notes'] = list(dict.fromkeys(notes))
    if s:
        print('summary (geometric mean, min..max of wavemoe/PyTorch):')
        for k, v in s.items():
            if isinstance(v, dict):
                print(f'  {k:<46} {fmt(v["geomean"])}  ({fmt(v["min"])}..{fmt(v["max"])}, {v["rows"]} rows)')
        if 'attention_flash_target_met' in s:
            print(f'  attention >= {FLASH_TARGET} of PyTorch bf16 flash on every row: '
                  f'{"yes" if s["attention_flash_target_met"] else "no"}')
    for n in out['notes']:
        print(f'note: {n}')
    if args.bundle:
        with open(args.bundle, 'w', encoding='utf-8') as f:
            json.dump({'native': native, 'torch': torch_res, 'compare': out}, f, separators=(',', ':'))
            f.write('\n')
    print(json.dumps(out, separators=(',', ':')))
    return 0


if __name__ == '__main__':
    sys.exit(main())
