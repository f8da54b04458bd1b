// Native test of the CUDA mixture-of-experts kernels (cuda/moe.h): every piece and the whole layer, forward and
// backward, against the CPU kernels (csrc/kernels/moe.h) on random inputs of awkward sizes; plus (--bench) the
// layer's tokens/s. Needs no Node.js. Without a GPU or driver it prints one SKIPPED line and exits 0.
//
//   build/cuda/cuda_test_moe            # tests; exit 1 on any failure
//   build/cuda/cuda_test_moe --bench    # forward and forward+backward tokens/s; one JSON object on the last line
//
// What is compared. Integer outputs (expert, counts, offsets, slot_row, row_slot[0, R)) must be identical; so must
// the gathered rows and gather's backward (copies and adds in the CPU's order). Float outputs:
//   |gpu - cpu| <= rel·max|cpu| + rel·|cpu|   per element (max over the whole array), with
//   float32 pieces rel 2e-4: inputs are O(1) by construction (weights scaled by 1/√fan-in), so every GEMM output is
//     O(1). A length-L float32 dot product in any order is within L·2^-24·Σ|a·b| of the exact value: for the
//     longest reductions here (L <= 130, Σ|a·b| a few times the array's max) <= 3e-5·max, and the router's logits
//     (D <= 67) within 3.4e-5, which moves the probabilities and weights by at most 4x that relatively. Typical
//     errors are ~100x below these bounds; any indexing or formula bug is O(1).
//   float32 whole layer rel 1e-3: up to four dependent stages (router, expert GEMMs, combine, backward GEMMs), each
//     within the bound above. The large case (L up to ~1100) uses 1e-3 for the pieces too.
//   float64: the same bounds with 2^-53 are <= 1e-13: pieces 1e-12, layer 1e-10.
// Inputs avoid accidental near-ties: every token's k + 1 best logits are >= 1e-3 apart (far above the float32
// rounding of the logits), so both sides choose the same experts in the same order; a dedicated test checks exact
// ties (lower index wins). ReLU layer cases redraw until no pre-activation lies within 5e-5 of the kink (the
// layer's backward uses each side's own a). Device buffers start as NaN (ints -1), so a kernel that skips an output
// or reads a row past R shows up as NaN.
//
// Under the bf16 / tf32 matmul precision (float32; set on both sides) the expert GEMMs run on tensor cores (WMMA),
// the CPU emulates the rounding: both round the same float32 inputs to nearest even, and products of rounded inputs
// are exact in float32, so a GEMM whose inputs are identical on both sides (the first stage: a, b from xp; dh, dw2
// from dy; the router's logits) differs only by summation order: the float32 tolerance above ("tight"). A GEMM input
// computed on each side (h, da, db, dlogits) differs by float32 rounding, which can move its rounding to the other
// neighbour: one bf16 (tf32) ulp, 2^-7 (2^-10) of that input, in the rare product it happens to ("loose": pieces
// 2·2^-bits, whole layer 4·2^-bits of max|ref|; a bug that skips the rounding breaks the tight checks, an indexing
// bug is O(1)). An expert-count test forces experts of 0, 1, 17, 129, 200 rows with D, F in {1, 15, 16, 33, 200}
// (partial tensor-core tiles at every edge), and a switch test checks that the CUDA-core path, turned on by
// gpu::set_moe_tensor_cores_allowed(false) (as WAVEMOE_CUDA_TENSOR_CORES=0 does), is the old kernel bit for bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "check.h"
#include "cuda_check.h"
#include "cuda/allocator.h"
#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/moe.h"
#include "kernels/matmul_precision.h"
#include "kernels/moe.h"

using namespace cuda_test;

