#!/usr/bin/env bash
# Run HERE (the development machine) before a device call, so that Node.js can travel to the lent GPU machine, which
# has python3 with PyTorch, nvcc, cmake and ninja but no Node.js. It fills .device/ (ignored by git):
#   .device/node.xz        $(command -v node), xz -T2 -6 (about 25 MB for a 95 MB node; remade only when node is
#                          newer than it); scripts/device-check.sh unpacks it to /tmp/node/bin/node there
#   .device/node.version   `node --version` of that binary
#   .device/cuda-bin.tar.xz, .device/cuda-bin.stamp   only with --prebuilt: the CUDA test programs built HERE
#                          (SKIP_ADDON=1 scripts/cuda-build.sh into $CUDA_BUILD_DIR, default build/cuda; minutes on
#                          2 cores, but no device time) and the hash of the sources they were built from;
#                          device-check.sh uses them instead of building when the sources there hash the same and
#                          they load (ldd), which saves the device minutes of the nvcc build. Without --prebuilt
#                          they are removed, and the device machine builds.
#   .device/wavemoe.node.xz  build-cuda/Release/wavemoe.node compressed, when that CUDA addon was built here
#                          (npm run build:cuda; it cannot be built there: no cmake-js, no node_modules);
#                          device-check.sh hands it to test/gpu/run.js as WAVEMOE_CUDA_ADDON
# then prints the carry list and the size of what would travel (tracked + untracked-not-ignored files + the carried
# paths; the device tool's limit is 64 MiB).
#
# How a session uses it (the device tool's `run` verb; one call does everything, within its 10 minutes):
#   here:    bash scripts/device-prepare.sh [--prebuilt]
#   device:  run(command="bash scripts/device-check.sh", carry=[".device"], timeout_s=570)
#   then:    read the output tail (a summary line per program, the bench tables), and the files it left in $OUT:
#            env.log build.log tests.log node.log bench.log bench.json summary.json; call give_back unless you
#            rerun at once.
# Node is optional: without .device/ the device check builds, tests and benches all the same, and says that it
# skipped the Node checks.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((64 * 1024 * 1024))
prebuilt=0
for a in "$@"; do
  case $a in
    --prebuilt) prebuilt=1 ;;
    *) echo "usage: bash scripts/device-prepare.sh [--prebuilt]" >&2; exit 2 ;;
  esac
done

grep -qxF '.device/' .gitignore 2>/dev/null || echo "device-prepare: warning: .device/ is not in .gitignore" >&2
mkdir -p .device

node_path=$(command -v node || true)
if [ -z "$node_path" ]; then
  echo "device-prepare: no node here: nothing to carry for the Node checks (the device check skips them)"
  rm -f .device/node.xz .device/node.version
else
  node_real=$(readlink -f "$node_path")
  if [ -s .device/node.xz ] && [ .device/node.xz -nt "$node_real" ] &&
     [ "$(cat .device/node.version 2>/dev/null)" = "$("$node_real" --version)" ]; then
    echo "device-prepare: .device/node.xz is up to date ($(cat .device/node.version), from $node_real)"
  else
    echo "device-prepare: compressing $node_real ($("$node_real" --version)) into .device/node.xz ..."
    xz -T2 -6 -c "$node_real" >.device/node.xz.tmp
    mv .device/node.xz.tmp .device/node.xz
    "$node_real" --version >.device/node.version
  fi
  # It must not need shared libraries that the GPU machine may lack (the official builds need only libc/libstdc++).
  base='linux-vdso|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libstdc\+\+|libgcc_s|ld-linux'
  extra=$(ldd "$node_real" 2>/dev/null | grep -v -E "$base" || true)
  [ -z "$extra" ] || echo "device-prepare: warning: $node_real needs libraries the GPU machine may lack:
$extra" >&2
fi

