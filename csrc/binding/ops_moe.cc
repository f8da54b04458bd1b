// Mixture-of-experts ops: one fused forward and one fused backward (csrc/kernels/moe.h). Tensors travel in named
// groups (plain JS objects): params {gateWeight, gateBias, w1, b1, w2, b2, w3, b3}, grads (the same keys),
// saved {probs, lse, expert, weight, slotRow, rowSlot, offsets, counts, xp, a, b, h, y, aux} (written by forward,
// read by backward) and work {dy, dh, da, db, dweight, dlogits} (backward scratch).
#include <napi.h>

#include <initializer_list>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../kernels/moe.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/allocator.h"
#include "../../cuda/check.h"
#include "../../cuda/moe.h"
#include "../../cuda/moe_routing_check.h"
#endif
#include "tensor_wrap.h"

namespace wavemoe {
namespace {

using OptTensor = std::optional<Tensor>;

// A JS object of named tensors at argument i, e.g. params. Unknown keys are an error (a misspelled key is never
// silently ignored); null or undefined entries are absent.
class Group {
 public:
  Group(const Args& a, const Napi::CallbackInfo& info, size_t i, const char* name,
        std::initializer_list<const char*> keys)
      : a_(a), name_(name) {
    Napi::Value v = i < info.Length() ? info[i] : a.env().Undefined();
    if (!v.IsObject() || v.IsArray()) a.fail_type(std::string("argument '") + name + "' must be an object of tensors");
    Napi::Object o = v.As<Napi::Object>();
    Napi::Array names = o.GetPropertyNames();
    for (uint32_t j = 0; j < names.Length(); ++j) {
      std::string key = names.Get(j).ToString().Utf8Value();
      bool known = false;
      for (const char* k : keys) known = known || key == k;
      if (!known) a.fail_type("unknown key '" + path(key) + "'");
    }
    for (const char* k : keys) entries_.emplace_back(k, read(o.Get(k), k));
  }

  std::string path(const std::string& key) const { return name_ + "." + key; }

  OptTensor get(const char* key) const {
    for (const auto& [k, t] : entries_) {
      if (k == key) return t;
    }
    return std::nullopt;
  }
  Tensor need(const char* key) const {
    OptTensor t = get(key);
    if (!t) a_.fail_type("'" + path(key) + "' is required");
    return *t;
  }
  // Absent unless `used`; required when `used && required`.
  OptTensor when(bool used, bool required, const char* key, const char* why) const {
    OptTensor t = get(key);
    if (!used && t) a_.fail_type("'" + path(key) + "' must be absent: " + why);
    if (used && required && !t) a_.fail_type("'" + path(key) + "' is required: " + why);
    return t;
  }

  // Every present tensor, named, for the overlap checks.
  std::vector<std::pair<Tensor, std::string>> all() const {
    std::vector<std::pair<Tensor, std::string>> out;
    for (const auto& [k, t] : entries_) {
      if (t) out.emplace_back(*t, path(k));
    }
    return out;
  }

 private:
  OptTensor read(Napi::Value v, const std::string& key) const {
    if (v.IsUndefined() || v.IsNull()) return std::nullopt;
    TensorWrap* w = TensorWrap::Unwrap(v);
    if (w == nullptr) a_.fail_type("'" + path(key) + "' must be a Tensor");
    if (w->disposed()) a_.fail("'" + path(key) + "' is a disposed tensor");
    const Tensor& t = w->tensor();
    a_.expect_device(t, path(key).c_str());
    return t;
  }