namespace {

using cpu::MatmulPrecision;
using cpu::MoeActivation;
using cpu::MoeRouter;

// ================================================================ cases and tolerances
struct Case {
  int64_t N = 1, D = 1, F = 1, E = 1, k = 1;
  MoeRouter router = MoeRouter::softmax_topk;
  bool renormalize = false;
  MoeActivation act = MoeActivation::swiglu;
  double capacity_factor = 0;  // <= 0: dropless
  bool expert_bias = true, router_bias = true;
};

template <typename T> struct Tol;
template <> struct Tol<float> {
  static constexpr double piece = 2e-4, layer = 1e-3;
  static constexpr const char* name = "float32";
};
template <> struct Tol<double> {
  static constexpr double piece = 1e-12, layer = 1e-10;
  static constexpr const char* name = "float64";
};

// Sets the process-wide matmul precision (both sides read it); fp32 again at the end of the scope.
struct PrecisionScope {
  explicit PrecisionScope(MatmulPrecision p) { cpu::set_matmul_precision(p); }
  ~PrecisionScope() { cpu::set_matmul_precision(MatmulPrecision::fp32); }
};
int precision_bits() { return cpu::mantissa_bits(cpu::matmul_precision()); }
// Loose tolerances (header): one rounding flip of a computed GEMM input; the tight one is Tol<float>'s.
double loose_piece(int bits) { return 2.0 * std::ldexp(1.0, -bits); }
double loose_layer(int bits) { return 4.0 * std::ldexp(1.0, -bits); }

constexpr double kGap = 1e-3;   // least distance between a token's k + 1 best logits
constexpr double kKink = 5e-5;  // least |a| in ReLU layer cases

const char* router_name(MoeRouter r) { return r == MoeRouter::softmax_topk ? "softmax_topk" : "topk_softmax"; }
const char* act_name(MoeActivation a) {
  return a == MoeActivation::swiglu ? "swiglu" : a == MoeActivation::relu ? "relu" : "gelu";
}

cpu::MoeConfig make_config(const Case& cs) {
  cpu::MoeConfig c;
  c.N = cs.N;
  c.D = cs.D;
  c.F = cs.F;
  c.E = cs.E;
  c.k = cs.k;
  c.router = cs.router;
  c.renormalize = cs.renormalize;
  c.activation = cs.act;
  c.capacity = cpu::moe_capacity(cs.capacity_factor, cs.N, cs.k, cs.E);
  c.aux_loss_coef = 0.3;  // large enough that the aux gradients are visible next to the routing ones
  c.z_loss_coef = 0.05;
  c.aux_grad_scale = 0.5;
  return c;
}

std::string describe(const Case& cs) {
  char buf[240];
  std::snprintf(buf, sizeof(buf), "N=%lld D=%lld F=%lld E=%lld k=%lld %s%s %s capacity=%lld%s bias=%d gate_bias=%d",
                (long long)cs.N, (long long)cs.D, (long long)cs.F, (long long)cs.E, (long long)cs.k,
                router_name(cs.router), cs.renormalize ? "+renormalize" : "", act_name(cs.act),
                (long long)make_config(cs).capacity, cs.capacity_factor > 0 ? "" : " (dropless)", cs.expert_bias,
                cs.router_bias);
  return buf;
}

// ================================================================ host data
enum Param { kGateW, kGateB, kW1, kB1, kW3, kB3, kW2, kB2, kParams };
const char* const kParamNames[kParams] = {"gate_w", "gate_b", "w1", "b1", "w3", "b3", "w2", "b2"};
template <typename T> using Params = std::array<std::vector<T>, kParams>;      // empty: absent (null)
template <typename T> using DevParams = std::array<gpu::DeviceBuffer<T>, kParams>;  // size 0: null

template <typename T> const T* cptr(const std::vector<T>& v) { return v.empty() ? nullptr : v.data(); }
template <typename T> T* mptr(std::vector<T>& v) { return v.empty() ? nullptr : v.data(); }

template <typename T> cpu::MoeWeights<T> weights_of(const Params<T>& p) {
  return {cptr(p[kGateW]), cptr(p[kGateB]), cptr(p[kW1]), cptr(p[kB1]),
          cptr(p[kW3]),    cptr(p[kB3]),    cptr(p[kW2]), cptr(p[kB2])};
}
template <typename T> cpu::MoeGrads<T> grads_of(Params<T>& p) {
  return {mptr(p[kGateW]), mptr(p[kGateB]), mptr(p[kW1]), mptr(p[kB1]),
          mptr(p[kW3]),    mptr(p[kB3]),    mptr(p[kW2]), mptr(p[kB2])};
}
template <typename T> cpu::MoeWeights<T> weights_of(const DevParams<T>& d) {
  return {d[kGateW].get(), d[kGateB].get(), d[kW1].get(), d[kB1].get(),
          d[kW3].get(),    d[kB3].get(),    d[kW2].get(), d[kB2].get()};
}
template <typename T> cpu::MoeGrads<T> grads_of(const DevParams<T>& d) {
  return {d[kGateW].get(), d[kGateB].get(), d[kW1].get(), d[kB1].get(),
          d[kW3].get(),    d[kB3].get(),    d[kW2].get(), d[kB2].get()};
}

template <typename T> DevParams<T> upload_params(const Params<T>& p) {
  DevParams<T> d;
  for (int i = 0; i < kParams; ++i) d[i] = upload(p[i]);
  return d;
}
template <typename T> Params<T> download_params(const DevParams<T>& d) {
  Params<T> p;
  for (int i = 0; i < kParams; ++i) p[i] = download(d[i]);
  return p;
}
template <typename T> Params<T> random_like(const Params<T>& p) {
  Params<T> r;
  for (int i = 0; i < kParams; ++i) r[i] = uniform<T>(p[i].size());
  return r;
}

// Parameters present in a case, U(-s, s) with s keeping every activation O(1): 1/√fan-in scaled weights, gate
// logits O(1) apart.
template <typename T> Params<T> random_params(const Case& c) {
  const bool glu = c.act == MoeActivation::swiglu;
  const int64_t size[kParams] = {c.E * c.D,
                                 c.router_bias ? c.E : 0,
                                 c.E * c.F * c.D,
                                 c.expert_bias ? c.E * c.F : 0,
                                 glu ? c.E * c.F * c.D : 0,
                                 glu && c.expert_bias ? c.E * c.F : 0,
                                 c.E * c.D * c.F,
                                 c.expert_bias ? c.E * c.D : 0};
  const double sd = std::sqrt(3.0 / c.D), sf = std::sqrt(3.0 / c.F);
  const double scale[kParams] = {2.0 / std::sqrt(double(c.D)), 1.0, sd, 0.5, sd, 0.5, sf, 0.5};
  Params<T> p;
  for (int i = 0; i < kParams; ++i) p[i] = uniform<T>(size[i], -scale[i], scale[i]);
  return p;
}

template <typename T> struct Model {
  Case cs;
  cpu::MoeConfig c;
  std::vector<T> x;
  Params<T> p;
};

// Token n's router logits, exactly (double) from the stored inputs.
template <typename T> std::vector<double> host_logits(const Model<T>& m, int64_t n) {
  const int64_t D = m.c.D, E = m.c.E;
  const int bits = precision_bits();  // the gate GEMM's inputs rounded as both sides round them (23: as they are)
  std::vector<double> l(E);
  for (int64_t e = 0; e < E; ++e) {
    double acc = m.p[kGateB].empty() ? 0.0 : static_cast<double>(m.p[kGateB][e]);
    for (int64_t d = 0; d < D; ++d) {
      acc += static_cast<double>(cpu::round_mantissa(m.x[n * D + d], bits)) *
             static_cast<double>(cpu::round_mantissa(m.p[kGateW][e * D + d], bits));
    }
    l[e] = acc;
  }
  return l;
}

// The k + 1 best logits (all when k = E) pairwise >= kGap apart: the choice and its order are robust to rounding.
bool well_separated(std::vector<double> l, int64_t k) {
  std::sort(l.begin(), l.end(), std::greater<double>());
  const int64_t gaps = std::min<int64_t>(k, static_cast<int64_t>(l.size()) - 1);
  for (int64_t i = 0; i < gaps; ++i) {
    if (l[i] - l[i + 1] < kGap) return false;
  }
  return true;
}

// Random x and parameters; x rows are redrawn until their logits are well separated (the whole model when a row
// does not get there, e.g. two nearly equal gate rows).
template <typename T> Model<T> make_model(const Case& cs) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    Model<T> m{cs, make_config(cs), uniform<T>(cs.N * cs.D), random_params<T>(cs)};
    bool ok = true;
    for (int64_t n = 0; n < cs.N && ok; ++n) {
      int tries = 0;
      while (ok && !well_separated(host_logits(m, n), cs.k)) {
        const std::vector<T> row = uniform<T>(cs.D);
        std::copy(row.begin(), row.end(), m.x.begin() + n * cs.D);
        ok = ++tries < 200;
      }
    }
    if (ok) return m;
  }
  std::fprintf(stderr, "FAIL: could not draw well-separated router logits for %s\n", describe(cs).c_str());
  ++native_test_failures();
  return Model<T>{cs, make_config(cs), uniform<T>(cs.N * cs.D), random_params<T>(cs)};
}

// ================================================================ saved state and work, host and device
template <typename T> struct HostSaved {
  std::vector<T> probs, lse, weight, xp, a, b, h, y;
  std::vector<int32_t> expert, slot_row, row_slot, offsets, counts;
  std::vector<double> aux;
  explicit HostSaved(const cpu::MoeConfig& c)
      : probs(c.N * c.E), lse(c.N), weight(c.N * c.k), xp(c.N * c.k * c.D), a(c.N * c.k * c.F),
        b(c.N * c.k * c.F), h(c.N * c.k * c.F), y(c.N * c.k * c.D), expert(c.N * c.k), slot_row(c.N * c.k),
        row_slot(c.N * c.k), offsets(c.E + 1), counts(c.E), aux(2) {}
  cpu::MoeSaved<T> view() {
    return {probs.data(),    lse.data(),    expert.data(), weight.data(), slot_row.data(),
            row_slot.data(), offsets.data(), counts.data(), xp.data(),    a.data(),
            b.data(),        h.data(),       y.data(),      aux.data()};
  }
  int64_t R() const { return offsets.back(); }
};

