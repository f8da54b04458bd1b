// Native test of cuda/sampling.{h,cu}: sample_tokens against the CPU kernel (csrc/kernels/sampling.h), float32 and
// float64, V from 1 to 50254, B = 1 (one sort) and B > 1 (two sorts), over every combination of temperature
// (0 = greedy, and > 0), top-k (off, 1, small, V - 1, V, > V), top-p (off and on) and repetition penalty (off, > 1,
// < 1; history with repeats and -1 padding), on logits with ties (also -0 against +0), -Infinity entries, peaked
// and huge ranges (weights that underflow to 0); many seeds and counters; and the error rows (NaN, +Infinity, a
// penalised logit that overflows, all -Infinity), through the status array and through the throwing call.
// Without a GPU or driver it prints one SKIPPED line and exits 0.
//
//   build/cuda/cuda_test_sampling              # exit 1 on any failure
//   build/cuda/cuda_test_sampling --bench      # ms per call at V = 50254; JSON on the last line
//
// Expectations:
//  - ids: IDENTICAL to the CPU's for every row (same order, same comparisons; only double sums are reordered, which
//    could matter only if u or top_p fell within ~1e-16 of a cumulative probability: the top_p values below are
//    chosen off every k/V, k/top_k, so even the all-equal rows have no such tie);
//  - probs (zero outside the kept tokens): float32 within 1 float ulp (rtol 2^-22, atol 1e-44 for subnormals):
//    w / norm in double differs by a few double ulps (exp is within 1 ulp on both sides; norm is a reordered sum of
//    ≤ V terms, relative error ≤ V·2^-53 ≈ 6e-12) and is then rounded once; float64 within rtol 2e-11, atol 1e-300;
//  - errors: the same message as the CPU's for the first bad row; every bad row flagged with the CPU's column; the
//    rows around it sampled.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/error.h"
#include "cuda_check.h"
#include "cuda/sampling.h"
#include "kernels/sampling.h"

using namespace cuda_test;

namespace {

constexpr int32_t kUnset = -7;  // out_ids before the call: a row that is not sampled keeps it on both sides
constexpr double kInf = std::numeric_limits<double>::infinity();

template <typename T> constexpr bool is_float() { return sizeof(T) == 4; }
template <typename T> const char* type_name() { return is_float<T>() ? "float32" : "float64"; }

// One problem: B rows of V logits, history (B, H) or none.
template <typename T> struct Problem {
  int64_t B, V, H;
  std::vector<T> logits;
  std::vector<int32_t> history;  // empty: none
};

template <typename T> struct Outcome {
  std::vector<int32_t> ids;
  std::vector<T> probs;  // empty: not asked for
  std::string error;     // empty: none
};

template <typename T> Outcome<T> run_cpu(const Problem<T>& pb, const cpu::SamplingParams& p, bool with_probs) {
  Outcome<T> o;
  o.ids.assign(pb.B, kUnset);
  if (with_probs) o.probs.assign(pb.B * pb.V, T(-3));  // the kernel zeroes every row
  try {
    cpu::sample_tokens<T>(o.ids.data(), with_probs ? o.probs.data() : nullptr, pb.logits.data(),
                          pb.history.empty() ? nullptr : pb.history.data(), p, pb.B, pb.V, pb.H);
  } catch (const cpu::Error& e) {
    o.error = e.what();
  }
  return o;
}

// The GPU side, with a status array (the binding's way); *status_out gets the statuses when given.
template <typename T>
Outcome<T> run_gpu(const Problem<T>& pb, const cpu::SamplingParams& p, bool with_probs,
                   std::vector<gpu::SamplingStatus>* status_out = nullptr) {
  Outcome<T> o;
  auto d_logits = upload(pb.logits);
  auto d_hist = upload(pb.history);
  auto d_ids = upload(std::vector<int32_t>(pb.B, kUnset));
  gpu::DeviceBuffer<T> d_probs(with_probs ? pb.B * pb.V : 0);
  gpu::DeviceBuffer<gpu::SamplingStatus> d_status(pb.B);
  gpu::sample_tokens<T>(d_ids.get(), with_probs ? d_probs.get() : nullptr, d_logits.get(),
                        pb.history.empty() ? nullptr : d_hist.get(), p, pb.B, pb.V, pb.H, g_stream, d_status.get());
  try {
    gpu::check_sampling_status(d_status.get(), pb.B, g_stream);
  } catch (const cpu::Error& e) {
    o.error = e.what();
  }
  o.ids = download(d_ids);
  if (with_probs) o.probs = download(d_probs);
  if (status_out) *status_out = download(d_status);
  return o;
}

std::string describe(const cpu::SamplingParams& p) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), "t=%g k=%lld p=%g pen=%g seed=%llu counter=%llu", p.temperature,
                (long long)p.top_k, p.top_p, p.repetition_penalty, (unsigned long long)p.seed,
                (unsigned long long)p.counter);
  return buf;
}