  const Args& a_;
  std::string name_;
  std::vector<std::pair<std::string, OptTensor>> entries_;
};

// Checks an optional tensor's dtype and shape.
void expect_tensor(const Args& a, const OptTensor& t, const std::string& name, DType dtype,
                   const std::vector<int64_t>& shape) {
  if (!t) return;
  a.expect_dtype(*t, name.c_str(), dtype);
  a.expect_shape(*t, name.c_str(), shape);
}

std::string option_string(const Args& a, const Napi::Object& o, const char* key, const std::string& fallback,
                          std::initializer_list<const char*> allowed) {
  Napi::Value v = o.Get(key);
  std::string list;
  for (const char* s : allowed) list += (list.empty() ? "'" : ", '") + std::string(s) + "'";
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) a.fail_type(std::string("option '") + key + "' must be one of " + list);
  std::string s = v.As<Napi::String>().Utf8Value();
  for (const char* x : allowed) {
    if (s == x) return s;
  }
  a.fail_range(std::string("option '") + key + "' must be one of " + list + ", got '" + s + "'");
}

double option_nonnegative(const Args& a, const Napi::Object& o, const char* key, double fallback) {
  double x = a.option_number(o, key, fallback);
  if (x < 0) a.fail_range(std::string("option '") + key + "' must be >= 0");
  return x;
}

// The parameters, checked against x (N, D): their shapes define E and F.
struct Params {
  Tensor gate_w, w1, w2;
  OptTensor gate_b, b1, b2, w3, b3;
};

Params read_params(const Args& a, const Group& g, const Tensor& x, MoeConfig* c) {
  Params p{g.need("gateWeight"), g.need("w1"), g.need("w2"), g.get("gateBias"), g.get("b1"), g.get("b2"),
           g.get("w3"), g.get("b3")};
  a.expect_float(x, "x");
  a.expect_rank(x, "x", 2, 2);
  c->N = x.dim(0);
  c->D = x.dim(1);
  a.expect_same_dtype(p.gate_w, "params.gateWeight", x, "x");
  a.expect_rank(p.gate_w, "params.gateWeight", 2, 2);
  c->E = p.gate_w.dim(0);
  if (c->E < 1) a.fail_range("'params.gateWeight' must have at least one expert (row)");
  a.expect_shape(p.gate_w, "params.gateWeight", {c->E, c->D});
  a.expect_same_dtype(p.w1, "params.w1", x, "x");
  a.expect_rank(p.w1, "params.w1", 3, 3);
  c->F = p.w1.dim(1);
  const int64_t E = c->E, D = c->D, F = c->F;
  a.expect_shape(p.w1, "params.w1", {E, F, D});
  expect_tensor(a, p.w2, "params.w2", x.dtype, {E, D, F});
  expect_tensor(a, p.w3, "params.w3", x.dtype, {E, F, D});
  expect_tensor(a, p.gate_b, "params.gateBias", x.dtype, {E});
  expect_tensor(a, p.b1, "params.b1", x.dtype, {E, F});
  expect_tensor(a, p.b3, "params.b3", x.dtype, {E, F});
  expect_tensor(a, p.b2, "params.b2", x.dtype, {E, D});
  return p;
}

// Options shared by forward and backward; `backward` adds auxGradScale. Needs c->N and c->E.
void read_options(const Args& a, size_t i, bool backward, MoeConfig* c) {
  Napi::Object o = backward ? a.options(i, {"topK", "router", "renormalize", "activation", "capacityFactor",
                                            "auxLossCoef", "zLossCoef", "auxGradScale"})
                            : a.options(i, {"topK", "router", "renormalize", "activation", "capacityFactor",
                                            "auxLossCoef", "zLossCoef"});
  if (o.Get("topK").IsUndefined()) a.fail_type("option 'topK' is required");
  c->k = a.option_integer(o, "topK", 1, 1, c->E);
  if (c->N * c->k > std::numeric_limits<int32_t>::max()) a.fail_range("tokens · topK must be below 2^31");
  c->router = option_string(a, o, "router", "softmax_topk", {"softmax_topk", "topk_softmax"}) == "topk_softmax"
                  ? MoeRouter::topk_softmax
                  : MoeRouter::softmax_topk;
  c->renormalize = a.option_bool(o, "renormalize", false);
  const std::string act = option_string(a, o, "activation", "swiglu", {"swiglu", "relu", "gelu"});
  c->activation = act == "relu" ? MoeActivation::relu : act == "gelu" ? MoeActivation::gelu : MoeActivation::swiglu;
  Napi::Value cf = o.Get("capacityFactor");
  double factor = 0;
  if (!cf.IsUndefined() && !cf.IsNull()) {
    factor = a.option_number(o, "capacityFactor", 0);
    if (factor <= 0) a.fail_range("option 'capacityFactor' must be > 0 (or null: dropless)");
  }
  c->capacity = moe_capacity(factor, c->N, c->k, c->E);
  c->aux_loss_coef = option_nonnegative(a, o, "auxLossCoef", 0);
  c->z_loss_coef = option_nonnegative(a, o, "zLossCoef", 0);
  c->aux_grad_scale = backward ? a.option_number(o, "auxGradScale", 1) : 1;
}

struct Saved {
  Tensor probs, lse, expert, weight, slot_row, row_slot, offsets, counts, xp, a, h, y, aux;
  OptTensor b;
};

Saved read_saved(const Args& a, const Group& g, const Tensor& x, const MoeConfig& c) {
  const bool glu = c.activation == MoeActivation::swiglu;
  Saved s{g.need("probs"), g.need("lse"),     g.need("expert"), g.need("weight"), g.need("slotRow"),
          g.need("rowSlot"), g.need("offsets"), g.need("counts"), g.need("xp"),    g.need("a"),
          g.need("h"),     g.need("y"),       g.need("aux"),
          g.when(glu, true, "b", "the gate branch belongs to activation 'swiglu'")};
  const int64_t N = c.N, E = c.E, k = c.k, P = c.N * c.k;
  const DType T = x.dtype, I = DType::i32;
  for (const auto& [t, name, dt, shape] :
       std::initializer_list<std::tuple<OptTensor, const char*, DType, std::vector<int64_t>>>{
           {s.probs, "saved.probs", T, {N, E}},       {s.lse, "saved.lse", T, {N}},
           {s.expert, "saved.expert", I, {N, k}},     {s.weight, "saved.weight", T, {N, k}},
           {s.slot_row, "saved.slotRow", I, {N, k}},  {s.row_slot, "saved.rowSlot", I, {P}},
           {s.offsets, "saved.offsets", I, {E + 1}},  {s.counts, "saved.counts", I, {E}},
           {s.xp, "saved.xp", T, {P, c.D}},           {s.a, "saved.a", T, {P, c.F}},
           {s.b, "saved.b", T, {P, c.F}},             {s.h, "saved.h", T, {P, c.F}},
           {s.y, "saved.y", T, {P, c.D}},             {s.aux, "saved.aux", DType::f64, {2}}}) {
    expect_tensor(a, t, name, dt, shape);
  }
  return s;
}

// Backward reads the saved routing as indices: check their ranges, so that a foreign `saved` cannot send a kernel
// out of bounds. Returns what is wrong, or "" when the routing is consistent. The routing is data written by the
// forward, so a recorded backward (runAsync) can only check it when it runs, after its forward has run.
std::string routing_problem(const Saved& s, const MoeConfig& c) {
  const int64_t P = c.N * c.k;
  const HostInts off_h(s.offsets), expert_h(s.expert), slot_row_h(s.slot_row), row_slot_h(s.row_slot),
      counts_h(s.counts);
  const int32_t* off = off_h.data();
  const int32_t* expert = expert_h.data();
  const int32_t* slot_row = slot_row_h.data();
  const int32_t* row_slot = row_slot_h.data();
  const int32_t* counts = counts_h.data();
  if (off[0] != 0) return "offsets[0] != 0";
  for (int64_t e = 0; e < c.E; ++e) {
    if (off[e + 1] < off[e]) return "offsets decrease at expert " + std::to_string(e);
    if (counts[e] < 0) return "negative count at expert " + std::to_string(e);
  }
  const int64_t R = off[c.E];
  if (R > P) return "offsets[E] exceeds tokens · topK";
  for (int64_t i = 0; i < P; ++i) {
    if (expert[i] < 0 || expert[i] >= c.E) return "expert index out of range at " + std::to_string(i);
    if (slot_row[i] < -1 || slot_row[i] >= R) return "slotRow out of range at " + std::to_string(i);
  }
  for (int64_t r = 0; r < R; ++r) {
    if (row_slot[r] < 0 || row_slot[r] >= P) return "rowSlot out of range at " + std::to_string(r);
  }
  return "";
}

constexpr const char* kBadRouting = "'saved' does not hold a forward's routing: ";

// No output may share memory with another output or with an input.
void expect_disjoint(const Args& a, const std::vector<std::pair<Tensor, std::string>>& outputs,
                     const std::vector<std::pair<Tensor, std::string>>& inputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    for (size_t j = i + 1; j < outputs.size(); ++j) {
      a.expect_no_overlap(outputs[i].first, outputs[i].second.c_str(), outputs[j].first, outputs[j].second.c_str());
    }
    for (const auto& [t, name] : inputs) a.expect_no_overlap(outputs[i].first, outputs[i].second.c_str(), t, name.c_str());
  }
}

