#!/usr/bin/env bash
# The one prepared script a session runs on a lent GPU machine (the device tool), within one command of at most
# 10 minutes. Needs nvcc, cmake and (for the PyTorch baseline) python3 with torch there; no Node.js needed.
#
#   here (optional, for the Node GPU suite):  bash scripts/device-prepare.sh
#   device tool:  run(command="bash scripts/device-check.sh", carry=[".device"], timeout_s=570)
#
# Steps, each bounded by `timeout` and by a deadline of DEVICE_CHECK_BUDGET_S seconds (default 540) from the start:
#   1. nvidia-smi summary (queries only: the card's settings are left alone), tool versions          -> env.log
#   2. SKIP_ADDON=1 scripts/cuda-build.sh (cmake + ninja, -j$(nproc); for this GPU's architecture only,
#      CUDAARCHS from nvidia-smi's compute_cap, and CUDAFLAGS=--threads 0)                             -> build.log
#      or, when `scripts/device-prepare.sh --prebuilt` built them here from the same sources (.device/cuda-bin.*),
#      the carried test programs (saves the device minutes of the nvcc build; attention.cu alone takes minutes)
#   3. every $CUDA_BUILD_DIR/cuda_test_* program (the tests), TEST_TIMEOUT s each (default 150)       -> tests.log
#   4. if .device/node.xz was carried: unpack Node to /tmp/node; if test/gpu/run.js exists, run it
#      (WAVEMOE_CUDA_ADDON=.device/wavemoe.node, unpacked from .device/wavemoe.node.xz when carried), NODE_TIMEOUT s (default 120)          -> node.log
#   4b. with Node, dist/ and the CUDA addon carried: bench/gpu_train.sh (issue 13: moe-small and moe-base trained
#      in fp32 and bf16 by wavemoe and by PyTorch eager and torch.compile, generation at batch 1 and 32, the
#      ratios) with GPU_TRAIN_ARGS (default "--steps 5 --warmup 2"), GPU_TRAIN_TIMEOUT s (default 240) and
#      --budget-s 15 s less; the tests and the Node suite leave GPU_TRAIN_RESERVE_S (default 150) for it  -> gpu_train.log
#   5. bench/cuda.sh (native --bench programs, the PyTorch baseline, the ratios)                      -> bench.log,
#                                                                                                        bench.json
# then summary.json and one line per step/program (passed / failed / timed out / skipped), and a closing line
# "device-check: N passed, M failed, K skipped". Files go to ${OUT:-build/device-check} (8 files at most, no
# folders: the device tool's limit of 8 files; add none without folding it into one of these). Exit status 1 if the
# build, a test program, the Node suite, the GPU training bench or the bench failed or timed out; 0 otherwise.
# Knobs: CUDA_BUILD_DIR (default build/cuda), DEVICE_CHECK_BUDGET_S, TEST_TIMEOUT, NODE_TIMEOUT, BUILD_TIMEOUT
# (default 300), DEVICE_CHECK_TESTS (program names to run, e.g. "cuda_test_moe cuda_test_attention"; default all),
# DEVICE_CHECK_NO_BUILD=1 (use the build dir as it is), DEVICE_CHECK_BUILD=1 (build even when prebuilt programs
# were carried), DEVICE_CHECK_NO_BENCH=1, DEVICE_CHECK_NO_NODE=1, BENCH_RESERVE_S (seconds kept for the bench,
# default 200), DEVICE_CHECK_NO_GPU_TRAIN=1, GPU_TRAIN_ARGS, GPU_TRAIN_TIMEOUT, GPU_TRAIN_RESERVE_S.
set -uo pipefail
cd "$(dirname "$0")/.."

# A hash of the sources the CUDA test programs are built from (the same here and there: the working tree travels
# as tracked + untracked-not-ignored files, and these folders hold no ignored files). `--stamp` prints it.
source_stamp() {
  { find cuda csrc test/native -type f -print0 2>/dev/null; printf '%s\0' CMakeLists.txt; } | LC_ALL=C sort -z |
    xargs -0 sha256sum | sha256sum | cut -c1-16
}
if [ "${1:-}" = --stamp ]; then
  source_stamp
  exit 0
