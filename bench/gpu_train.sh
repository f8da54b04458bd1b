#!/usr/bin/env bash
# npm run bench:gpu-train (issue 13): GPU training and generation of wavemoe against the project's own PyTorch
# implementation, in one run on the same GPU, with the same models and shapes:
#   1. node bench/gpu_train.js            wavemoe: moe-small 16x256 and moe-base 16x1024, fp32 and bf16, tokens/s,
#                                         MFU, peak GPU memory; KV-cache generation of moe-small at batch 1 and 32
#   2. python3 bench/pytorch/bench_gpu_train.py   the same in PyTorch: eager and torch.compile, fp32 and bf16 autocast
#   3. node bench/gpu_train.js --compare  the ratios wavemoe / PyTorch eager and wavemoe / torch.compile per (model,
#                                         precision), and of generation; the last line printed is ONE JSON object
# Needs node on the PATH and dist/ (npm run build:ts); no npm. The CUDA-enabled addon: $WAVEMOE_ADDON, else
# build-cuda/Release/wavemoe.node when it exists (npm run build:cuda). Python: $PYTHON, else the first of python3,
# /usr/bin/python3 that imports torch. When WAVEMOE_CUBLAS is unset and no CUDA toolkit cuBLAS is in the usual
# places, it is set to that PyTorch's libcublas (the addon's own search does not look in a virtual environment that
# is not activated). The addon's matmul backend is in the JSON (matmul_backend).
#
#   bash bench/gpu_train.sh                                   # everything, the issue's shapes, 10 steps after 3
#   bash bench/gpu_train.sh --steps 5 --warmup 2 --budget-s 300
#   bash bench/gpu_train.sh --device cpu --tiny               # the whole pipeline on a CPU at tiny sizes
#
# Flags go to both benches (--models, --batch, --seq, --steps, --warmup, --precisions, --device, --tiny,
# --peak-tflops, --gen-model, --gen-batches, --gen-prompt, --gen-new, --gen-repeats, --gen-precisions, --no-gen,
# --threads, --seed); --modes, --adamw and --fast-decode to PyTorch's only; --budget-s S (or GPU_TRAIN_BUDGET_S)
# bounds the whole run: wavemoe gets at most 45% of it, PyTorch the rest (each stops starting new runs before its
# share ends and is killed at its end; what finished is still compared). Logs: $GPU_TRAIN_OUT (default
# bench/.cache/gpu-train): wavemoe.log, torch.log, compare.log.
# Without node, dist/ or a usable GPU: one line `bench:gpu-train: SKIPPED (<reason>)`, exit 0.
# Exit status: non-zero if a bench failed, timed out, or the comparison failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${GPU_TRAIN_OUT:-bench/.cache/gpu-train}"
budget="${GPU_TRAIN_BUDGET_S:-0}"
device=cuda:0
common=()
torch_only=()
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --budget-s) budget=${2:-}; shift 2 || { echo "bench:gpu-train: --budget-s needs a value" >&2; exit 2; } ;;
    --modes | --adamw) [ $# -ge 2 ] || { echo "bench:gpu-train: $1 needs a value" >&2; exit 2; }
      torch_only+=("$1" "$2"); shift 2 ;;
    --fast-decode) torch_only+=("$1"); shift ;;
    --tiny | --no-gen) common+=("$1"); shift ;;
    --device) [ $# -ge 2 ] || { echo "bench:gpu-train: --device needs a value" >&2; exit 2; }
      device=$2; common+=("$1" "$2"); shift 2 ;;
    --*) [ $# -ge 2 ] || { echo "bench:gpu-train: $1 needs a value" >&2; exit 2; }
      common+=("$1" "$2"); shift 2 ;;
    *) echo "bench:gpu-train: unexpected argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
case $budget in '' | *[!0-9]*) echo "bench:gpu-train: --budget-s needs whole seconds, got '$budget'" >&2; exit 2 ;; esac

skip() {
  echo "bench:gpu-train: SKIPPED ($1)"
  exit 0
}
command -v node >/dev/null || skip "no node on the PATH (wavemoe's side runs in Node.js)"
[ -f dist/index.js ] || skip "no dist/ (npm run build:ts)"
if [ "$device" != cpu ] && [ -z "${WAVEMOE_ADDON:-}" ] && [ -f build-cuda/Release/wavemoe.node ]; then
  export WAVEMOE_ADDON="$PWD/build-cuda/Release/wavemoe.node"
fi
python=""
for p in ${PYTHON:-python3 /usr/bin/python3}; do
  if command -v "$p" >/dev/null && "$p" -c 'import torch' >/dev/null 2>&1; then
    python=$p
    break
  fi
