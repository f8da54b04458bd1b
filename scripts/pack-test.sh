#!/usr/bin/env bash
# Proves that `npm pack` gives a tarball that installs and runs without a C++ compiler (issue 8):
# builds the prebuilt binary (prebuildify, N-API), packs, installs the tarball into an empty directory with a PATH
# that holds node, npm and sh only (no cc, c++, make, python), then runs `wavemoe info`, a short train and a generate.
set -euo pipefail
cd "$(dirname "$0")/.."
export npm_config_nodedir="${npm_config_nodedir:-/usr}"
[ -n "${SKIP_PREBUILD:-}" ] || npm run prebuild  # SKIP_PREBUILD=1 reuses prebuilds/
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tarball="$(npm pack --pack-destination "$work" | tail -1)"
echo "packed $tarball ($(du -h "$work/$tarball" | cut -f1)):"
tar -tzf "$work/$tarball" | sed 's|^package/||' | awk -F/ '{print $1 (NF > 1 ? "/" : "")}' | sort | uniq -c
if tar -tzf "$work/$tarball" | grep -E '^package/(test|bench|build)/'; then
  echo "the tarball holds tests, benches or a build tree" >&2
  exit 1
fi
mkdir -p "$work/bin" "$work/app"
ln -s "$(command -v node)" "$work/bin/node"
ln -s "$(command -v npm)" "$work/bin/npm"
ln -s "$(command -v npx)" "$work/bin/npx"
ln -s "$(command -v sh)" "$work/bin/sh"  # npm runs install scripts with sh
cd "$work/app"
echo '{"name": "app", "version": "1.0.0", "private": true}' > package.json
PATH="$work/bin" npm install --no-audit --no-fund "$work/$tarball"
for tool in cc c++ g++ gcc make python3; do
  if PATH="$work/bin" command -v "$tool" >/dev/null; then echo "$tool is on the PATH" >&2; exit 1; fi
done
PATH="$work/bin" npx wavemoe info
PATH="$work/bin" npx wavemoe train --steps 2 --batch 2 --seq-len 16 --out run
PATH="$work/bin" npx wavemoe generate --checkpoint run --prompt "Call me" --max-new-tokens 8
echo "pack test passed"
