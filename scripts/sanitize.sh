#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer (with LeakSanitizer) over the native code (issue 14):
#  1. builds, with clang 14, the native test programs and the addon in one cmake-js tree with -DWAVEMOE_SANITIZE=ON
#     (its own directory, build-sanitize/: `node-gyp rebuild` deletes all of build/, so not under it);
#  2. runs the native tests (ctest);
#  3. runs jest suites that drive the kernels, the loaders, tensors, async ops and worker_threads against the
#     sanitized addon: WAVEMOE_ADDON points the library at it, and node (not instrumented) gets the ASan runtime
#     through LD_PRELOAD. Child processes and workers that the tests start inherit both.
# Every sanitizer report goes to a file in build-sanitize/reports/ (so that it is seen even when it comes from a
# child process whose output a test swallows); any report, failed test or failed build exits non-zero.
# Installs clang 14 and its sanitizer runtime with apt-get when they are missing (CI: root on a clean Debian 12).
# Usage: scripts/sanitize.sh [test files or directories]  (arguments replace the default set of jest suites)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
start=$SECONDS
build="$root/build-sanitize"
reports="$build/reports"

# --- toolchain
asan_runtime() { clang-14 -print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null || true; }
symbolizer=/usr/lib/llvm-14/bin/llvm-symbolizer  # (package llvm-14) source lines in the reports
if ! command -v clang++-14 >/dev/null || [ ! -f "$(asan_runtime)" ] || [ ! -x "$symbolizer" ]; then
  echo "--- installing clang-14, libclang-rt-14-dev (the sanitizer runtimes) and llvm-14 (llvm-symbolizer)"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y clang-14 libclang-rt-14-dev llvm-14
fi
runtime="$(asan_runtime)"
[ -f "$runtime" ] || { echo "sanitize: no ASan runtime at '$runtime'" >&2; exit 1; }
export ASAN_SYMBOLIZER_PATH="$symbolizer"

# --- build (output in build-sanitize/build.log; shown when it fails)
mkdir -p "$build"
rm -rf "$reports" && mkdir -p "$reports"
echo "--- building with clang 14, -fsanitize=address,undefined, in $build"
if ! npx cmake-js build --out "$build" --cc clang-14 --cxx clang++-14 --CDWAVEMOE_SANITIZE=ON \
     --parallel "$(nproc)" >"$build/build.log" 2>&1; then
  tail -50 "$build/build.log" >&2
  echo "sanitize: the build failed (full log: $build/build.log)" >&2
  exit 1
fi
addon="$build/Release/wavemoe.node"
[ -f "$addon" ] || { echo "sanitize: no $addon after the build" >&2; exit 1; }
# Some tests run the compiled dist/ in child processes and workers: compile it from the current lib/.
npx tsc -p tsconfig.json
echo "    built in $((SECONDS - start)) s"

# --- sanitizer settings, for the native tests and for node alike; $1: the step, whose reports go to reports/$1/.
# LeakSanitizer runs too, with scripts/lsan.supp for what Node and V8 leave behind at exit.
sanitizer_env() {
  mkdir -p "$reports/$1"
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$reports/$1/report"
  export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/$1/report"
}

status=0
check_reports() {  # $1: the step, $2: its console log. Shows the reports; prints how many there were.
  local found n=0
  found="$(find "$reports/$1" -type f | sort)"  # any file there is a sanitizer report
  for f in $found; do echo "=== $f" >&2; cat "$f" >&2; n=$((n + 1)); done
  # Belt and braces: a report that reached the console instead of a file.
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|Sanitizer has encountered a fatal error' "$2"; then
    echo "=== sanitizer output in the console log $2" >&2
    n=$((n + 1))
  fi
  [ "$n" -eq 0 ] || echo "sanitize: $n sanitizer report(s) from $1 (above)" >&2
  echo "$n"
}

# --- native tests
echo "--- native tests (ctest)"
native_log="$build/ctest.log"
sanitizer_env native
if ! ctest --test-dir "$build" --output-on-failure --parallel "$(nproc)" 2>&1 | tee "$native_log"; then status=1; fi
native_total="$(sed -nE 's/.* tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\2/p' "$native_log")"
native_failed="$(sed -nE 's/.* tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\1/p' "$native_log")"
native_reports="$(check_reports native "$native_log")"
[ "$native_reports" -eq 0 ] || status=1

# --- jest against the sanitized addon: one process per test file, so that a leak report names its file and a
# file's allocStats() checks see no garbage of other files collected meanwhile.
echo "--- jest with the sanitized addon"
suites=(test/kernels test/io test/train/trainer.test.ts test/models
        test/core/tensor.test.ts test/core/run_async.test.ts test/core/workers.test.ts)
[ "$#" -eq 0 ] || suites=("$@")
jest=(node "$root/node_modules/jest/bin/jest.js" --ci --runInBand)
jest_log="$build/jest.log"
results="$build/jest-results"
rm -rf "$results" && mkdir -p "$results"
: >"$jest_log"
sanitizer_env jest
mapfile -t files < <("${jest[@]}" --listTests "${suites[@]}" | sort)
[ "${#files[@]}" -gt 0 ] || { echo "sanitize: no jest test files match: ${suites[*]}" >&2; exit 1; }
for f in "${files[@]}"; do
  rel="${f#"$root"/}"
  if ! env LD_PRELOAD="$runtime" WAVEMOE_ADDON="$addon" "${jest[@]}" --json \
       --outputFile="$results/${rel//\//_}.json" --runTestsByPath "$f" 2>&1 | tee -a "$jest_log"; then
    status=1
  fi
done
jest_reports="$(check_reports jest "$jest_log")"
[ "$jest_reports" -eq 0 ] || status=1
read -r jest_passed jest_failed jest_total < <(node -e '
  const fs = require("node:fs"), path = require("node:path");
  let passed = 0, failed = 0, total = 0;
  for (const f of fs.readdirSync(process.argv[1])) {
    const r = JSON.parse(fs.readFileSync(path.join(process.argv[1], f), "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; total += r.numTotalTests;
  }
  console.log(passed, failed, total);' "$results")
jest_files="$(find "$results" -name '*.json' | wc -l)"

echo "--- sanitize summary ($((SECONDS - start)) s)"
echo "native tests: ${native_total:-?} run, ${native_failed:-?} failed; sanitizer reports: $native_reports"
echo "jest tests:   $jest_total run, $jest_passed passed, $jest_failed failed (${#files[@]} files, $jest_files with results); sanitizer reports: $jest_reports"
if [ "$status" -eq 0 ]; then
  echo "clean under ASan+UBSan+LSan: $native_total native tests and $jest_passed jest tests"
else
  echo "sanitize: FAILED (see above)" >&2
fi
exit "$status"