// Running comparison of one group of calls; report() prints one line and counts failures.
struct Tally {
  std::string name;
  size_t calls = 0, rows = 0, id_mismatches = 0, prob_failures = 0, error_mismatches = 0;
  double worst_ratio = 0;  // of |gpu - cpu| / tol over probs
  int printed = 0;

  template <typename T> void compare(const std::string& what, const Outcome<T>& c, const Outcome<T>& g) {
    const double rtol = is_float<T>() ? 4 * kEps32 : 2e-11, atol = is_float<T>() ? 1e-44 : 1e-300;
    ++calls;
    if (c.error != g.error) {
      ++error_mismatches;
      if (printed++ < 8) {
        std::fprintf(stderr, "FAIL %s %s: error cpu '%s' gpu '%s'\n", name.c_str(), what.c_str(), c.error.c_str(),
                     g.error.c_str());
      }
    }
    for (size_t b = 0; b < c.ids.size(); ++b) {
      ++rows;
      if (c.ids[b] != g.ids[b]) {
        ++id_mismatches;
        if (printed++ < 8) {
          std::fprintf(stderr, "FAIL %s %s: row %zu id cpu %d gpu %d\n", name.c_str(), what.c_str(), b, c.ids[b],
                       g.ids[b]);
        }
      }
    }
    for (size_t i = 0; i < c.probs.size(); ++i) {
      const double r = c.probs[i], x = g.probs[i], err = std::fabs(x - r), tol = atol + rtol * std::fabs(r);
      worst_ratio = std::max(worst_ratio, err / tol);
      if (!(err <= tol)) {
        ++prob_failures;
        if (printed++ < 8) {
          std::fprintf(stderr, "FAIL %s %s: probs[%zu] cpu %.17g gpu %.17g\n", name.c_str(), what.c_str(), i, r, x);
        }
      }
    }
  }

  void report() const {
    const bool ok = id_mismatches == 0 && prob_failures == 0 && error_mismatches == 0;
    std::printf("  %-44s %5zu calls %6zu rows: ids %s, probs %.2f of tol%s%s\n", name.c_str(), calls, rows,
                id_mismatches ? "DIFFER" : "identical", worst_ratio, error_mismatches ? ", errors DIFFER" : "",
                ok ? "" : "  FAILED");
    if (!ok) native_test_failures() += 1;
  }
};

// ================================================================ inputs
enum class Pattern { wide, ties, masked, peaked, huge, flat, near };
const char* pattern_name(Pattern k) {
  switch (k) {
    case Pattern::wide: return "wide";
    case Pattern::ties: return "ties";
    case Pattern::masked: return "masked";
    case Pattern::peaked: return "peaked";
    case Pattern::huge: return "huge";
    case Pattern::flat: return "flat";
    case Pattern::near: return "near";
  }
  return "?";
}

// One row of V logits.
template <typename T> std::vector<T> make_row(Pattern k, int64_t V) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<T> row(V);
  for (int64_t j = 0; j < V; ++j) {
    const double x = u(g_gen);
    switch (k) {
      case Pattern::wide: row[j] = T(-8 + 16 * x); break;
      case Pattern::ties: {  // six levels, many equal logits; the zeros half -0, half +0
        const double level = std::floor(x * 6) * 0.5 - 1.0;
        row[j] = level == 0 ? (j % 2 ? T(-0.0) : T(0.0)) : T(level);
        break;
      }
      case Pattern::masked: row[j] = x < 0.3 ? T(-kInf) : T(-8 + 16 * u(g_gen)); break;
      case Pattern::peaked: row[j] = T(-8 + 16 * x); break;
      case Pattern::huge: row[j] = T(-1e4 + 2e4 * x); break;  // most weights underflow to 0 at t <= 1.7
      case Pattern::flat: row[j] = T(0.25); break;
      case Pattern::near: row[j] = T(1.0 + std::floor(x * 5) * std::ldexp(1.0, -23)); break;  // float neighbours
    }
  }
  if (k == Pattern::peaked) row[V / 2] = T(30);
  if (k == Pattern::masked && V > 1) row[V - 1] = T(-kInf);
  return row;
}

