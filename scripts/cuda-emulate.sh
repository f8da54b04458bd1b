#!/usr/bin/env bash
# Runs the CUDA code on the CPU emulation of CUDA (test/cuda-emulation/README.md), so that every CUDA kernel is run
# and compared with the CPU kernels on machines without a GPU (CI, and every developer machine):
#   1. builds cuda/*.cu with the host compiler against the emulation, and the CUDA test programs against that
#      (build/cuda-emulation/emulated_cuda_test_*), then runs each program under each thread order;
#   2. with --addon, builds the addon on the emulation (build-cuda-emulation/Release/wavemoe.node) and runs the GPU
#      suites against it: node test/gpu/run.js (every op forward and backward, recorded runs) and jest test/gpu
#      (models, training steps, generation on the emulated GPU against the CPU), then `wavemoe train --device cuda`
#      for two steps and `wavemoe generate --device cuda` from its checkpoint.
# Options: --orders forward,reverse (WAVEMOE_EMU_ORDER values; default both), --addon, --only <program substring>,
# --sanitize (the programs built with ASan + UBSan into build/cuda-emulation-sanitize: an out-of-bounds access of a
# kernel to device memory, a static __shared__ array or past the launch's dynamic shared memory, a misaligned vector
# access, a use after free, fails the program with the kernel's source line), --race (the programs built with
# ThreadSanitizer into build/cuda-emulation-race: two threads of a block touching the same bytes, one writing, with
# no __syncthreads or __syncwarp between them and not both atomic, fails the program with both source lines, in any
# thread order; shuffles, votes and WMMA operations do not order memory, as on a GPU).
# Needs node, cmake and a C++17 compiler on x86-64 Linux; no nvcc, no GPU. Timings under emulation mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
orders="forward,reverse"
addon=""
only=""
sanitize=""
race=""
while [ $# -gt 0 ]; do
  case "$1" in
    --orders) orders="$2"; shift 2 ;;
    --addon) addon=1; shift ;;
    --only) only="$2"; shift 2 ;;
    --sanitize) sanitize=1; shift ;;
    --race) race=1; shift ;;
    *) echo "cuda-emulate: unknown option $1 (--orders LIST, --addon, --only NAME, --sanitize, --race)" >&2; exit 2 ;;
  esac
done
if [ "$(uname -m)" != "x86_64" ]; then
  echo "cuda-emulate: SKIPPED (the emulation switches fibers with x86-64 assembly; this is $(uname -m))"
  exit 0
fi
build_dir="${CUDA_EMU_BUILD_DIR:-build/cuda-emulation}"
sanitize_flags=()
if [ -n "$sanitize" ]; then
  build_dir="${CUDA_EMU_BUILD_DIR:-build/cuda-emulation-sanitize}"
  sanitize_flags=(-DWAVEMOE_SANITIZE=ON)
  export LSAN_OPTIONS="suppressions=$PWD/test/cuda-emulation/lsan.supp"
  export UBSAN_OPTIONS="print_stacktrace=1"
fi
if [ -n "$race" ]; then
  [ -z "$sanitize" ] || { echo "cuda-emulate: --race and --sanitize are separate builds: run them one at a time" >&2; exit 2; }
  build_dir="${CUDA_EMU_BUILD_DIR:-build/cuda-emulation-race}"
  sanitize_flags=(-DWAVEMOE_TSAN=ON)
  # clang 14's ThreadSanitizer runtime (fixed-size vector clocks) runs these programs about 3x faster than gcc 12's,
  # whose clocks grow with the number of threads ever seen (here: the fibers of the largest block).
  if command -v clang++-14 >/dev/null; then
    sanitize_flags+=(-DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14)
  fi
  export TSAN_OPTIONS="halt_on_error=1"
  [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ] && TSAN_OPTIONS+=":external_symbolizer_path=/usr/lib/llvm-14/bin/llvm-symbolizer"
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
jobs="$(nproc)"
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DWAVEMOE_CUDA_EMULATION=ON \
  "${sanitize_flags[@]}" >/dev/null
cmake --build "$build_dir" -j "$jobs" --target wavemoe_cuda_emulated_all