template <typename T> T* ptr(const OptTensor& t) { return t ? t->ptr<T>() : nullptr; }

template <typename T> MoeWeights<T> weights_of(const Params& p) {
  return {p.gate_w.ptr<T>(), ptr<T>(p.gate_b), p.w1.ptr<T>(), ptr<T>(p.b1), ptr<T>(p.w3),
          ptr<T>(p.b3),      p.w2.ptr<T>(),    ptr<T>(p.b2)};
}

template <typename T> MoeSaved<T> saved_of(const Saved& s) {
  return {s.probs.ptr<T>(),  s.lse.ptr<T>(),  s.expert.ptr<int32_t>(), s.weight.ptr<T>(), s.slot_row.ptr<int32_t>(),
          s.row_slot.ptr<int32_t>(), s.offsets.ptr<int32_t>(), s.counts.ptr<int32_t>(), s.xp.ptr<T>(), s.a.ptr<T>(),
          ptr<T>(s.b), s.h.ptr<T>(), s.y.ptr<T>(), s.aux.ptr<double>()};
}

const std::initializer_list<const char*> kParamKeys = {"gateWeight", "gateBias", "w1", "b1", "w2", "b2", "w3", "b3"};
const std::initializer_list<const char*> kSavedKeys = {"probs", "lse", "expert", "weight", "slotRow", "rowSlot", "offsets",
                                                       "counts", "xp", "a", "b", "h", "y", "aux"};