// History (B, H): ids that matter (the row's best token, its neighbours) and random ones, with repeats; -1 padding
// at the end of every row and in the middle of some.
template <typename T> std::vector<int32_t> make_history(const std::vector<T>& logits, int64_t B, int64_t V, int64_t H) {
  std::vector<int32_t> h(B * H, -1);
  std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(V - 1));
  for (int64_t b = 0; b < B; ++b) {
    const T* row = logits.data() + b * V;
    const int32_t best = static_cast<int32_t>(std::max_element(row, row + V) - row);
    const int64_t used = H - 1 - b % 3;  // the rest stays -1
    for (int64_t i = 0; i < used; ++i) {
      int32_t id = any(g_gen);
      if (i % 4 == 0) id = best;                                           // repeated
      if (i % 4 == 1) id = static_cast<int32_t>((best + 1) % V);
      if (i == 5 && b % 2 == 1) id = -1;                                   // padding in the middle
      h[b * H + i] = id;
    }
  }
  return h;
}

template <typename T> Problem<T> make_problem(Pattern k, int64_t B, int64_t V, int64_t H) {
  Problem<T> pb{B, V, H, {}, {}};
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<T> row = make_row<T>(k, V);
    pb.logits.insert(pb.logits.end(), row.begin(), row.end());
  }
  if (H > 0) pb.history = make_history(pb.logits, B, V, H);
  return pb;
}

// The option grid. top_p values lie off every k/V and k/top_k of the sizes below (see the top).
const double kTemperatures[] = {0.0, 0.6, 1.0, 1.7};
const double kTopPs[] = {1.0, 0.9317, 0.5173, 0.0731};
const double kPenalties[] = {1.0, 1.3, 0.7};
std::vector<int64_t> top_ks(int64_t V) {
  std::vector<int64_t> k = {0, 1, 3, 40, V - 1, V, V + 5};
  std::sort(k.begin(), k.end());
  k.erase(std::unique(k.begin(), k.end()), k.end());
  k.erase(std::remove_if(k.begin(), k.end(), [](int64_t x) { return x < 0; }), k.end());
  return k;
}

// Every option combination on one problem; seed and counter change with every call.
template <typename T> void grid(Tally& t, const Problem<T>& pb, const std::string& label, uint64_t* seed) {
  static int64_t grids = 0;
  const int64_t group = grids++;
  int64_t combination = 0;
  for (double temp : kTemperatures) {
    for (int64_t k : top_ks(pb.V)) {
      for (double top_p : kTopPs) {
        for (double pen : kPenalties) {
          cpu::SamplingParams p;
          p.temperature = temp;
          p.top_k = k;
          p.top_p = top_p;
          p.repetition_penalty = pen;
          p.seed = (*seed)++;
          p.counter = *seed % 7;
          const bool with_probs = (*seed % 5) != 0;  // now and then without probs
          if (pb.V > 1000 && !emulation_keeps(combination++, group)) continue;
          t.compare(label + " " + describe(p), run_cpu(pb, p, with_probs), run_gpu(pb, p, with_probs));
        }
      }
    }
  }
}

// ================================================================ tests
template <typename T> void test_grid() {
  std::printf("sample_tokens %s: every option combination (ids identical; probs rtol 2^-22 / 2e-11)\n",
              type_name<T>());
  struct Size {
    int64_t B, V;
  };
  const std::vector<Size> sizes = is_float<T>()
      ? std::vector<Size>{{1, 1}, {3, 2}, {2, 7}, {5, 97}, {1, 1000}, {4, 1000}, {1, 50254}, {3, 50254}}
      : std::vector<Size>{{1, 1}, {2, 7}, {5, 97}, {3, 1000}, {2, 50254}};
  const Pattern all[] = {Pattern::wide, Pattern::ties, Pattern::masked, Pattern::peaked,
                         Pattern::huge, Pattern::flat, Pattern::near};
  // V = 50254: fewer patterns (the grid is 336 calls each); B = 1 takes the one-sort path, B > 1 the two-sort one.
  const std::vector<Pattern> big = {Pattern::wide, Pattern::ties, Pattern::masked, Pattern::flat};
  const std::vector<Pattern> big_single = {Pattern::wide, Pattern::flat};
  uint64_t seed = 1000;
  for (const Size& s : sizes) {
    const std::vector<Pattern>& allowed = s.B == 1 ? big_single : big;
    for (Pattern k : all) {
      if (s.V > 1000 && std::find(allowed.begin(), allowed.end(), k) == allowed.end()) continue;
      Tally t;
      t.name = std::string(pattern_name(k)) + " B=" + std::to_string(s.B) + " V=" + std::to_string(s.V);
      const Problem<T> pb = make_problem<T>(k, s.B, s.V, 13);
      grid(t, pb, t.name, &seed);
      t.report();
    }
  }
}