fi
t0=$(date +%s)
deadline=$((t0 + ${DEVICE_CHECK_BUDGET_S:-540}))
out="${OUT:-build/device-check}"
build="${CUDA_BUILD_DIR:-build/cuda}"
bench_reserve="${BENCH_RESERVE_S:-200}"
[ -n "${DEVICE_CHECK_NO_BENCH:-}" ] && bench_reserve=0
# The CUDA addon travels compressed (.device/wavemoe.node.xz, scripts/device-prepare.sh): unpack it first.
if [ -f .device/wavemoe.node.xz ] && [ ! -f .device/wavemoe.node ]; then
  if command -v xz >/dev/null; then
    xz -dc .device/wavemoe.node.xz >.device/wavemoe.node
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      .device/wavemoe.node.xz .device/wavemoe.node
  fi || { echo "device-check: could not unpack .device/wavemoe.node.xz"; rm -f .device/wavemoe.node; }
fi
# Kept by the tests and the Node suite for the GPU training bench (4b), when it can run: Node, dist/ and the CUDA
# addon carried (scripts/device-prepare.sh) and bench/gpu_train.sh in this tree.
gpu_train_reserve="${GPU_TRAIN_RESERVE_S:-150}"
if [ -n "${DEVICE_CHECK_NO_GPU_TRAIN:-}" ] || [ ! -f bench/gpu_train.sh ] || [ ! -f .device/node.xz ] ||
  [ ! -f .device/wavemoe.node ] || { [ ! -f dist/index.js ] && [ ! -f .device/dist.tar.xz ]; }; then
  gpu_train_reserve=0
fi
mkdir -p "$out"
export CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)"

left() { echo $((deadline - $(date +%s))); }
# min of the arguments
min() { local m=$1; shift; for x in "$@"; do [ "$x" -lt "$m" ] && m=$x; done; echo "$m"; }
json_str() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/ }
  s=${s//$'\t'/ }
  s=${s//$'\r'/ }
  printf '"%s"' "$s"
}
status_of_rc() {  # rc, log file, the line (grep -E) that says it skipped -> passed/failed (exit N)/timed out/skipped
  case $1 in
    0) if grep -qE "$3" "$2" 2>/dev/null; then echo skipped; else echo passed; fi ;;
    124 | 137) echo "timed out" ;;
    *) echo "failed (exit $1)" ;;
  esac
}

names=() statuses=() seconds=()
record() {  # name status seconds
  names+=("$1")
  statuses+=("$2")
  seconds+=("$3")
  echo "device-check: $1 $2 ($3 s)"
  write_summary
}
gpu_name=""
write_summary() {
  local i first=1 passed=0 failed=0
  {
    printf '{"gpu":%s,"build_dir":%s,"elapsed_s":%d,"budget_s":%d,"steps":[' "$(json_str "$gpu_name")" \
      "$(json_str "$build")" $(($(date +%s) - t0)) $((deadline - t0))
    for i in "${!names[@]}"; do
      [ $first -eq 1 ] || printf ','
      first=0
      printf '{"name":%s,"status":%s,"seconds":%s}' "$(json_str "${names[$i]}")" "$(json_str "${statuses[$i]}")" \
        "${seconds[$i]}"
      case ${statuses[$i]} in passed) passed=$((passed + 1)) ;; skipped*) ;; *) failed=$((failed + 1)) ;; esac
    done
    printf '],"passed":%d,"failed":%d,"ok":%s}\n' $passed $failed "$([ $failed -eq 0 ] && echo true || echo false)"
  } >"$out/summary.json"
}