// w3 and b3 belong to swiglu (checked once the options are read: they come after the params, as topK's range
// needs E).
void expect_glu_params(const Group& g, const MoeConfig& c) {
  const bool glu = c.activation == MoeActivation::swiglu;
  g.when(glu, true, "w3", "the third expert matrix belongs to activation 'swiglu'");
  g.when(glu, false, "b3", "the third expert bias belongs to activation 'swiglu'");
}

// moeForward(out, saved, x, params, opts) → the weighted auxiliary loss
Job prepare_moe_forward(const Napi::CallbackInfo& info) {
  Args a(info, "moeForward");
  Tensor out = a.tensor(0, "out");
  Group saved_group(a, info, 1, "saved", kSavedKeys);
  Tensor x = a.tensor(2, "x");
  Group params_group(a, info, 3, "params", kParamKeys);
  MoeConfig c;
  Params p = read_params(a, params_group, x, &c);
  read_options(a, 4, false, &c);
  expect_glu_params(params_group, c);
  Saved s = read_saved(a, saved_group, x, c);
  a.expect_same_dtype(out, "out", x, "x");
  a.expect_shape(out, "out", x.shape);
  std::vector<std::pair<Tensor, std::string>> outputs = saved_group.all(), inputs = params_group.all();
  outputs.emplace_back(out, "out");
  inputs.emplace_back(x, "x");
  expect_disjoint(a, outputs, inputs);
  // On a GPU the weighted aux loss is written to a device double (read back at the end of a recorded run).
  WAVEMOE_GPU_NUMBER_JOB(a, [=](cudaStream_t stream, double* loss) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::moe_forward<T>(out.ptr<T>(), saved_of<T>(s), x.ptr<T>(), weights_of<T>(p), c, loss, stream);
    });
  });
  Job job{[=] {
    return dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      return moe_forward<T>(out.ptr<T>(), saved_of<T>(s), x.ptr<T>(), weights_of<T>(p), c);
    });
  }};
  job.returns_number = true;
  return job;
}