// Many seeds and counters on fixed logits: the draw itself.
template <typename T> void test_seeds() {
  std::printf("sample_tokens %s: many seeds (ids identical)\n", type_name<T>());
  struct Run {
    int64_t B, V, seeds, top_k;
    double top_p, temperature;
  };
  for (const Run& r : {Run{8, 1000, 400, 0, 1.0, 1.0}, Run{8, 1000, 200, 0, 0.9317, 0.6},
                       Run{16, 50254, 60, 0, 1.0, 1.0}, Run{16, 50254, 60, 50, 0.9317, 0.8},
                       Run{1, 50254, 100, 0, 0.5173, 1.3}}) {
    const Problem<T> pb = make_problem<T>(Pattern::wide, r.B, r.V, 0);
    Tally t;
    t.name = "B=" + std::to_string(r.B) + " V=" + std::to_string(r.V) + " k=" + std::to_string(r.top_k) +
             " p=" + std::to_string(r.top_p).substr(0, 6) + " x" + std::to_string(r.seeds) + " seeds";
    for (int64_t s = 0; s < r.seeds; ++s) {
      if (r.V > 1000 && !emulation_keeps(s)) continue;
      cpu::SamplingParams p;
      p.temperature = r.temperature;
      p.top_k = r.top_k;
      p.top_p = r.top_p;
      p.seed = 77 + 1000 * s;
      p.counter = s;
      const bool with_probs = s % 10 == 0;
      t.compare(describe(p), run_cpu(pb, p, with_probs), run_gpu(pb, p, with_probs));
    }
    t.report();
  }
}

// Greedy ties: the first maximum, -0 == +0.
void test_greedy_ties() {
  std::printf("sample_tokens greedy ties (-0 == +0, lowest index)\n");
  Problem<float> pb{3, 9, 0, {}, {}};
  pb.logits = {-1, -2, -3, -0.0f, -5, 0.0f, -1, -2, -3,    // first maximum: index 3 (-0)
               -1, -2, 0.0f, -3, -0.0f, -5, -1, -2, -3,    // index 2 (+0)
               4, -2, 4, -3, 4, -5, -1, -2, 4};            // index 0
  cpu::SamplingParams p;
  p.temperature = 0;
  Tally t;
  t.name = "greedy ties";
  const Outcome<float> c = run_cpu(pb, p, true), g = run_gpu(pb, p, true);
  t.compare("greedy", c, g);
  CHECK(g.ids == (std::vector<int32_t>{3, 2, 0}));
  // The same rows at t > 0 with top-k 1: the first of the order is the greedy token.
  p.temperature = 0.9;
  p.top_k = 1;
  t.compare("top-k 1", run_cpu(pb, p, true), run_gpu(pb, p, true));
  t.report();
}