# ------------------------------------------------------------------------------------------------ 1. the machine
{
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -srm), $(nproc) CPUs"
  if command -v nvidia-smi >/dev/null; then
    q=index,name,driver_version,memory.total,memory.used,utilization.gpu,temperature.gpu,clocks.sm,clocks.max.sm
    nvidia-smi --query-gpu="$q,power.draw,power.limit" --format=csv 2>&1
    echo
    nvidia-smi 2>&1
  else
    echo "nvidia-smi: not found"
  fi
  echo "== nvcc: $(nvcc --version 2>/dev/null | tail -n 1 || echo missing)"
  echo "== cmake: $(cmake --version 2>/dev/null | head -n 1 || echo missing);" \
    "ninja: $(ninja --version 2>/dev/null || echo missing)"
  echo "== python3: $(python3 -c 'import sys, torch
print(sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.version.cuda,
      "GPU" if torch.cuda.is_available() else "no GPU")' 2>&1 | tail -n 1)"
} >"$out/env.log" 2>&1
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)
have_gpu=0
[ -n "$gpu_name" ] && have_gpu=1
echo "device-check: $(date -u +%H:%M:%S) on $(uname -n), $(nproc) CPUs; budget $((deadline - t0)) s"
if [ $have_gpu -eq 1 ]; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,memory.used,utilization.gpu,temperature.gpu,clocks.sm \
    --format=csv,noheader 2>&1 | sed 's/^/device-check: gpu /'
else
  echo "device-check: no NVIDIA GPU seen (nvidia-smi missing or silent): the programs will say SKIPPED"
fi
sed -n 's/^== \(nvcc\|cmake\|python3\)/device-check: \1/p' "$out/env.log"

# ------------------------------------------------------------------------------------------------ 2. build
s=$(date +%s)
t=$(min "${BUILD_TIMEOUT:-300}" $(($(left) - bench_reserve - 30)))
if [ "$t" -lt 30 ]; then t=30; fi
prebuilt=""
if [ -f .device/cuda-bin.tar.xz ] && [ -z "${DEVICE_CHECK_NO_BUILD:-}" ] && [ -z "${DEVICE_CHECK_BUILD:-}" ]; then
  # Test programs built here by `scripts/device-prepare.sh --prebuilt`: used when they were built from these very
  # sources and this machine's loader finds every library they need; else the build below runs as usual.
  want=$(cat .device/cuda-bin.stamp 2>/dev/null)
  have=$(source_stamp)
  if [ "$want" != "$have" ]; then
    echo "device-check: the carried test programs were built from other sources ($want, here $have): building"
  else
    mkdir -p "$build"
    rm -f "$build"/cuda_test_*
    if command -v xz >/dev/null; then
      tar -C "$build" -xJf .device/cuda-bin.tar.xz
    else
      python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        .device/cuda-bin.tar.xz "$build"
    fi
    missing=$(for f in "$build"/cuda_test_*; do ldd "$f" 2>&1 | grep 'not found'; done | sort -u)
    if [ -n "$missing" ]; then
      echo "device-check: the carried test programs do not load here ($missing): building"
      rm -f "$build"/cuda_test_*
    else
      prebuilt=1
    fi
  fi
fi
if [ -n "$prebuilt" ]; then
  {
    echo "prebuilt here by scripts/device-prepare.sh --prebuilt, sources $(source_stamp):"
    ls -l "$build"/cuda_test_*
  } >"$out/build.log"
  echo "device-check: using the carried test programs (built from these sources by device-prepare.sh --prebuilt)"
  rc=0
elif [ -n "${DEVICE_CHECK_NO_BUILD:-}" ]; then
  echo "DEVICE_CHECK_NO_BUILD: using $build as it is" >"$out/build.log"
  rc=0
