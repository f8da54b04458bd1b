#!/usr/bin/env bash
# npm run bench:cuda: wavemoe's CUDA benches against PyTorch on the same GPU, in one run. Needs no Node.js.
#   1. builds the CUDA test programs (SKIP_ADDON=1 scripts/cuda-build.sh; BENCH_NO_BUILD=1 skips this step);
#   2. runs each build/cuda/cuda_test_{kernels,attention,moe} --bench that exists (a missing one is skipped), then
#      any other cuda_test_* that has a --bench mode, saving its output as <name>.log and its last line, a JSON
#      object, as <name>.json;
#   3. if $PYTHON (default python3) has torch with CUDA: bench/cuda/torch_baseline.py on those JSONs -> torch.json
#      (the same shapes in PyTorch: torch.matmul, SDPA fp32 and bf16 flash, a per-expert MoE loop);
#   4. bench/cuda/compare.py: the ratios wavemoe / PyTorch per row -> compare.json, and bench.json (everything).
# Files go to $BENCH_OUT (default <build dir>/bench). The last line printed is compare.py's JSON object.
# Without nvcc or without a GPU it prints one line `bench:cuda: SKIPPED (...)` and exits 0.
# Exit status: non-zero if the build, a native bench, the PyTorch baseline or the comparison failed.
# Environment: CUDA_BUILD_DIR (default build/cuda), BENCH_OUT, PYTHON, BENCH_TIMEOUT (seconds per native bench,
# default 300), TORCH_TIMEOUT (seconds for the PyTorch baseline, default 360; its --budget-s is 60 less),
# BENCH_NO_BUILD=1, WAVEMOE_CUBLAS (which cuBLAS the native programs load: see cuda/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."
build="${CUDA_BUILD_DIR:-build/cuda}"
out="${BENCH_OUT:-$build/bench}"
python="${PYTHON:-python3}"
bench_timeout="${BENCH_TIMEOUT:-300}"
torch_timeout="${TORCH_TIMEOUT:-360}"
mkdir -p "$out" || exit 1
status=0

# 1. build (quiet unless it fails: without a GPU the SKIPPED line is the only output)
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  if ! SKIP_ADDON=1 CUDA_BUILD_DIR="$build" bash scripts/cuda-build.sh >"$out/build.log" 2>&1; then
    tail -30 "$out/build.log" >&2
    echo "bench:cuda: the build failed ($out/build.log)" >&2
    exit 1
  fi
  if grep -q '^cuda-build: SKIPPED' "$out/build.log"; then
    echo "bench:cuda: SKIPPED ($(sed -n 's/^cuda-build: SKIPPED (\(.*\))$/\1/p' "$out/build.log"))"
    exit 0
  fi
fi
if [ ! -x "$build/cuda_test_kernels" ]; then
  echo "bench:cuda: SKIPPED (no CUDA build: $build/cuda_test_kernels is missing; run scripts/cuda-build.sh)"
  exit 0
fi

# Runs "$@" for at most $1 seconds (exit 124 when it ran out).
limited() {
  local t=$1
  shift
  if command -v timeout >/dev/null; then timeout -k 10 "$t" "$@"; else "$@"; fi
}

# 2. the native benches
# kernels, attention and moe first (compared with PyTorch), then any other cuda_test_* that has a --bench mode.
jsons=()
names=(kernels attention moe)
for exe in "$build"/cuda_test_*; do
  n=${exe##*/cuda_test_}
  [ -f "$exe" ] && [ -x "$exe" ] && [[ " ${names[*]} " != *" $n "* ]] && names+=("$n")
done
rm -f "$out"/*.json
for name in "${names[@]}"; do
  exe="$build/cuda_test_$name"
  if [ ! -x "$exe" ]; then
    [ "$name" = kernels ] || echo "bench:cuda: $exe not built in this tree: skipped"
    continue
  fi
  limited "$bench_timeout" "$exe" --bench >"$out/$name.log" 2>&1
  rc=$?
  if [ "$name" = kernels ] && grep -q 'SKIPPED (no CUDA device' "$out/$name.log"; then
    echo "bench:cuda: SKIPPED ($(sed -n 's/^.*SKIPPED (\(no CUDA device.*\))$/\1/p' "$out/$name.log" | head -1))"
    exit 0
  fi
  if [ $rc -eq 0 ] && grep -q ': no --bench here' "$out/$name.log"; then
    rm -f "$out/$name.log"
    continue
  fi
  cat "$out/$name.log"
  last=$(tail -n 1 "$out/$name.log")
  if [ $rc -ne 0 ]; then
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
      echo "bench:cuda: cuda_test_$name --bench timed out after ${bench_timeout}s"
    else
      echo "bench:cuda: cuda_test_$name --bench failed (exit $rc)"
    fi
    status=1
  elif [ "${last:0:1}" != "{" ]; then
    echo "bench:cuda: cuda_test_$name --bench printed no JSON object on its last line"
    status=1
  else
    printf '%s\n' "$last" >"$out/$name.json"
    jsons+=("$out/$name.json")
  fi
done

# 3. PyTorch on the same shapes
torch_json=()
if [ ${#jsons[@]} -eq 0 ]; then
  echo "bench:cuda: no native figures, so no PyTorch baseline"
elif ! command -v "$python" >/dev/null; then
  echo "bench:cuda: PyTorch baseline skipped ($python not found; set PYTHON)"
elif why=$("$python" -c 'import torch, sys
ok = torch.cuda.is_available()
print("torch %s, CUDA %s%s" % (torch.__version__, torch.version.cuda, "" if ok else ", sees no GPU"))
sys.exit(0 if ok else 3)' 2>&1); then
  echo "bench:cuda: PyTorch baseline ($(printf "%s" "$why" | tail -n 1)), the same shapes"
  export PYTHONUNBUFFERED=1
  rm -f "$out/torch.json"
  limited "$torch_timeout" "$python" bench/cuda/torch_baseline.py \
    --budget-s $((torch_timeout > 120 ? torch_timeout - 60 : torch_timeout / 2)) "${jsons[@]}" 2>&1 |
    tee "$out/torch.log"
  rc=${PIPESTATUS[0]}
  last=$(tail -n 1 "$out/torch.log")
  if [ $rc -eq 0 ] && [ "${last:0:1}" = "{" ]; then
    printf '%s\n' "$last" >"$out/torch.json"
    torch_json=("$out/torch.json")
  else
    echo "bench:cuda: the PyTorch baseline failed (exit $rc; $out/torch.log)"
    status=1
  fi
else
  echo "bench:cuda: PyTorch baseline skipped ($python has no torch with CUDA: $(printf '%s' "$why" | tail -n 1))"
fi

# 4. the ratios (last line: one JSON object)
echo "bench:cuda: files in $out"
if [ ${#jsons[@]} -gt 0 ] && ! command -v "$python" >/dev/null; then
  echo "bench:cuda: no $python for compare.py: the native JSONs are in $out"
elif [ ${#jsons[@]} -gt 0 ]; then
  "$python" bench/cuda/compare.py --bundle "$out/bench.json" "${jsons[@]}" "${torch_json[@]}" | tee "$out/compare.log"
  rc=${PIPESTATUS[0]}
  if [ $rc -eq 0 ]; then tail -n 1 "$out/compare.log" >"$out/compare.json"; else status=1; fi
fi
exit $status