addon=build-cuda/Release/wavemoe.node
rm -f .device/wavemoe.node  # it travels compressed (42 MB -> about 8 MB); device-check.sh unpacks it
if [ -f "$addon" ]; then
  if [ ! -f .device/wavemoe.node.xz ] || [ "$addon" -nt .device/wavemoe.node.xz ]; then
    xz -T2 -6 -c "$addon" >.device/wavemoe.node.xz.tmp
    mv .device/wavemoe.node.xz.tmp .device/wavemoe.node.xz
  fi
  echo "device-prepare: .device/wavemoe.node.xz = $addon (the CUDA addon built here, compressed)"
  newer=$(find csrc cuda CMakeLists.txt -newer "$addon" -type f 2>/dev/null | head -3 | tr '\n' ' ')
  [ -z "$newer" ] || echo "device-prepare: warning: $addon is older than ${newer}(npm run build:cuda rebuilds it)" >&2
else
  echo "device-prepare: no $addon (npm run build:cuda): the Node GPU suite will say SKIPPED there"
  rm -f .device/wavemoe.node.xz
fi

# dist/ (the compiled TypeScript, without source maps): test/gpu/run.js then also trains and decodes models on the GPU
# against the CPU (test/gpu/model_child.js). With WAVEMOE_ADDON set, dist/ needs no node_modules.
if [ -f dist/index.js ]; then
  tar --exclude='*.map' -cf - dist | xz -T2 -6 >.device/dist.tar.xz
  echo "device-prepare: .device/dist.tar.xz = dist/ (npm run build:ts; $(find dist -newer .device/dist.tar.xz -name '*.js' | wc -l) newer files)"
  newer=$(find lib -newer dist/index.js -name '*.ts' 2>/dev/null | head -3 | tr '\n' ' ')
  [ -z "$newer" ] || echo "device-prepare: warning: dist/ is older than ${newer}(npm run build:ts rebuilds it)" >&2
else
  echo "device-prepare: no dist/ (npm run build:ts): the GPU model comparison will be skipped there"
  rm -f .device/dist.tar.xz
fi

if [ $prebuilt -eq 1 ]; then
  b="${CUDA_BUILD_DIR:-build/cuda}"
  echo "device-prepare: building the CUDA test programs here (SKIP_ADDON=1 CUDA_BUILD_DIR=$b scripts/cuda-build.sh) ..."
  stamp=$(bash scripts/device-check.sh --stamp)
  SKIP_ADDON=1 CUDA_BUILD_DIR="$b" bash scripts/cuda-build.sh
  if [ "$(bash scripts/device-check.sh --stamp)" != "$stamp" ]; then
    echo "device-prepare: the sources changed during the build: run it again" >&2
    exit 1
  fi
  progs=$(cd "$b" && for f in cuda_test_*; do [ -f "$f" ] && [ -x "$f" ] && echo "$f"; done)
  [ -n "$progs" ] || { echo "device-prepare: no $b/cuda_test_* was built" >&2; exit 1; }
  # shellcheck disable=SC2086
  tar -C "$b" -cf - $progs | xz -T2 -6 >.device/cuda-bin.tar.xz
  echo "$stamp" >.device/cuda-bin.stamp
  echo "device-prepare: .device/cuda-bin.tar.xz: $(echo $progs) (sources $(cat .device/cuda-bin.stamp))"
else
  rm -f .device/cuda-bin.tar.xz .device/cuda-bin.stamp
fi

carry=(.device)

# What travels: tracked files, untracked files git does not ignore, shared/ if any, and the carried paths.
bytes_of() { if [ -e "$1" ]; then du -sb "$1" | cut -f1; else echo 0; fi; }
tree_bytes=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null || true) |
  awk '{s += $1} END {print s + 0}')
carry_bytes=0
for p in "${carry[@]}"; do carry_bytes=$((carry_bytes + $(bytes_of "$p"))); done
total=$((tree_bytes + carry_bytes))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
for p in "${carry[@]}"; do echo "device-prepare:   $p: $(mib "$(bytes_of "$p")")"; done
echo "device-prepare: working tree $(mib "$tree_bytes") + carried $(mib "$carry_bytes") = $(mib "$total")" \
  "of the 64 MiB limit"
list=$(printf '"%s", ' "${carry[@]}")
echo "device-prepare: carry=[${list%, }]"
echo "device-prepare: run(command=\"bash scripts/device-check.sh\", carry=[${list%, }], timeout_s=570)"
if [ "$total" -gt "$limit" ]; then
  echo "device-prepare: too large for the device tool (64 MiB): carry less" >&2
  exit 1
fi
