#!/usr/bin/env bash
# Proves that `npm pack` gives a tarball that installs and runs (issue 8):
#  1. builds the prebuilt binary (prebuildify, N-API, tagged glibc), packs, and checks what the tarball holds;
#  2. installs it into an empty directory with a PATH that holds node, npm and sh only (no cc, c++, make, python),
#     then runs `wavemoe info` (also with the AVX2 and generic kernels forced: one binary for every x86-64 CPU), a
#     short train and a generate;
#  3. installs the same tarball without its prebuilds, with the compilers on the PATH: node-gyp-build finds no
#     matching binary and builds from source, and the result runs too (SKIP_SOURCE_BUILD=1 skips this step).
set -euo pipefail
cd "$(dirname "$0")/.."
export npm_config_nodedir="${npm_config_nodedir:-/usr}"
[ -n "${SKIP_PREBUILD:-}" ] || npm run prebuild  # SKIP_PREBUILD=1 reuses prebuilds/
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tarball="$(npm pack --pack-destination "$work" | tail -1)"
listing="$(tar -tzf "$work/$tarball")"
echo "packed $tarball ($(du -h "$work/$tarball" | cut -f1)):"
sed 's|^package/||' <<<"$listing" | awk -F/ '{print $1 (NF > 1 ? "/" : "")}' | sort | uniq -c
if grep -E '^package/(test|bench|build|scripts|docs)/|\.map$|\.tsbuildinfo$' <<<"$listing"; then
  echo "the tarball holds tests, benches, scripts, a build tree or source maps" >&2
  exit 1
fi
grep -qx 'package/prebuilds/linux-x64/wavemoe\.glibc\.node' <<<"$listing" || {
  echo "the tarball has no prebuilds/linux-x64/wavemoe.glibc.node" >&2
  exit 1
}

echo "--- install without a compiler: the prebuilt binary"
mkdir -p "$work/bin" "$work/app"
for tool in node npm npx sh; do ln -s "$(command -v "$tool")" "$work/bin/$tool"; done  # npm runs scripts with sh
cd "$work/app"
echo '{"name": "app", "version": "1.0.0", "private": true}' > package.json
PATH="$work/bin" npm install --no-audit --no-fund "$work/$tarball"
for tool in cc c++ g++ gcc make python3; do
  if PATH="$work/bin" command -v "$tool" >/dev/null; then echo "$tool is on the PATH" >&2; exit 1; fi
done
[ ! -d node_modules/wavemoe/build ] || { echo "the install built from source instead of using the prebuild" >&2; exit 1; }
PATH="$work/bin" npx wavemoe info
for isa in avx2 generic; do PATH="$work/bin" WAVEMOE_ISA=$isa npx wavemoe info | grep 'cpu kernels'; done
PATH="$work/bin" npx wavemoe train --steps 2 --batch 2 --seq-len 16 --out run
PATH="$work/bin" npx wavemoe generate --checkpoint run --prompt "Call me" --max-new-tokens 8
PATH="$work/bin" node --input-type=module -e "import { ops } from 'wavemoe'; console.log('ESM import: isa', ops.isa());"

if [ -z "${SKIP_SOURCE_BUILD:-}" ]; then
  echo "--- install where no prebuilt binary matches: node-gyp-build builds from source"
  mkdir "$work/unpacked" "$work/app-source"
  tar -xzf "$work/$tarball" -C "$work/unpacked"
  rm -rf "$work/unpacked/package/prebuilds"
  (cd "$work/unpacked/package" && npm pack --ignore-scripts --pack-destination "$work" >/dev/null)
  cd "$work/app-source"
  echo '{"name": "app-source", "version": "1.0.0", "private": true}' > package.json
  npm install --no-audit --no-fund "$work/$tarball"
  [ -f node_modules/wavemoe/build/Release/wavemoe.node ] || { echo "no source build happened" >&2; exit 1; }
  npx wavemoe info
fi
echo "pack test passed"