done
have_cublas() {  # where the addon looks by itself (cuda/cublas_loader.cu), before any Python site-packages
  local d
  for d in ${CUDA_HOME:+"$CUDA_HOME/lib64"} ${CUDA_PATH:+"$CUDA_PATH/lib64"} /usr/local/cuda/lib64 \
    /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    ls "$d"/libcublas.so.1[23] >/dev/null 2>&1 && return 0
  done
  ldconfig -p 2>/dev/null | grep -q 'libcublas\.so\.1[23]'
}
if [ "$device" != cpu ] && [ -z "${WAVEMOE_CUBLAS:-}" ] && [ -n "$python" ] && ! have_cublas; then
  find_cublas='
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except Exception:
    roots = []
for r in roots:
    for pat in ("cu13/lib/libcublas.so.13", "cublas/lib/libcublas.so.13", "cublas/lib/libcublas.so.12"):
        hits = sorted(glob.glob(os.path.join(r, pat)))
        if hits:
            print(hits[0])
            raise SystemExit(0)
'
  lib=$("$python" -c "$find_cublas" 2>/dev/null)
  [ -n "$lib" ] && export WAVEMOE_CUBLAS="$lib"
fi
mkdir -p "$out" || exit 1
rm -f "$out/wavemoe.log" "$out/torch.log" "$out/compare.log"

limited() {  # seconds (0: none), command...: exit 124 when it ran out
  local t=$1
  shift
  if [ "$t" -gt 0 ] && command -v timeout >/dev/null; then timeout -k 10 "$t" "$@"; else "$@"; fi
}
why=$(node bench/gpu_train.js --check "${common[@]}" 2>&1)
case $why in *"bench:gpu-train: SKIPPED"*) printf '%s\n' "$why" | grep '^bench:gpu-train: SKIPPED' | head -n 1; exit 0 ;; esac
t0=$(date +%s)
node_t=0 node_budget=()
if [ "$budget" -gt 0 ]; then
  node_t=$((budget * 45 / 100))
  nb=$((node_t - 40)); [ $nb -lt $((node_t / 2)) ] && nb=$((node_t / 2))
  node_budget=(--budget-s "$nb")
fi
echo "bench:gpu-train: $(node --version) on $device, WAVEMOE_ADDON=${WAVEMOE_ADDON:-(the default addon)}," \
  "WAVEMOE_CUBLAS=${WAVEMOE_CUBLAS:-(the addon searches)}, PyTorch: ${python:-none}; logs in $out" \
  "$([ "$budget" -gt 0 ] && echo "(budget ${budget}s)")"
status=0

# 1. wavemoe (the display leaves out the per-run gpu-train-result lines: they are in the log and the JSON)
export PYTHONUNBUFFERED=1
limited "$node_t" node bench/gpu_train.js "${common[@]}" "${node_budget[@]}" 2>&1 | tee "$out/wavemoe.log" |
  grep --line-buffered -v -e '^gpu-train-result ' -e '^{'
rc=${PIPESTATUS[0]}
if grep -q '^bench:gpu-train: SKIPPED' "$out/wavemoe.log"; then
  exit 0  # its SKIPPED line was shown: no GPU for wavemoe, so nothing to compare
fi
case $rc in
  0) ;;
  124 | 137) echo "bench:gpu-train: wavemoe timed out after ${node_t}s (the runs that finished are compared)"; status=1 ;;
  *) echo "bench:gpu-train: wavemoe's bench failed (exit $rc; $out/wavemoe.log)"; status=1 ;;
esac

# 2. PyTorch
if [ -z "$python" ]; then
  echo "bench:gpu-train: PyTorch baseline skipped (no python with torch: set PYTHON)" | tee "$out/torch.log"
else
  torch_t=0 torch_budget=()
  if [ "$budget" -gt 0 ]; then
    torch_t=$((budget - ($(date +%s) - t0) - 15))
    [ $torch_t -lt 30 ] && torch_t=30
    tb=$((torch_t - 60)); [ $tb -lt $((torch_t / 2)) ] && tb=$((torch_t / 2))
    torch_budget=(--budget-s "$tb")
  fi
  limited "$torch_t" "$python" bench/pytorch/bench_gpu_train.py "${common[@]}" "${torch_only[@]}" "${torch_budget[@]}" \
    2>&1 | tee "$out/torch.log" | grep --line-buffered -v -e '^gpu-train-result ' -e '^{' |
    sed -u 's/^bench:gpu-train: SKIPPED (/bench:gpu-train: PyTorch baseline SKIPPED (/'
  rc=${PIPESTATUS[0]}
  case $rc in
    0) ;;
    124 | 137) echo "bench:gpu-train: PyTorch timed out after ${torch_t}s (the runs that finished are compared)"; status=1 ;;
    *) echo "bench:gpu-train: PyTorch's bench failed (exit $rc; $out/torch.log)"; status=1 ;;
  esac
fi

# 3. the ratios; last line: one JSON object
node bench/gpu_train.js --compare "$out/wavemoe.log" "$out/torch.log" | tee "$out/compare.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit $status