// A device buffer of n elements, every byte 0xFF (NaN for floats, -1 for int32): an unwritten output shows.
template <typename T> gpu::DeviceBuffer<T> poisoned(size_t n) {
  gpu::DeviceBuffer<T> d(n);
  if (n) WAVEMOE_CUDA_CHECK(cudaMemsetAsync(d.get(), 0xFF, n * sizeof(T), g_stream));
  return d;
}
template <typename T> void poison(gpu::DeviceBuffer<T>& d) {
  if (d.size()) WAVEMOE_CUDA_CHECK(cudaMemsetAsync(d.get(), 0xFF, d.size() * sizeof(T), g_stream));
}
template <typename T> void put(gpu::DeviceBuffer<T>& d, const std::vector<T>& h) {
  CHECK(d.size() == h.size());
  if (!h.empty()) {
    WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(d.get(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice, g_stream));
  }
}

template <typename T> struct DevSaved {
  gpu::DeviceBuffer<T> probs, lse, weight, xp, a, b, h, y;
  gpu::DeviceBuffer<int32_t> expert, slot_row, row_slot, offsets, counts;
  gpu::DeviceBuffer<double> aux;
  explicit DevSaved(const cpu::MoeConfig& c)
      : probs(poisoned<T>(c.N * c.E)), lse(poisoned<T>(c.N)), weight(poisoned<T>(c.N * c.k)),
        xp(poisoned<T>(c.N * c.k * c.D)), a(poisoned<T>(c.N * c.k * c.F)), b(poisoned<T>(c.N * c.k * c.F)),
        h(poisoned<T>(c.N * c.k * c.F)), y(poisoned<T>(c.N * c.k * c.D)), expert(poisoned<int32_t>(c.N * c.k)),
        slot_row(poisoned<int32_t>(c.N * c.k)), row_slot(poisoned<int32_t>(c.N * c.k)),
        offsets(poisoned<int32_t>(c.E + 1)), counts(poisoned<int32_t>(c.E)), aux(poisoned<double>(2)) {}
  cpu::MoeSaved<T> view() const {
    return {probs.get(),    lse.get(),     expert.get(), weight.get(), slot_row.get(),
            row_slot.get(), offsets.get(), counts.get(), xp.get(),     a.get(),
            b.get(),        h.get(),       y.get(),      aux.get()};
  }
  void upload_from(const HostSaved<T>& s) {  // the CPU's state, so a piece runs on exactly the CPU's inputs
    put(probs, s.probs);
    put(lse, s.lse);
    put(weight, s.weight);
    put(xp, s.xp);
    put(a, s.a);
    put(b, s.b);
    put(h, s.h);
    put(y, s.y);
    put(expert, s.expert);
    put(slot_row, s.slot_row);
    put(row_slot, s.row_slot);
    put(offsets, s.offsets);
    put(counts, s.counts);
    put(aux, s.aux);
  }
};

template <typename T> struct HostWork {
  std::vector<T> dy, dh, da, db, dweight, dlogits;
  explicit HostWork(const cpu::MoeConfig& c)
      : dy(c.N * c.k * c.D), dh(c.N * c.k * c.F), da(c.N * c.k * c.F), db(c.N * c.k * c.F), dweight(c.N * c.k),
        dlogits(c.N * c.E) {}
  cpu::MoeWork<T> view() { return {dy.data(), dh.data(), da.data(), db.data(), dweight.data(), dlogits.data()}; }
};

template <typename T> struct DevWork {
  gpu::DeviceBuffer<T> dy, dh, da, db, dweight, dlogits;
  explicit DevWork(const cpu::MoeConfig& c)
      : dy(poisoned<T>(c.N * c.k * c.D)), dh(poisoned<T>(c.N * c.k * c.F)), da(poisoned<T>(c.N * c.k * c.F)),
        db(poisoned<T>(c.N * c.k * c.F)), dweight(poisoned<T>(c.N * c.k)), dlogits(poisoned<T>(c.N * c.E)) {}
  cpu::MoeWork<T> view() const { return {dy.get(), dh.get(), da.get(), db.get(), dweight.get(), dlogits.get()}; }
};

// ================================================================ comparisons
template <typename T> std::vector<T> first(const std::vector<T>& v, int64_t n) {
  return std::vector<T>(v.begin(), v.begin() + std::min<int64_t>(n, static_cast<int64_t>(v.size())));
}