# One program under one order; its log is kept in the build folder, its tail shown when it fails.
run_one() {
  local program="$1" order="$2" log start rc
  log="$build_dir/$(basename "$program").$order.log"
  start=$(date +%s)
  rc=0
  WAVEMOE_EMU_ORDER="$order" "$program" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -25 "$log" >&2
    touch "$build_dir/failed"
    echo "cuda-emulate: FAILED $(basename "$program") ($order order, exit $rc; log: $log)" >&2
    return 1
  fi
  echo "cuda-emulate: $(tail -1 "$log") ($order order, $(( $(date +%s) - start )) s)"
}

# The race check's self-test (test/cuda-emulation/selftest): its correctly synchronised kernels run clean in every
# build; under --race each kernel with a planted missing barrier must be stopped by a ThreadSanitizer report.
selftest="$build_dir/emulated_race_selftest"
if [ -z "$only" ] && [ -x "$selftest" ]; then
  while read -r name kind; do
    [ "$kind" = clean ] || [ -n "$race" ] || continue
    log="$build_dir/race_selftest.$name.log"
    rc=0
    "$selftest" "$name" >"$log" 2>&1 || rc=$?
    if [ "$kind" = clean ] && [ "$rc" -ne 0 ]; then
      tail -40 "$log" >&2
      echo "cuda-emulate: FAILED race_selftest $name: a correctly synchronised kernel failed (exit $rc; log: $log)" >&2
      exit 1
    fi
    if [ "$kind" = race ] && { [ "$rc" -eq 0 ] || ! grep -q 'WARNING: ThreadSanitizer: data race' "$log"; }; then
      tail -40 "$log" >&2
      echo "cuda-emulate: FAILED race_selftest $name: the planted race was not reported (exit $rc; log: $log)" >&2
      exit 1
    fi
  done < <("$selftest" --list)
  echo "cuda-emulate: race_selftest passed ($([ -n "$race" ] && echo "clean kernels clean, every planted race reported" || echo "clean kernels"))"
fi

# Longest first, so that the parallel runs end together.
programs=()
for name in moe sampling attention wavelet kernels layernorm index_checks random wavelet_analysis; do
  p="$build_dir/emulated_cuda_test_$name"
  [ -x "$p" ] || continue
  [ -n "$only" ] && [[ "$name" != *"$only"* ]] && continue
  programs+=("$p")
done
for p in "$build_dir"/emulated_cuda_test_*; do  # programs added later than the list above
  [[ "$p" == *.log ]] && continue
  [[ " ${programs[*]} " == *" $p "* ]] && continue
  [ -n "$only" ] && [[ "$(basename "$p")" != *"$only"* ]] && continue
  programs+=("$p")
done
rm -f "$build_dir/failed"
for order in ${orders//,/ }; do
  for p in "${programs[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    run_one "$p" "$order" &
  done
done
wait
[ ! -e "$build_dir/failed" ] || { echo "cuda-emulate: some programs failed" >&2; exit 1; }

if [ -n "$addon" ]; then
  npx cmake-js build --out build-cuda-emulation --CDWAVEMOE_CUDA_EMULATION=ON --parallel "$jobs" \
    >build-cuda-emulation.log 2>&1 || { tail -40 build-cuda-emulation.log >&2; echo "cuda-emulate: the addon build failed" >&2; exit 1; }
  rm -f build-cuda-emulation.log
  export WAVEMOE_CUDA_ADDON="$PWD/build-cuda-emulation/Release/wavemoe.node"
  node test/gpu/run.js
  npx jest test/gpu
  # The main job on the emulated GPU: the CLI's --device path, a checkpoint written from the device, generation.
  run_dir="$(mktemp -d)"
  WAVEMOE_ADDON="$WAVEMOE_CUDA_ADDON" node bin/wavemoe.js train --device cuda --steps 2 --batch 1 --seq-len 16 \
    --eval-every 0 --out "$run_dir" | tail -3
  WAVEMOE_ADDON="$WAVEMOE_CUDA_ADDON" node bin/wavemoe.js generate --device cuda --checkpoint "$run_dir" \
    --prompt "Call me" --max-new-tokens 3
  rm -rf "$run_dir"
fi
echo "cuda-emulate: passed"
