#!/usr/bin/env bash
# Compiles every CUDA source (cuda/*.cu -> libwavemoe_cuda.a, sm_80 + sm_90) and the CUDA test programs
# (test/native/cuda_test_*.cc) into build/cuda. Needs nvcc, not a GPU: CI runs it so that the CUDA code never rots.
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
cmake -S . -B build/cuda "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DWAVEMOE_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$nvcc" >/dev/null
# The CUDA library and the CUDA test programs (and the CPU kernels they link), not the CPU test programs.
cmake --build build/cuda -j "$(nproc)" --target wavemoe_cuda_all