// Bad rows: NaN (before a +Infinity), +Infinity (before a NaN), all -Infinity, and (float64) a penalised logit that
// overflows; good rows around them. Statuses, the message, the good rows' ids, and the throwing form.
template <typename T> void test_errors() {
  std::printf("sample_tokens %s: error rows\n", type_name<T>());
  const int64_t B = 6, V = 1000, H = 4;
  Problem<T> pb = make_problem<T>(Pattern::wide, B, V, H);
  T* z = pb.logits.data();
  z[1 * V + 5] = std::numeric_limits<T>::quiet_NaN();
  z[1 * V + 9] = std::numeric_limits<T>::infinity();
  z[2 * V + 3] = std::numeric_limits<T>::infinity();
  z[2 * V + 7] = std::numeric_limits<T>::quiet_NaN();
  for (int64_t j = 0; j < V; ++j) z[3 * V + j] = -std::numeric_limits<T>::infinity();
  // Row 4: huge logit in the history; with a penalty < 1 (z / p) float64 overflows to +Infinity.
  z[4 * V + 11] = is_float<T>() ? T(3e38) : T(1.5e308);
  pb.history[4 * H + 0] = 11;
  const std::vector<int32_t> want_fault = {gpu::kSamplingOk, gpu::kSamplingNaN, gpu::kSamplingPosInf,
                                           gpu::kSamplingAllMasked, is_float<T>() ? gpu::kSamplingOk
                                                                                  : gpu::kSamplingPosInf,
                                           gpu::kSamplingOk};
  const std::vector<int32_t> want_index = {-1, 5, 3, -1, is_float<T>() ? -1 : 11, -1};
  Tally t;
  t.name = std::string("error rows ") + type_name<T>();
  for (double temp : {0.0, 1.0}) {
    for (int64_t k : {int64_t(0), int64_t(20)}) {
      cpu::SamplingParams p;
      p.temperature = temp;
      p.top_k = k;
      p.top_p = 0.9317;
      p.repetition_penalty = 0.5;
      p.seed = 5;
      std::vector<gpu::SamplingStatus> st;
      const Outcome<T> c = run_cpu(pb, p, true), g = run_gpu(pb, p, true, &st);
      t.compare(describe(p), c, g);
      CHECK(c.error == "row 1: logits[1, 5] is NaN");
      for (int64_t b = 0; b < B; ++b) {
        CHECK(st[b].fault == want_fault[b]);
        CHECK(st[b].index == want_index[b]);
      }
      for (int64_t b : {int64_t(0), int64_t(5)}) CHECK(g.ids[b] >= 0 && g.ids[b] < V);  // sampled around them
    }
  }
  // Only the later faults: the message names the first of them.
  Problem<T> later = pb;
  later.logits[1 * V + 5] = T(0);
  later.logits[1 * V + 9] = T(0);
  cpu::SamplingParams p;
  p.temperature = 1;
  p.seed = 9;
  const Outcome<T> c = run_cpu(later, p, false), g = run_gpu(later, p, false);
  t.compare("later faults", c, g);
  CHECK(g.error == "row 2: logits[2, 3] is +Infinity (logits must be finite or -Infinity)");
  // The all -Infinity message.
  Problem<T> masked = make_problem<T>(Pattern::wide, 2, 7, 0);
  for (int64_t j = 0; j < 7; ++j) masked.logits[7 + j] = -std::numeric_limits<T>::infinity();
  const Outcome<T> cm = run_cpu(masked, p, true), gm = run_gpu(masked, p, true);
  t.compare("all -Infinity", cm, gm);
  CHECK(gm.error == "row 1: every logit is -Infinity, so there is nothing to sample");
  // The throwing form (status = null): one synchronisation, the same exception as the CPU.
  auto d_logits = upload(later.logits);
  auto d_hist = upload(later.history);
  gpu::DeviceBuffer<int32_t> d_ids(B);
  std::string msg;
  try {
    gpu::sample_tokens<T>(d_ids.get(), nullptr, d_logits.get(), d_hist.get(), p, B, V, H, g_stream);
  } catch (const cpu::Error& e) {
    msg = e.what();
  }
  std::printf("  throwing form: %s\n", msg.c_str());
  CHECK(msg == c.error);
  t.report();
}

// ================================================================ bench
int bench(const gpu::DeviceInfo& info) {
  const int64_t V = 50254;
  std::printf("sample_tokens float32, V = %lld, on %s (ms per call, status not read)\n", (long long)V,
              info.name.c_str());
  std::string json = "{\"device\":\"" + info.name + "\",\"V\":50254,\"results\":[";
  bool first = true;
  for (int64_t B : {1, 8, 64}) {
    const std::vector<float> logits = uniform<float>(B * V, -8, 8);
    auto d_logits = upload(logits);
    gpu::DeviceBuffer<int32_t> ids(B);
    gpu::DeviceBuffer<gpu::SamplingStatus> st(B);
    struct Mode {
      const char* name;
      double t, top_p;
      int64_t top_k;
    };
    for (const Mode& m : {Mode{"greedy", 0, 1, 0}, Mode{"full", 1, 1, 0}, Mode{"top_k=50", 0.8, 1, 50},
                          Mode{"top_p=0.9", 0.8, 0.9, 0}}) {
      cpu::SamplingParams p;
      p.temperature = m.t;
      p.top_p = m.top_p;
      p.top_k = m.top_k;
      const double ms = time_ms([&] {
        gpu::sample_tokens<float>(ids.get(), nullptr, d_logits.get(), nullptr, p, B, V, 0, g_stream, st.get());
      });
      std::printf("  B=%-3lld %-10s %8.3f ms\n", (long long)B, m.name, ms);
      char buf[160];
      std::snprintf(buf, sizeof(buf), "%s{\"B\":%lld,\"mode\":\"%s\",\"ms\":%.4f}", first ? "" : ",", (long long)B,
                    m.name, ms);
      json += buf;
      first = false;
    }
  }
  std::printf("%s]}\n", json.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_cuda_test_main("cuda_test_sampling", argc, argv, [] {
    test_greedy_ties();
    test_errors<float>();
    test_errors<double>();
    test_grid<float>();
    test_grid<double>();
    test_seeds<float>();
    test_seeds<double>();
  }, bench);
}