else
  # Only this GPU's architecture (sm_90 on an H200: the sm_80 code would never run here; CI builds both), and nvcc
  # compiling with several threads. Both only take effect when the build dir is configured for the first time.
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
  case $cap in [0-9][0-9] | [0-9][0-9][0-9]) export CUDAARCHS="${CUDAARCHS:-$cap}" ;; esac
  export CUDAFLAGS="${CUDAFLAGS:---threads 0}"
  echo "device-check: building with CUDAARCHS=${CUDAARCHS:-(CMakeLists default)} CUDAFLAGS=$CUDAFLAGS, timeout ${t}s"
  timeout -k 10 "$t" env SKIP_ADDON=1 CUDA_BUILD_DIR="$build" bash scripts/cuda-build.sh >"$out/build.log" 2>&1
  rc=$?
fi
st=$(status_of_rc $rc "$out/build.log" '^cuda-build: SKIPPED')
[ "$st" = skipped ] && st="failed (nvcc not found)"
record "build${prebuilt:+ (prebuilt here, carried)}" "$st" $(($(date +%s) - s))
if [ "$st" != passed ]; then
  tail -n 40 "$out/build.log"
fi

# ------------------------------------------------------------------------------------------------ 3. the tests
: >"$out/tests.log"
one=$(mktemp /tmp/device-check.XXXXXX)
if [ "$st" = passed ]; then
  progs=()
  for exe in "$build"/cuda_test_*; do
    [ -f "$exe" ] && [ -x "$exe" ] || continue
    name=$(basename "$exe")
    if [ -n "${DEVICE_CHECK_TESTS:-}" ] && [[ " $DEVICE_CHECK_TESTS " != *" $name "* ]]; then continue; fi
    progs+=("$exe")
  done
  if [ ${#progs[@]} -eq 0 ] && [ -n "${DEVICE_CHECK_TESTS:-}" ]; then
    record tests "skipped (DEVICE_CHECK_TESTS names no built program)" 0
  elif [ ${#progs[@]} -eq 0 ]; then
    record tests "failed (no $build/cuda_test_* program)" 0
  fi
  for exe in "${progs[@]}"; do
    name=$(basename "$exe")
    avail=$(($(left) - bench_reserve - gpu_train_reserve))
    t=$(min "${TEST_TIMEOUT:-150}" "$avail")
    if [ "$avail" -lt 10 ]; then
      record "$name" "timed out (not run: no time left)" 0
      continue
    fi
    s=$(date +%s)
    echo "==== $name (timeout ${t}s)" >>"$out/tests.log"
    timeout -k 10 "$t" "$exe" >"$one" 2>&1
    rc=$?
    st=$(status_of_rc $rc "$one" "^$name: SKIPPED \\(no CUDA device")
    cat "$one" >>"$out/tests.log"
    echo "==== $name: $st" >>"$out/tests.log"
    [ "$st" = skipped ] && [ $have_gpu -eq 1 ] && st="failed (SKIPPED although nvidia-smi sees a GPU)"
    if [ "$st" != passed ] && [ "$st" != skipped ]; then
      { grep -E 'FAIL|xception|rror' "$one" || tail -n 10 "$one"; } | head -n 25 | sed "s/^/  $name: /"
    fi
    record "$name" "$st" $(($(date +%s) - s))
  done
fi

# ------------------------------------------------------------------------------------------------ 4. Node (optional)
# Node (to /tmp/node/bin/node) and dist/, carried by scripts/device-prepare.sh; once, for steps 4 and 4b.
node_unpacked=""
unpack_node() {
  [ -n "$node_unpacked" ] && return 0
  [ -f .device/node.xz ] || return 1
  mkdir -p /tmp/node/bin
  if command -v xz >/dev/null; then
    xz -dc .device/node.xz >/tmp/node/bin/node
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      .device/node.xz /tmp/node/bin/node
  fi
  chmod +x /tmp/node/bin/node
  # dist/ for the model comparison of test/gpu/run.js (models trained on the GPU against the CPU) and 4b
  if [ -f .device/dist.tar.xz ] && [ ! -f dist/index.js ]; then
    if command -v xz >/dev/null; then
      xz -dc .device/dist.tar.xz | tar -xf - || echo "device-check: could not unpack .device/dist.tar.xz"
    else
      python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(".")' .device/dist.tar.xz ||
        echo "device-check: could not unpack .device/dist.tar.xz"
    fi
  fi
  node_unpacked=1
}
if [ -n "${DEVICE_CHECK_NO_NODE:-}" ]; then
  :
elif [ ! -f .device/node.xz ]; then
  echo "device-check: Node GPU suite skipped (no .device/node.xz carried:" \
    "scripts/device-prepare.sh, carry [\".device\"])"
elif [ ! -f test/gpu/run.js ]; then
  echo "device-check: Node GPU suite skipped (test/gpu/run.js absent in this tree)"
else
  s=$(date +%s)
  unpack_node
  {
    echo "== node $(/tmp/node/bin/node --version 2>&1)"
    [ -f .device/wavemoe.node ] && echo "== WAVEMOE_CUDA_ADDON=$PWD/.device/wavemoe.node"
  } >"$out/node.log"
  avail=$(($(left) - bench_reserve - gpu_train_reserve))
  t=$(min "${NODE_TIMEOUT:-120}" "$avail")
  if [ "$avail" -lt 10 ]; then
    record node-gpu-suite "timed out (not run: no time left)" 0
  else
    (
      export PATH="/tmp/node/bin:$PATH"
      if [ -f .device/wavemoe.node ]; then
        export WAVEMOE_CUDA_ADDON="$PWD/.device/wavemoe.node" WAVEMOE_ADDON="$PWD/.device/wavemoe.node"
      fi
      timeout -k 10 "$t" node test/gpu/run.js
    ) >>"$out/node.log" 2>&1
    rc=$?
    st=$(status_of_rc $rc "$out/node.log" '^gpu suite: SKIPPED')
    [ "$st" = skipped ] && [ $have_gpu -eq 1 ] && grep -q 'no CUDA-enabled addon' "$out/node.log" &&
      st="skipped (no CUDA addon carried: build-cuda/Release/wavemoe.node)"
    if [ "$st" = skipped ] && [ $have_gpu -eq 1 ]; then
      st="skipped ($(sed -n 's/^gpu suite: SKIPPED (\(.*\))$/\1/p' "$out/node.log" | head -n 1 | cut -c1-150))"
    fi
    if [ "$st" != passed ] && [[ "$st" != skipped* ]]; then
      grep -E '^FAIL' "$out/node.log" | head -n 20
      tail -n 3 "$out/node.log"
    fi
    record node-gpu-suite "$st" $(($(date +%s) - s))
  fi
fi

# ------------------------------------------------------------------------------------------------ 4b. GPU training bench
# bench/gpu_train.sh with a bounded number of steps: everything it prints goes to gpu_train.log (its per-part logs to
# /tmp/gpu-train); the reply shows its own lines, failures and the ratio tables.
if [ -n "${DEVICE_CHECK_NO_GPU_TRAIN:-}" ]; then
  echo "device-check: gpu-train skipped (DEVICE_CHECK_NO_GPU_TRAIN)"
elif [ ! -f bench/gpu_train.sh ]; then
  echo "device-check: gpu-train skipped (bench/gpu_train.sh absent in this tree)"
elif ! unpack_node; then
  record gpu-train "skipped (no .device/node.xz carried: scripts/device-prepare.sh, carry [\".device\"])" 0
elif [ ! -f dist/index.js ]; then
  record gpu-train "skipped (no dist/: npm run build:ts, then scripts/device-prepare.sh)" 0
elif [ ! -f .device/wavemoe.node ]; then
  record gpu-train "skipped (no CUDA addon carried: build-cuda/Release/wavemoe.node)" 0
else
  s=$(date +%s)
  avail=$(($(left) - bench_reserve))
  t=$(min "${GPU_TRAIN_TIMEOUT:-240}" "$avail")
  if [ "$avail" -lt 60 ]; then
    record gpu-train "timed out (not run: no time left)" 0
  else
    # shellcheck disable=SC2086  # GPU_TRAIN_ARGS is a list of flags
    (
      export PATH="/tmp/node/bin:$PATH" WAVEMOE_ADDON="$PWD/.device/wavemoe.node" GPU_TRAIN_OUT=/tmp/gpu-train
      timeout -k 10 "$t" bash bench/gpu_train.sh ${GPU_TRAIN_ARGS:---steps 5 --warmup 2} --budget-s $((t - 15))
    ) 2>&1 | tee "$out/gpu_train.log" |
      awk '/^training tokens\/s/ {show = 1} /^bench:gpu-train:|FAILED|^target / || (show && !/^\{/) {print; fflush()}'
    rc=${PIPESTATUS[0]}
    st=$(status_of_rc $rc "$out/gpu_train.log" '^bench:gpu-train: SKIPPED')
    if [ "$st" = skipped ]; then
      st="skipped ($(sed -n 's/^bench:gpu-train: SKIPPED (\(.*\))$/\1/p' "$out/gpu_train.log" | head -n 1 | cut -c1-150))"
    fi
    record gpu-train "$st" $(($(date +%s) - s))
  fi
fi

# ------------------------------------------------------------------------------------------------ 5. the bench
if [ -n "${DEVICE_CHECK_NO_BENCH:-}" ]; then
  echo "device-check: bench skipped (DEVICE_CHECK_NO_BENCH)"
elif [ ! -x "$build/cuda_test_kernels" ]; then
  record bench "skipped (no build)" 0
else
  s=$(date +%s)
  t=$(($(left) - 10))
  if [ "$t" -lt 30 ]; then
    record bench "timed out (not run: no time left)" 0
  else
    bench_out="$build/bench"
    rm -f "$bench_out"/*.json
    BENCH_NO_BUILD=1 CUDA_BUILD_DIR="$build" BENCH_OUT="$bench_out" BENCH_TIMEOUT=$(min 180 $((t / 3))) \
      TORCH_TIMEOUT=$(min 360 $((t - 20))) timeout -k 10 "$t" bash bench/cuda.sh 2>&1 | tee "$out/bench.log" |
      # the reply shows only the output's last 12,000 characters: here only bench.sh's own lines and the comparison
      # tables (every table and JSON object is in bench.log and bench.json)
      awk '/^bench:cuda: files in/ {show = 1} /^bench:cuda:/ || (show && !/^\{/) {print; fflush()}'
    rc=${PIPESTATUS[0]}
    if [ -f "$bench_out/bench.json" ]; then
      cp "$bench_out/bench.json" "$out/bench.json"
    else  # no comparison ran: put the JSONs there are into one object
      {
        printf '{'
        sep=""
        for f in "$bench_out"/*.json; do
          [ -f "$f" ] || continue
          printf '%s"%s":%s' "$sep" "$(basename "$f" .json)" "$(tail -n 1 "$f")"
          sep=","
        done
        printf '}\n'
      } >"$out/bench.json"
    fi
    st=$(status_of_rc $rc "$out/bench.log" '^bench:cuda: SKIPPED')
    [ "$st" = skipped ] && [ $have_gpu -eq 1 ] && st="failed (SKIPPED although nvidia-smi sees a GPU)"
    record bench "$st" $(($(date +%s) - s))
  fi
fi

# ------------------------------------------------------------------------------------------------ summary
write_summary
echo "device-check: files in $out: $(cd "$out" && ls | tr '\n' ' ')"
rm -f "${one:-}"
passed=0 failed=0 skipped=0
for i in "${!names[@]}"; do
  printf 'device-check: %-28s %s (%s s)\n' "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}"
  case ${statuses[$i]} in
    passed) passed=$((passed + 1)) ;;
    skipped*) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done
echo "device-check: $passed passed, $failed failed, $skipped skipped ($(($(date +%s) - t0)) s)"
[ $failed -eq 0 ]