template <typename T> double max_abs(const std::vector<T>& v) {
  double m = 0.0;
  for (const T& x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

template <typename T> bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// |got - ref| <= rel·max|ref| + rel·|ref| elementwise.
template <typename T>
void expect_rel(const std::string& name, const std::vector<T>& got, const std::vector<T>& ref, double rel) {
  expect_close(name, got, ref, rel * max_abs(ref), rel);
}

// Routing and the saved forward state (rows < R of the permuted buffers).
template <typename T>
void compare_saved(const DevSaved<T>& ds, const HostSaved<T>& hs, const cpu::MoeConfig& c, double rel,
                   bool expert_side) {
  const int64_t N = c.N, E = c.E, k = c.k, R = hs.R();
  expect_identical("expert", download(ds.expert, N * k), hs.expert);
  expect_identical("counts", download(ds.counts, E), hs.counts);
  expect_identical("offsets", download(ds.offsets, E + 1), hs.offsets);
  expect_identical("slot_row", download(ds.slot_row, N * k), hs.slot_row);
  expect_identical("row_slot[0, R)", download(ds.row_slot, R), first(hs.row_slot, R));
  expect_rel("probs", download(ds.probs, N * E), hs.probs, rel);
  expect_rel("lse", download(ds.lse, N), hs.lse, rel);
  expect_rel("weight", download(ds.weight, N * k), hs.weight, rel);
  if (!expert_side) return;
  expect_identical("xp[0, R)", download(ds.xp, R * c.D), first(hs.xp, R * c.D));
  expect_rel("a[0, R)", download(ds.a, R * c.F), first(hs.a, R * c.F), rel);
  if (c.activation == MoeActivation::swiglu) expect_rel("b[0, R)", download(ds.b, R * c.F), first(hs.b, R * c.F), rel);
  expect_rel("h[0, R)", download(ds.h, R * c.F), first(hs.h, R * c.F), rel);
  expect_rel("y[0, R)", download(ds.y, R * c.D), first(hs.y, R * c.D), rel);
}

template <typename T>
void compare_params(const std::string& what, const Params<T>& got, const Params<T>& ref, double rel) {
  for (int i = 0; i < kParams; ++i) {
    if (!ref[i].empty()) expect_rel(what + kParamNames[i], got[i], ref[i], rel);
  }
}

// The CPU's routing of a model: router, dispatch and gather (fills probs .. xp of hs).
template <typename T> HostSaved<T> cpu_routed(Model<T>& m) {
  HostSaved<T> hs(m.c);
  cpu::router_forward<T>(hs.view(), m.x.data(), weights_of(m.p), m.c);
  cpu::dispatch_forward<T>(hs.view(), m.c);
  cpu::gather_forward<T>(hs.xp.data(), m.x.data(), hs.view(), m.c);
  return hs;
}

// ================================================================ dispatch (integers only)
// k distinct experts per token, drawn without replacement with weight (e + 1)²: skewed, so capacities drop pairs.
std::vector<int32_t> skewed_experts(int64_t N, int64_t E, int64_t k) {
  std::vector<int32_t> out(N * k);
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> w(E);
    for (int64_t e = 0; e < E; ++e) w[e] = double(e + 1) * double(e + 1);
    for (int64_t j = 0; j < k; ++j) {
      std::discrete_distribution<int32_t> dist(w.begin(), w.end());
      const int32_t e = dist(g_gen);
      out[n * k + j] = e;
      w[e] = 0.0;
    }
  }
  return out;
}

void test_dispatch() {
  std::printf("dispatch (integers identical; skewed routing; capacities N, cf 0.5, cf 1, 0, 1)\n");
  struct Size {
    int64_t N, E, k;
  };
  for (const Size& z : {Size{1, 1, 1}, Size{3, 5, 5}, Size{7, 2, 2}, Size{33, 5, 2}, Size{130, 8, 1},
                        Size{130, 8, 8}, Size{5000, 8, 2}, Size{20000, 64, 4}}) {
    const std::vector<int32_t> experts = skewed_experts(z.N, z.E, z.k);
    for (int64_t capacity : {z.N, cpu::moe_capacity(0.5, z.N, z.k, z.E), cpu::moe_capacity(1.0, z.N, z.k, z.E),
                             int64_t{0}, int64_t{1}}) {
      cpu::MoeConfig c;
      c.N = z.N;
      c.E = z.E;
      c.k = z.k;
      c.capacity = capacity;
      HostSaved<float> hs(c);
      hs.expert = experts;
      cpu::dispatch_forward<float>(hs.view(), c);
      DevSaved<float> ds(c);
      put(ds.expert, experts);
      gpu::dispatch_forward<float>(ds.view(), c, g_stream);
      const int64_t R = hs.R();
      const bool same = download(ds.counts, z.E) == hs.counts && download(ds.offsets, z.E + 1) == hs.offsets &&
                        download(ds.slot_row, z.N * z.k) == hs.slot_row &&
                        download(ds.row_slot, R) == first(hs.row_slot, R);
      std::printf("  N=%-6lld E=%-3lld k=%-2lld capacity=%-6lld dropped %-6lld %s\n", (long long)z.N,
                  (long long)z.E, (long long)z.k, (long long)capacity, (long long)(z.N * z.k - R),
                  same ? "counts, offsets, slot_row, row_slot identical" : "DIFFERENT  FAILED");
      if (!same) ++native_test_failures();
    }
  }
}

// ================================================================ router ties
// Dyadic inputs (x in multiples of 1/2, gate weights and bias in multiples of 1/4, D = 4): every logit is exact in
// float32 whatever the summation order, on both sides. Gate rows 1 = 5 and 2 = 3 = 6 (biases too) tie exactly, and
// the small value set makes further ties. The chosen experts must be the CPU's, and the k first of the experts
// sorted by (logit descending, index ascending).
void test_router_ties() {
  std::printf("router ties (exact dyadic logits; lower index wins)\n");
  const int64_t N = 64, D = 4, E = 8;
  std::uniform_int_distribution<int> half(-2, 2), quarter(-4, 4);
  for (MoeRouter router : {MoeRouter::softmax_topk, MoeRouter::topk_softmax}) {
    for (int64_t k : {int64_t{1}, int64_t{2}, int64_t{3}, E}) {
      for (bool bias : {false, true}) {
        Case cs;
        cs.N = N, cs.D = D, cs.F = 1, cs.E = E, cs.k = k, cs.router = router, cs.router_bias = bias;
        cs.renormalize = k == 2;
        Model<float> m{cs, make_config(cs), std::vector<float>(N * D), random_params<float>(cs)};
        for (float& v : m.x) v = half(g_gen) / 2.0f;
        for (float& v : m.p[kGateW]) v = quarter(g_gen) / 4.0f;
        for (float& v : m.p[kGateB]) v = quarter(g_gen) / 4.0f;
        for (int64_t d = 0; d < D; ++d) {
          m.p[kGateW][5 * D + d] = m.p[kGateW][1 * D + d];
          m.p[kGateW][3 * D + d] = m.p[kGateW][6 * D + d] = m.p[kGateW][2 * D + d];
        }
        if (bias) {
          m.p[kGateB][5] = m.p[kGateB][1];
          m.p[kGateB][3] = m.p[kGateB][6] = m.p[kGateB][2];
        }
        HostSaved<float> hs(m.c);
        cpu::router_forward<float>(hs.view(), m.x.data(), weights_of(m.p), m.c);
        auto d_x = upload(m.x);
        auto dp = upload_params(m.p);
        DevSaved<float> ds(m.c);
        gpu::router_forward<float>(ds.view(), d_x.get(), weights_of(dp), m.c, g_stream);
        const std::vector<int32_t> got = download(ds.expert, N * k);
        // The rule itself, on exact logits; and how many tokens had a tie among their k + 1 best.
        int64_t tied = 0, wrong = 0;
        for (int64_t n = 0; n < N; ++n) {
          const std::vector<double> l = host_logits(m, n);
          std::vector<int32_t> order(E);
          for (int32_t e = 0; e < E; ++e) order[e] = e;
          std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
          for (int64_t j = 0; j < k; ++j) wrong += got[n * k + j] != order[j];
          for (int64_t j = 0; j < std::min<int64_t>(k, E - 1); ++j) tied += l[order[j]] == l[order[j + 1]];
        }
        char name[120];
        std::snprintf(name, sizeof(name), "%s k=%lld bias=%d: expert (%lld tied pairs in the top k+1)",
                      router_name(router), (long long)k, bias, (long long)tied);
        expect_identical(name, got, hs.expert);
        CHECK(wrong == 0);
        CHECK(tied > 0);
        expect_rel("  weight", download(ds.weight, N * k), hs.weight, Tol<float>::piece);
        expect_rel("  probs", download(ds.probs, N * E), hs.probs, Tol<float>::piece);
      }
    }
  }
}

// ================================================================ the pieces, each on the CPU's inputs
// loose (< 0: rel) for what a GEMM computes from a computed input (header): dx and the gate gradients.
template <typename T> void test_router(const Case& cs, double rel, double loose = -1) {
  if (loose < 0) loose = rel;
  Model<T> m = make_model<T>(cs);
  const cpu::MoeConfig& c = m.c;
  HostSaved<T> hs(c);
  cpu::router_forward<T>(hs.view(), m.x.data(), weights_of(m.p), c);
  auto d_x = upload(m.x);
  auto dp = upload_params(m.p);
  DevSaved<T> ds(c);
  gpu::router_forward<T>(ds.view(), d_x.get(), weights_of(dp), c, g_stream);
  expect_identical("router_forward expert", download(ds.expert, c.N * c.k), hs.expert);
  expect_rel("router_forward probs", download(ds.probs, c.N * c.E), hs.probs, rel);
  expect_rel("router_forward lse", download(ds.lse, c.N), hs.lse, rel);
  expect_rel("router_forward weight", download(ds.weight, c.N * c.k), hs.weight, rel);

  // Backward on the CPU's saved state (counts from the CPU's dispatch). aux_only: dweight = 0 and gradients
  // starting at 0, so dlogits, dx and the gate gradients are the aux losses' alone.
  cpu::dispatch_forward<T>(hs.view(), c);
  ds.upload_from(hs);
  for (bool aux_only : {false, true}) {
    const std::string what = aux_only ? "router_backward (aux only) " : "router_backward ";
    const std::vector<T> dweight = aux_only ? std::vector<T>(c.N * c.k, T(0)) : uniform<T>(c.N * c.k);
    const std::vector<T> dx0 = aux_only ? std::vector<T>(c.N * c.D, T(0)) : uniform<T>(c.N * c.D);
    Params<T> g0;
    g0[kGateW] = aux_only ? std::vector<T>(c.E * c.D, T(0)) : uniform<T>(c.E * c.D);
    if (cs.router_bias) g0[kGateB] = aux_only ? std::vector<T>(c.E, T(0)) : uniform<T>(c.E);
    std::vector<T> dx_ref = dx0, dlogits_ref(c.N * c.E);
    Params<T> g_ref = g0;
    cpu::router_backward<T>(dx_ref.data(), grads_of(g_ref), dlogits_ref.data(), dweight.data(), hs.view(),
                            m.x.data(), weights_of(m.p), c);
    auto d_dx = upload(dx0);
    auto d_dweight = upload(dweight);
    auto d_g = upload_params(g0);
    auto d_dlogits = poisoned<T>(c.N * c.E);
    gpu::router_backward<T>(d_dx.get(), grads_of(d_g), d_dlogits.get(), d_dweight.get(), ds.view(), d_x.get(),
                            weights_of(dp), c, g_stream);
    expect_rel(what + "dlogits", download(d_dlogits), dlogits_ref, rel);
    expect_rel(what + "dx", download(d_dx), dx_ref, loose);
    compare_params(what + "d", download_params(d_g), g_ref, loose);
  }
}

template <typename T> void test_gather(const Case& cs) {
  Model<T> m = make_model<T>(cs);
  const cpu::MoeConfig& c = m.c;
  HostSaved<T> hs = cpu_routed(m);
  const int64_t R = hs.R();
  DevSaved<T> ds(c);
  ds.upload_from(hs);
  poison(ds.xp);
  auto d_x = upload(m.x);
  gpu::gather_forward<T>(ds.xp.get(), d_x.get(), ds.view(), c, g_stream);
  expect_identical("gather_forward xp[0, R)", download(ds.xp, R * c.D), first(hs.xp, R * c.D));
  const std::vector<T> dxp = uniform<T>(c.N * c.k * c.D), dx0 = uniform<T>(c.N * c.D);
  std::vector<T> dx_ref = dx0;
  cpu::gather_backward<T>(dx_ref.data(), dxp.data(), hs.view(), c);
  auto d_dxp = upload(dxp);
  auto d_dx = upload(dx0);
  gpu::gather_backward<T>(d_dx.get(), d_dxp.get(), ds.view(), c, g_stream);
  expect_identical("gather_backward dx", download(d_dx), dx_ref);
}

// The expert FFN on the CPU's routing hs (offsets and xp filled). tight: outputs of GEMMs whose inputs are the same
// on both sides (a, b, h; dh, da, db; dw2, db2 and the bias gradients); loose: y, dxp, dw1, dw3 (header).
template <typename T> void check_expert_ffn(Model<T>& m, HostSaved<T>& hs, double tight, double loose) {
  const cpu::MoeConfig& c = m.c;
  const bool glu = c.activation == MoeActivation::swiglu;
  const int64_t R = hs.R(), RD = R * c.D, RF = R * c.F;
  cpu::expert_ffn_forward<T>(hs.view(), weights_of(m.p), c);
  DevSaved<T> ds(c);
  ds.upload_from(hs);
  for (auto* buf : {&ds.a, &ds.b, &ds.h, &ds.y}) poison(*buf);
  auto dp = upload_params(m.p);
  gpu::expert_ffn_forward<T>(ds.view(), weights_of(dp), c, g_stream);
  expect_rel("expert_ffn_forward a", download(ds.a, RF), first(hs.a, RF), tight);
  if (glu) expect_rel("expert_ffn_forward b", download(ds.b, RF), first(hs.b, RF), tight);
  expect_rel("expert_ffn_forward h", download(ds.h, RF), first(hs.h, RF), tight);
  expect_rel("expert_ffn_forward y", download(ds.y, RD), first(hs.y, RD), loose);

  // Backward on the CPU's a, b, h (so that both sides see the same side of ReLU's kink).
  ds.upload_from(hs);
  const std::vector<T> dy = uniform<T>(c.N * c.k * c.D);
  Params<T> g0 = random_like(m.p);
  g0[kGateW].clear();  // not the experts' business: passed as null
  g0[kGateB].clear();
  Params<T> g_ref = g0;
  HostWork<T> wk(c);
  wk.dy = dy;
  cpu::expert_ffn_backward<T>(grads_of(g_ref), wk.view(), hs.view(), weights_of(m.p), c);
  DevWork<T> dwk(c);
  put(dwk.dy, dy);
  auto d_g = upload_params(g0);
  gpu::expert_ffn_backward<T>(grads_of(d_g), dwk.view(), ds.view(), weights_of(dp), c, g_stream);
  expect_rel("expert_ffn_backward dh", download(dwk.dh, RF), first(wk.dh, RF), tight);
  expect_rel("expert_ffn_backward da", download(dwk.da, RF), first(wk.da, RF), tight);
  if (glu) expect_rel("expert_ffn_backward db", download(dwk.db, RF), first(wk.db, RF), tight);
  expect_rel("expert_ffn_backward dxp (in dy)", download(dwk.dy, RD), first(wk.dy, RD), loose);
  const Params<T> g = download_params(d_g);
  for (int i = 0; i < kParams; ++i) {
    if (g_ref[i].empty()) continue;
    const bool first_stage = i == kW2 || i == kB1 || i == kB2 || i == kB3;
    expect_rel(std::string("expert_ffn_backward d") + kParamNames[i], g[i], g_ref[i], first_stage ? tight : loose);
  }
}

template <typename T> void test_expert_ffn(const Case& cs, double rel, double loose = -1) {
  Model<T> m = make_model<T>(cs);
  HostSaved<T> hs = cpu_routed(m);
  check_expert_ffn(m, hs, rel, loose < 0 ? rel : loose);
}

// Experts of the given row counts (k = 1, tokens' experts shuffled): partial tiles at every edge, empty experts.
template <typename T>
void test_expert_counts(const std::vector<int64_t>& counts, int64_t D, int64_t F, MoeActivation act, double tight,
                        double loose) {
  Case cs;
  cs.E = static_cast<int64_t>(counts.size());
  cs.N = 0;
  for (int64_t n : counts) cs.N += n;
  cs.D = D, cs.F = F, cs.act = act;
  std::string list;
  for (int64_t n : counts) list += (list.empty() ? "" : ",") + std::to_string(n);
  std::printf("%s %s expert rows {%s} D=%lld F=%lld %s (tight %g, loose %g)\n", Tol<T>::name,
              cpu::matmul_precision_name(cpu::matmul_precision()), list.c_str(), (long long)D, (long long)F,
              act_name(act), tight, loose);
  Model<T> m{cs, make_config(cs), uniform<T>(cs.N * cs.D), random_params<T>(cs)};
  HostSaved<T> hs(m.c);
  hs.expert.clear();
  for (int64_t e = 0; e < cs.E; ++e) hs.expert.insert(hs.expert.end(), counts[e], static_cast<int32_t>(e));
  std::shuffle(hs.expert.begin(), hs.expert.end(), g_gen);
  cpu::dispatch_forward<T>(hs.view(), m.c);
  cpu::gather_forward<T>(hs.xp.data(), m.x.data(), hs.view(), m.c);
  CHECK(hs.R() == cs.N);
  check_expert_ffn(m, hs, tight, loose);
}

template <typename T> void test_combine(const Case& cs, double rel) {
  Model<T> m = make_model<T>(cs);
  const cpu::MoeConfig& c = m.c;
  HostSaved<T> hs = cpu_routed(m);
  const int64_t R = hs.R();
  hs.y = uniform<T>(c.N * c.k * c.D);
  std::vector<T> out_ref(c.N * c.D);
  cpu::combine_forward<T>(out_ref.data(), hs.view(), c);
  DevSaved<T> ds(c);
  ds.upload_from(hs);
  auto d_out = poisoned<T>(c.N * c.D);
  gpu::combine_forward<T>(d_out.get(), ds.view(), c, g_stream);
  expect_rel("combine_forward out", download(d_out), out_ref, rel);
  const std::vector<T> dout = uniform<T>(c.N * c.D);
  HostWork<T> wk(c);
  cpu::combine_backward<T>(wk.dy.data(), wk.dweight.data(), dout.data(), hs.view(), c);
  DevWork<T> dwk(c);
  auto d_dout = upload(dout);
  gpu::combine_backward<T>(dwk.dy.get(), dwk.dweight.get(), d_dout.get(), ds.view(), c, g_stream);
  expect_rel("combine_backward dy[0, R)", download(dwk.dy, R * c.D), first(wk.dy, R * c.D), rel);
  expect_rel("combine_backward dweight", download(dwk.dweight), wk.dweight, rel);
}

template <typename T> void test_aux(const Case& cs, double rel) {
  Model<T> m = make_model<T>(cs);
  HostSaved<T> hs = cpu_routed(m);
  const double loss_ref = cpu::aux_loss_forward<T>(hs.view(), m.c);
  DevSaved<T> ds(m.c);
  ds.upload_from(hs);
  poison(ds.aux);
  auto d_loss = poisoned<double>(1);
  gpu::aux_loss_forward<T>(ds.view(), m.c, d_loss.get(), g_stream);
  expect_rel("aux_loss_forward aux (balance, z)", download(ds.aux), hs.aux, rel);
  expect_rel("aux_loss_forward loss", download(d_loss), std::vector<double>{loss_ref}, rel);
}

template <typename T> void test_pieces(const Case& cs, double rel, double loose = -1) {
  if (loose < 0) loose = rel;
  std::printf("%s pieces (%s): %s (rel %g, loose %g)\n", Tol<T>::name,
              cpu::matmul_precision_name(cpu::matmul_precision()), describe(cs).c_str(), rel, loose);
  test_router<T>(cs, rel, loose);
  test_gather<T>(cs);
  test_expert_ffn<T>(cs, rel, loose);
  test_combine<T>(cs, rel);
  test_aux<T>(cs, rel);
}

// ================================================================ the whole layer
template <typename T> void test_layer(const Case& cs, double rel) {
  std::printf("%s layer (%s): %s (rel %g)\n", Tol<T>::name, cpu::matmul_precision_name(cpu::matmul_precision()),
              describe(cs).c_str(), rel);
  // CPU forward; ReLU cases are redrawn until no used pre-activation is near the kink.
  Model<T> m;
  HostSaved<T> hs(make_config(cs));
  std::vector<T> out_ref(cs.N * cs.D);
  double loss_ref = 0.0;
  for (int attempt = 0;; ++attempt) {
    m = make_model<T>(cs);
    hs = HostSaved<T>(m.c);
    loss_ref = cpu::moe_forward<T>(out_ref.data(), hs.view(), m.x.data(), weights_of(m.p), m.c);
    if (cs.act != MoeActivation::relu) break;
    double least = INFINITY;
    for (int64_t i = 0; i < hs.R() * cs.F; ++i) least = std::min(least, std::fabs(static_cast<double>(hs.a[i])));
    if (least >= kKink) break;
    if (attempt == 100) {
      std::fprintf(stderr, "FAIL: could not draw ReLU inputs away from the kink\n");
      ++native_test_failures();
      break;
    }
  }
  const cpu::MoeConfig& c = m.c;
  const int64_t R = hs.R();
  std::printf("  (R = %lld of %lld pairs kept)\n", (long long)R, (long long)(c.N * c.k));

  auto d_x = upload(m.x);
  auto dp = upload_params(m.p);
  DevSaved<T> ds(c);
  auto d_out = poisoned<T>(c.N * c.D);
  auto d_loss = poisoned<double>(1);
  gpu::moe_forward<T>(d_out.get(), ds.view(), d_x.get(), weights_of(dp), c, d_loss.get(), g_stream);
  compare_saved(ds, hs, c, rel, true);
  const std::vector<T> out = download(d_out);
  expect_rel("out", out, out_ref, rel);
  expect_rel("aux (balance, z)", download(ds.aux), hs.aux, rel);
  expect_rel("loss", download(d_loss), std::vector<double>{loss_ref}, rel);

  // Backward from non-zero gradients (checks +=).
  const std::vector<T> dout = uniform<T>(c.N * c.D), dx0 = uniform<T>(c.N * c.D);
  const Params<T> g0 = random_like(m.p);
  std::vector<T> dx_ref = dx0;
  Params<T> g_ref = g0;
  HostWork<T> wk(c);
  cpu::moe_backward<T>(dx_ref.data(), grads_of(g_ref), wk.view(), dout.data(), hs.view(), m.x.data(),
                       weights_of(m.p), c);
  auto d_dout = upload(dout);
  auto run_backward = [&](DevWork<T>& dwk) {
    auto d_dx = upload(dx0);
    auto d_g = upload_params(g0);
    gpu::moe_backward<T>(d_dx.get(), grads_of(d_g), dwk.view(), d_dout.get(), ds.view(), d_x.get(),
                         weights_of(dp), c, g_stream);
    return std::make_pair(download(d_dx), download_params(d_g));
  };
  DevWork<T> dwk(c);
  const auto [dx, g] = run_backward(dwk);
  expect_rel("dx", dx, dx_ref, rel);
  compare_params("d", g, g_ref, rel);
  expect_rel("work dweight", download(dwk.dweight), wk.dweight, rel);
  expect_rel("work dlogits", download(dwk.dlogits), wk.dlogits, rel);
  expect_rel("work dh[0, R)", download(dwk.dh, R * c.F), first(wk.dh, R * c.F), rel);
  expect_rel("work da[0, R)", download(dwk.da, R * c.F), first(wk.da, R * c.F), rel);
  expect_rel("work dxp[0, R) (in dy)", download(dwk.dy, R * c.D), first(wk.dy, R * c.D), rel);

  // Deterministic: the same forward and backward again give the same bits.
  auto d_out2 = poisoned<T>(c.N * c.D);
  gpu::moe_forward<T>(d_out2.get(), ds.view(), d_x.get(), weights_of(dp), c, d_loss.get(), g_stream);
  DevWork<T> dwk2(c);
  const auto [dx2, g2] = run_backward(dwk2);
  bool same = same_bits(download(d_out2), out) && same_bits(dx2, dx);
  for (int i = 0; i < kParams; ++i) same = same && same_bits(g2[i], g[i]);
  std::printf("  %-58s %s\n", "second run (forward + backward)", same ? "bit-identical" : "DIFFERENT  FAILED");
  if (!same) ++native_test_failures();
}

// ================================================================ the cases
std::vector<Case> test_cases() {
  const MoeRouter st = MoeRouter::softmax_topk, ts = MoeRouter::topk_softmax;
  const MoeActivation sw = MoeActivation::swiglu, re = MoeActivation::relu, ge = MoeActivation::gelu;
  // N, D, F, E, k, router, renormalize, activation, capacity factor (0: dropless; 0.5: tight), expert bias, gate bias
  return {
      {1, 1, 1, 1, 1, st, false, sw, 0, true, true},       {7, 5, 3, 2, 1, ts, false, re, 0, false, false},
      {7, 5, 3, 2, 2, st, true, ge, 0.5, true, false},     {33, 32, 48, 5, 2, st, false, sw, 0.5, true, true},
      {33, 67, 97, 5, 5, ts, false, ge, 0, false, true},   {130, 32, 48, 8, 2, st, true, re, 1.0, true, true},
      {130, 67, 97, 8, 8, st, false, sw, 0, true, false},  {130, 5, 1, 8, 1, ts, false, sw, 0.5, false, true},
      {33, 1, 97, 8, 2, st, true, ge, 0, true, true},      {130, 67, 3, 2, 2, ts, false, re, 0.5, true, false},
      {7, 67, 48, 5, 1, st, true, sw, 1.0, false, false},  {1, 32, 97, 5, 5, st, true, re, 0.5, true, true},
      {130, 1, 48, 1, 1, st, false, ge, 0.5, true, true},  {33, 5, 48, 8, 8, ts, false, re, 0, true, true},
      {130, 32, 97, 5, 2, ts, false, sw, 0.5, true, true}, {130, 67, 97, 2, 1, st, false, ge, 0, false, true},
      {64, 5, 3, 1, 1, st, false, re, 0, true, false},  // 64 rows: every chunk of the bias-gradient sums is used
  };
}

// Big enough that float32 takes the 128x128 GEMM tiles (more than 128 of them) in every grouped GEMM and weight
// gradient; smooth activations (millions of ReLU pre-activations cannot all avoid the kink).
std::vector<Case> large_cases() {
  // On the CPU emulation of CUDA a third of the tokens (the same D, F and tile edges; ~175 rows per expert, not ~525).
  const int64_t N = kEmulationStride > 1 ? 700 : 2100;
  return {{N, 390, 520, 8, 2, MoeRouter::softmax_topk, false, MoeActivation::swiglu, 0, true, true},
          {N, 390, 520, 8, 2, MoeRouter::topk_softmax, false, MoeActivation::gelu, 0.5, true, false}};
}

// ================================================================ tensor cores on and off
// fp32 never takes the tensor-core path; bf16 / tf32 do unless WAVEMOE_CUDA_TENSOR_CORES=0 or the test switch. With
// the switch off, a reduced precision's a and b (the expert FFN's first GEMMs) must equal, bit for bit, the fp32
// kernel on inputs rounded beforehand (the CUDA-core kernels round on load, then the same fma chains: the old path);
// with it on they must agree within the tight tolerance (other summation order). Both tile sizes.
void test_tensor_core_switch() {
  const char* env = std::getenv("WAVEMOE_CUDA_TENSOR_CORES");
  const bool env_off = env != nullptr && std::string(env) == "0";
  std::printf("tensor-core switch (WAVEMOE_CUDA_TENSOR_CORES=%s)\n", env ? env : "unset");
  CHECK(gpu::moe_gemm_tensor_core_bits() == 0);  // fp32
  const std::vector<Case> cases = {test_cases()[6], large_cases()[0]};
  for (MatmulPrecision prec : {MatmulPrecision::bf16, MatmulPrecision::tf32}) {
    for (const Case& cs : cases) {
      Model<float> m = make_model<float>(cs);
      HostSaved<float> hs = cpu_routed(m);
      const cpu::MoeConfig& c = m.c;
      const int64_t RF = hs.R() * c.F;
      auto d_p = upload_params(m.p);
      auto run = [&](const HostSaved<float>& h, const DevParams<float>& dp) {
        DevSaved<float> ds(c);
        ds.upload_from(h);
        poison(ds.a);
        poison(ds.b);
        gpu::expert_ffn_forward<float>(ds.view(), weights_of(dp), c, g_stream);
        return std::make_pair(download(ds.a, RF), download(ds.b, RF));
      };
      PrecisionScope ps(prec);
      const int bits = precision_bits();
      const std::string name = std::string(cpu::matmul_precision_name(prec)) + " " + describe(cs);
      CHECK(gpu::moe_gemm_tensor_core_bits() == (env_off ? 0 : bits));
      const auto tensor = run(hs, d_p);
      gpu::set_moe_tensor_cores_allowed(false);
      CHECK(gpu::moe_gemm_tensor_core_bits() == 0);
      const auto cores = run(hs, d_p);
      gpu::set_moe_tensor_cores_allowed(true);
      // The old path: fp32 kernels on pre-rounded xp, w1, w3 (biases are not rounded).
      HostSaved<float> rounded = hs;
      Params<float> p_rounded = m.p;
      for (float& v : rounded.xp) v = cpu::round_mantissa(v, bits);
      for (int i : {kW1, kW3}) {
        for (float& v : p_rounded[i]) v = cpu::round_mantissa(v, bits);
      }
      auto d_rounded = upload_params(p_rounded);
      std::pair<std::vector<float>, std::vector<float>> old_path;
      {
        PrecisionScope fp32(MatmulPrecision::fp32);
        old_path = run(rounded, d_rounded);
      }
      cpu::set_matmul_precision(prec);  // (the inner scope reset it to fp32)
      const bool same = same_bits(cores.first, old_path.first) && same_bits(cores.second, old_path.second);
      std::printf("  %-58s %s\n", (name + ": CUDA-core path").c_str(),
                  same ? "= fp32 kernel on rounded inputs, bit for bit" : "DIFFERENT  FAILED");
      if (!same) ++native_test_failures();
      expect_rel("  tensor-core a vs CUDA-core a", tensor.first, cores.first, Tol<float>::layer);
      expect_rel("  tensor-core b vs CUDA-core b", tensor.second, cores.second, Tol<float>::layer);
      if (env_off) CHECK(same_bits(tensor.first, cores.first) && same_bits(tensor.second, cores.second));
    }
  }
}

// Under bf16 and tf32: expert-count shapes, every other awkward case (pieces and layer), one large case each (the
// 128x128 tensor-core tiles), and float64 (never rounded, never on tensor cores: float64 tolerances).
void run_precision_tests() {
  const std::vector<Case> cases = test_cases();
  const std::vector<std::vector<int64_t>> counts = {{0, 1, 17, 129}, {129, 0, 1}, {1}, {200, 0, 0, 17, 2}};
  struct Dims {
    int64_t D, F;
  };
  const std::vector<Dims> dims = {{1, 15}, {15, 33}, {33, 200}, {200, 1}, {16, 16}, {200, 200}};
  const MoeActivation acts[3] = {MoeActivation::swiglu, MoeActivation::gelu, MoeActivation::relu};
  for (MatmulPrecision prec : {MatmulPrecision::bf16, MatmulPrecision::tf32}) {
    PrecisionScope ps(prec);
    const int bits = precision_bits();
    int i = 0;
    for (const auto& cnt : counts) {
      for (const Dims& d : dims) {
        test_expert_counts<float>(cnt, d.D, d.F, acts[i++ % 3], Tol<float>::piece, loose_piece(bits));
      }
    }
    for (size_t j = prec == MatmulPrecision::bf16 ? 0 : 1; j < cases.size(); j += 2) {
      test_pieces<float>(cases[j], Tol<float>::piece, loose_piece(bits));
      test_layer<float>(cases[j], loose_layer(bits));
    }
    const Case big = large_cases()[prec == MatmulPrecision::bf16 ? 0 : 1];  // a copy: the vector is a temporary
    test_pieces<float>(big, Tol<float>::layer, loose_piece(bits));
    test_layer<float>(big, loose_layer(bits));
  }
  PrecisionScope ps(MatmulPrecision::bf16);
  test_pieces<double>(cases[3], Tol<double>::piece);
  test_layer<double>(cases[3], Tol<double>::layer);
}

void run_tests() {
  test_dispatch();
  test_router_ties();
  const std::vector<Case> cases = test_cases();
  for (size_t i = 0; i < cases.size(); ++i) {
    test_pieces<float>(cases[i], Tol<float>::piece);
    test_layer<float>(cases[i], Tol<float>::layer);
    if (i % 2 == 0) {  // float64 on every other case
      test_pieces<double>(cases[i], Tol<double>::piece);
      test_layer<double>(cases[i], Tol<double>::layer);
    }
  }
  for (const Case& cs : large_cases()) {
    test_pieces<float>(cs, Tol<float>::layer);
    test_layer<float>(cs, Tol<float>::layer);
  }
  test_tensor_core_switch();
  run_precision_tests();
}

// ================================================================ --bench
// The whole layer, float32 (no TF32), swiglu, softmax_topk, biases, dropless, aux losses on: forward, and forward +
// backward, in tokens/s (CUDA events, after one warm-up call). moe-small (lib/models/presets/moe-small.json: d_model
// 256, d_ff 512, 8 experts, top-2) at the default training batch (8 x 128 tokens) and at 8 x 1024, then a larger
// layer (D 768, F 2048, 16·1024 tokens).
int bench(const gpu::DeviceInfo& info) {
  struct Size {
    const char* label;
    int64_t N, D, F, E, k;
  };
  const std::vector<Size> sizes = {{"moe-small 8x128", 1024, 256, 512, 8, 2},
                                   {"moe-small 8x1024", 8192, 256, 512, 8, 2},
                                   {"large", 16 * 1024, 768, 2048, 8, 2}};
  std::printf("moe layer, float32 data: tokens/s in fp32, then under the bf16 matmul precision (tensor cores)\n");
  std::printf("%-18s %5s %6s %5s %5s %3s %2s %14s %14s %10s %10s\n", "", "prec", "N", "D", "F", "E", "k", "fwd tok/s",
              "fwd+bwd tok/s", "fwd ms", "f+b ms");
  std::string json = "{\"device\":\"" + info.name + "\",\"moe\":[";
  std::vector<std::pair<Size, MatmulPrecision>> runs;
  for (MatmulPrecision mp : {MatmulPrecision::fp32, MatmulPrecision::bf16}) {
    for (const Size& z : sizes) runs.emplace_back(z, mp);
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    const Size& z = runs[i].first;
    cpu::set_matmul_precision(runs[i].second);
    const char* precision = cpu::matmul_precision_name(runs[i].second);
    Case cs;
    cs.N = z.N, cs.D = z.D, cs.F = z.F, cs.E = z.E, cs.k = z.k;
    cpu::MoeConfig c = make_config(cs);
    c.aux_loss_coef = 0.01;
    c.z_loss_coef = 0.001;
    c.aux_grad_scale = 1.0;
    auto d_x = upload(uniform<float>(c.N * c.D));
    auto dp = upload_params(random_params<float>(cs));
    DevParams<float> dg;
    for (int p = 0; p < kParams; ++p) {
      dg[p] = gpu::DeviceBuffer<float>(dp[p].size());
      if (dg[p].size()) WAVEMOE_CUDA_CHECK(cudaMemsetAsync(dg[p].get(), 0, dg[p].size() * sizeof(float), g_stream));
    }
    DevSaved<float> ds(c);
    DevWork<float> dwk(c);
    gpu::DeviceBuffer<float> d_out(c.N * c.D), d_dx(c.N * c.D);
    WAVEMOE_CUDA_CHECK(cudaMemsetAsync(d_dx.get(), 0, d_dx.size() * sizeof(float), g_stream));
    gpu::DeviceBuffer<double> d_loss(1);
    auto d_dout = upload(uniform<float>(c.N * c.D));
    auto forward = [&] {
      gpu::moe_forward<float>(d_out.get(), ds.view(), d_x.get(), weights_of(dp), c, d_loss.get(), g_stream);
    };
    const double fwd_ms = time_ms(forward);
    const double fb_ms = time_ms([&] {
      forward();
      gpu::moe_backward<float>(d_dx.get(), grads_of(dg), dwk.view(), d_dout.get(), ds.view(), d_x.get(),
                               weights_of(dp), c, g_stream);
    });
    const double fwd_tps = c.N / (fwd_ms * 1e-3), fb_tps = c.N / (fb_ms * 1e-3);
    std::printf("%-18s %5s %6lld %5lld %5lld %3lld %2lld %14.0f %14.0f %10.3f %10.3f\n", z.label, precision,
                (long long)c.N, (long long)c.D, (long long)c.F, (long long)c.E, (long long)c.k, fwd_tps, fb_tps, fwd_ms,
                fb_ms);
    char item[300];
    std::snprintf(item, sizeof(item),
                  "%s{\"precision\":\"%s\",\"N\":%lld,\"D\":%lld,\"F\":%lld,\"E\":%lld,\"k\":%lld,"
                  "\"fwd_tokens_per_s\":%.1f,\"fwd_bwd_tokens_per_s\":%.1f}",
                  i ? "," : "", precision, (long long)c.N, (long long)c.D, (long long)c.F, (long long)c.E,
                  (long long)c.k, fwd_tps, fb_tps);
    json += item;
  }
  cpu::set_matmul_precision(MatmulPrecision::fp32);
  json += "]}";
  std::printf("%s\n", json.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return cuda_test::run_cuda_test_main("cuda_test_moe", argc, argv, run_tests, bench);
}
