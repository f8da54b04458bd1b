#!/usr/bin/env bash
# Compiles every CUDA source (cuda/*.cu -> libwavemoe_cuda.a, sm_80 + sm_90) and the CUDA test programs
# (test/native/cuda_test_*.cc) into build/cuda, then the CUDA-enabled addon through cmake-js into
# build-cuda/Release/wavemoe.node (use it with WAVEMOE_ADDON=$PWD/build-cuda/Release/wavemoe.node; not under build/,
# which `node-gyp rebuild` deletes). Needs nvcc, not a GPU: CI runs it so that the CUDA code never rots.
# SKIP_ADDON=1 builds the test programs only. CUDA_BUILD_DIR=<dir> puts the CMake build there instead of build/cuda
# (relative to the repository root, or absolute; the addon's build-cuda/ is unaffected).
# Where nvcc is missing it says so in one line and exits 0. Run the tests on a GPU machine with
#   build/cuda/cuda_test_kernels            (or: build/cuda/cuda_test_kernels --bench)
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc="${CUDACXX:-$(command -v nvcc || true)}"
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
if [ -z "$nvcc" ]; then
  echo "cuda-build: SKIPPED (nvcc not found; set CUDACXX or put nvcc on the PATH)"
  exit 0
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
build_dir="${CUDA_BUILD_DIR:-build/cuda}"
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DWAVEMOE_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$nvcc" >/dev/null
# The CUDA library and the CUDA test programs (and the CPU kernels they link), not the CPU test programs.
cmake --build "$build_dir" -j "$(nproc)" --target wavemoe_cuda_all
if [ -z "${SKIP_ADDON:-}" ]; then
  # The addon links cudart statically: it loads where no GPU or driver is present, and says so in `wavemoe info`.
  npx cmake-js build --out build-cuda --CDWAVEMOE_CUDA=ON --CDCMAKE_CUDA_COMPILER="$nvcc" --parallel "$(nproc)" \
    >build-cuda.log 2>&1 || { tail -40 build-cuda.log >&2; echo "cuda-build: the addon build failed (build-cuda.log)" >&2; exit 1; }
  rm -f build-cuda.log
  echo "cuda-build: build-cuda/Release/wavemoe.node"
fi