// moeBackward(dx, grads, work, dout, saved, x, params, opts)
Job prepare_moe_backward(const Napi::CallbackInfo& info) {
  Args a(info, "moeBackward");
  Tensor dx = a.tensor(0, "dx");
  Group grads_group(a, info, 1, "grads", kParamKeys);
  Group work_group(a, info, 2, "work", {"dy", "dh", "da", "db", "dweight", "dlogits"});
  Tensor dout = a.tensor(3, "dout");
  Group saved_group(a, info, 4, "saved", kSavedKeys);
  Tensor x = a.tensor(5, "x");
  Group params_group(a, info, 6, "params", kParamKeys);
  MoeConfig c;
  Params p = read_params(a, params_group, x, &c);
  read_options(a, 7, true, &c);
  expect_glu_params(params_group, c);
  const bool glu = c.activation == MoeActivation::swiglu;
  Saved s = read_saved(a, saved_group, x, c);
  const int64_t N = c.N, D = c.D, F = c.F, E = c.E, P = c.N * c.k;
  for (const auto& [t, name] : {std::pair<const Tensor*, const char*>{&dx, "dx"}, {&dout, "dout"}}) {
    a.expect_same_dtype(*t, name, x, "x");
    a.expect_shape(*t, name, x.shape);
  }
  // A gradient for each present parameter, shaped like it (or null: skipped); none for an absent one.
  for (const auto& [param, name] : params_group.all()) {
    const std::string key = name.substr(std::string("params.").size());
    expect_tensor(a, grads_group.get(key.c_str()), "grads." + key, param.dtype, param.shape);
  }
  for (const char* key : kParamKeys) {
    if (grads_group.get(key) && !params_group.get(key)) a.fail_type("'grads." + std::string(key) + "' has no parameter");
  }
  const DType T = x.dtype;
  OptTensor dy = work_group.need("dy"), dh = work_group.need("dh"), da = work_group.need("da");
  OptTensor db = work_group.when(glu, true, "db", "the gate branch belongs to activation 'swiglu'");
  OptTensor dweight = work_group.need("dweight"), dlogits = work_group.need("dlogits");
  expect_tensor(a, dy, "work.dy", T, {P, D});
  expect_tensor(a, dh, "work.dh", T, {P, F});
  expect_tensor(a, da, "work.da", T, {P, F});
  expect_tensor(a, db, "work.db", T, {P, F});
  expect_tensor(a, dweight, "work.dweight", T, {N, c.k});
  expect_tensor(a, dlogits, "work.dlogits", T, {N, E});
  a.check_data([&] {
    const std::string problem = routing_problem(s, c);
    return problem.empty() ? problem : kBadRouting + problem;
  });

  std::vector<std::pair<Tensor, std::string>> outputs = grads_group.all(), inputs = params_group.all();
  for (auto& w : work_group.all()) outputs.push_back(w);
  outputs.emplace_back(dx, "dx");
  for (auto& t : saved_group.all()) inputs.push_back(t);
  inputs.emplace_back(x, "x");
  inputs.emplace_back(dout, "dout");
  expect_disjoint(a, outputs, inputs);

  OptTensor g_gate_w = grads_group.get("gateWeight"), g_gate_b = grads_group.get("gateBias");
  OptTensor g_w1 = grads_group.get("w1"), g_b1 = grads_group.get("b1"), g_w2 = grads_group.get("w2");
  OptTensor g_b2 = grads_group.get("b2"), g_w3 = grads_group.get("w3"), g_b3 = grads_group.get("b3");
  WAVEMOE_GPU_JOB(a, [=, recorded = a.recording()](cudaStream_t stream) {
    // Recorded: the routing is checked on the device (a checked copy, cuda/moe_routing_check.h), not by a wait.
    unsigned long long* bad = gpu_index_check(
        recorded, x.device(), c.N * c.k,
        [](int64_t position, int32_t problem) { return kBadRouting + gpu::routing_problem_message(position, problem); },
        [&] {
          const std::string problem = routing_problem(s, c);
          return problem.empty() ? problem : kBadRouting + problem;
        });
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      MoeGrads<T> g{ptr<T>(g_gate_w), ptr<T>(g_gate_b), ptr<T>(g_w1), ptr<T>(g_b1),
                    ptr<T>(g_w3),     ptr<T>(g_b3),     ptr<T>(g_w2), ptr<T>(g_b2)};
      MoeWork<T> wk{ptr<T>(dy), ptr<T>(dh), ptr<T>(da), ptr<T>(db), ptr<T>(dweight), ptr<T>(dlogits)};
      gpu::CheckedRouting checked;
      const MoeSaved<T> saved = bad ? gpu::checked_routing<T>(saved_of<T>(s), c, &checked, bad, stream) : saved_of<T>(s);
      gpu::moe_backward<T>(dx.ptr<T>(), g, wk, dout.ptr<T>(), saved, x.ptr<T>(), weights_of<T>(p), c, stream);
    });
  });
  return {[=] {
    // Checked when it runs: a recorded backward's routing did not exist yet at record time.
    const std::string problem = routing_problem(s, c);
    check_data_at_run_time(problem.empty() ? problem : kBadRouting + problem);
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      MoeGrads<T> g{ptr<T>(g_gate_w), ptr<T>(g_gate_b), ptr<T>(g_w1), ptr<T>(g_b1),
                    ptr<T>(g_w3),     ptr<T>(g_b3),     ptr<T>(g_w2), ptr<T>(g_b2)};
      MoeWork<T> wk{ptr<T>(dy), ptr<T>(dh), ptr<T>(da), ptr<T>(db), ptr<T>(dweight), ptr<T>(dlogits)};
      moe_backward<T>(dx.ptr<T>(), g, wk, dout.ptr<T>(), saved_of<T>(s), x.ptr<T>(), weights_of<T>(p), c);
    });
    return 0.0;
  }};
}

}  // namespace

void register_moe_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "moeForward", prepare_moe_forward);
  export_op(env, exports, "moeBackward", prepare_moe_backward);
}

}  // namespace wavemoe
