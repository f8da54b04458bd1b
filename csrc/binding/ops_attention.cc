// Fused attention ops: forward, backward, the KV-cache copies, and the causal mask fill of the unfused baseline.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>

#include "../kernels/attention.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/attention.h"
#endif

namespace wavemoe {
namespace {

constexpr int64_t kMaxSafeInteger = 9007199254740991LL;

using Named = std::pair<const Tensor*, const char*>;

// Output `t` must share no memory with any of `others`.
void expect_disjoint(const Args& a, const Tensor& t, const char* name, std::initializer_list<Named> others) {
  for (const auto& [o, oname] : others) a.expect_no_overlap(t, name, *o, oname);
}

AttentionMask mask_option(const Args& a, const Napi::Object& o) {
  Napi::Value v = o.Get("mask");
  if (!v.IsString()) a.fail_type("option 'mask' must be one of 'causal', 'none', 'sliding_window'");
  std::string name = v.As<Napi::String>().Utf8Value();
  if (name == "causal") return AttentionMask::causal;
  if (name == "none") return AttentionMask::none;
  if (name == "sliding_window") return AttentionMask::sliding_window;
  a.fail_range("unknown mask '" + name + "' (expected 'causal', 'none' or 'sliding_window')");
}

// Checks Q (B, Hq, Tq, D) against K and V (B, Hkv, C, D) and reads the options object at `opts` into the kernel's
// parameters: every rule of attention.h is enforced here, so the kernels can trust them.
AttentionParams attention_params(const Args& a, const Tensor& q, const Tensor& k, const Tensor& v, size_t opts) {
  a.expect_float(q, "Q");
  a.expect_same_dtype(k, "K", q, "Q");
  a.expect_same_dtype(v, "V", q, "Q");
  a.expect_rank(q, "Q", 4, 4);
  a.expect_rank(k, "K", 4, 4);
  a.expect_shape(v, "V", k.shape);
  AttentionParams p;
  p.B = q.dim(0), p.Hq = q.dim(1), p.Tq = q.dim(2), p.D = q.dim(3);
  p.Hkv = k.dim(1), p.kv_capacity = k.dim(2);
  if (k.dim(0) != p.B) {
    a.fail_range("'K' has batch size " + std::to_string(k.dim(0)) + " but 'Q' has " + std::to_string(p.B));
  }
  if (k.dim(3) != p.D) {
    a.fail_range("'K' has head_dim " + std::to_string(k.dim(3)) + " but 'Q' has " + std::to_string(p.D));
  }
  if (p.D < 1) a.fail_range("head_dim must be at least 1");
  if (p.Hkv < 1 || p.Hq % p.Hkv != 0) {
    a.fail_range("the query heads (" + std::to_string(p.Hq) + ") must be a multiple of the kv heads (" +
                 std::to_string(p.Hkv) + ")");
  }

  Napi::Object o = a.options(opts, {"mask", "window", "scale", "qOffset", "kvLength"});
  p.mask = mask_option(a, o);
  if (p.mask == AttentionMask::sliding_window) {
    if (o.Get("window").IsUndefined()) a.fail_type("option 'window' is required with mask 'sliding_window'");
    p.window = a.option_integer(o, "window", 0, 1, kMaxSafeInteger);
  } else if (!o.Get("window").IsUndefined()) {
    a.fail_type("option 'window' is only valid with mask 'sliding_window'");
  }
  p.scale = a.option_number(o, "scale", 1.0 / std::sqrt(static_cast<double>(p.D)));
  p.kv_length = a.option_integer(o, "kvLength", p.kv_capacity, 0, p.kv_capacity);
  if (p.mask == AttentionMask::none) {
    p.q_offset = a.option_integer(o, "qOffset", 0, 0, kMaxSafeInteger);  // positions play no part without a mask
    if (p.Tq > 0 && p.kv_length == 0) a.fail_range("there are queries but no keys (kvLength is 0)");
  } else {
    if (p.Tq > p.kv_length) {
      a.fail_range("a causal mask needs at least as many keys as queries: Tq is " + std::to_string(p.Tq) +
                   " but kvLength is " + std::to_string(p.kv_length));
    }
    p.q_offset = a.option_integer(o, "qOffset", p.kv_length - p.Tq, 0, kMaxSafeInteger);
    if (p.q_offset + p.Tq > p.kv_length) {
      a.fail_range("qOffset + Tq (" + std::to_string(p.q_offset + p.Tq) + ") exceeds kvLength (" +
                   std::to_string(p.kv_length) + "): a query cannot see past the cached keys");
    }
  }
  return p;
}

// attentionForward(O, lse, Q, K, V, opts)
Job prepare_attention_forward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionForward");
  Tensor out = a.tensor(0, "O");
  std::optional<Tensor> lse = a.optional_tensor(1, "lse");
  Tensor q = a.tensor(2, "Q"), k = a.tensor(3, "K"), v = a.tensor(4, "V");
  AttentionParams p = attention_params(a, q, k, v, 5);
  a.expect_same_dtype(out, "O", q, "Q");
  a.expect_shape(out, "O", q.shape);
  expect_disjoint(a, out, "O", {{&q, "Q"}, {&k, "K"}, {&v, "V"}});
  if (lse) {
    a.expect_same_dtype(*lse, "lse", q, "Q");
    a.expect_shape(*lse, "lse", {p.B, p.Hq, p.Tq});
    expect_disjoint(a, *lse, "lse", {{&q, "Q"}, {&k, "K"}, {&v, "V"}, {&out, "O"}});
  }
  Tensor lse_t = lse.value_or(Tensor{});
  bool has_lse = lse.has_value();
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(q.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::attention_forward<T>(out.ptr<T>(), has_lse ? lse_t.ptr<T>() : nullptr, q.ptr<T>(), k.ptr<T>(), v.ptr<T>(), p, stream);
    });
  });
  return {[=] {
    dispatch_float(q.dtype, [&](auto t) {
      using T = decltype(t);
      attention_forward<T>(out.ptr<T>(), has_lse ? lse_t.ptr<T>() : nullptr, q.ptr<T>(), k.ptr<T>(), v.ptr<T>(), p);
    });
    return 0.0;
  }};
}

// attentionBackward(dQ, dK, dV, dO, Q, K, V, O, lse, opts)
Job prepare_attention_backward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionBackward");
  Tensor dq = a.tensor(0, "dQ"), dk = a.tensor(1, "dK"), dv = a.tensor(2, "dV"), dout = a.tensor(3, "dO");
  Tensor q = a.tensor(4, "Q"), k = a.tensor(5, "K"), v = a.tensor(6, "V"), out = a.tensor(7, "O");
  Tensor lse = a.tensor(8, "lse");
  AttentionParams p = attention_params(a, q, k, v, 9);
  for (const auto& [t, name] :
       {Named{&dq, "dQ"}, {&dk, "dK"}, {&dv, "dV"}, {&dout, "dO"}, {&out, "O"}, {&lse, "lse"}}) {
    a.expect_same_dtype(*t, name, q, "Q");
  }
  a.expect_shape(dq, "dQ", q.shape);
  a.expect_shape(dk, "dK", k.shape);
  a.expect_shape(dv, "dV", k.shape);
  a.expect_shape(dout, "dO", q.shape);
  a.expect_shape(out, "O", q.shape);
  a.expect_shape(lse, "lse", {p.B, p.Hq, p.Tq});
  for (const auto& [g, name] : {Named{&dq, "dQ"}, {&dk, "dK"}, {&dv, "dV"}}) {
    expect_disjoint(a, *g, name, {{&dout, "dO"}, {&q, "Q"}, {&k, "K"}, {&v, "V"}, {&out, "O"}, {&lse, "lse"}});
  }
  expect_disjoint(a, dq, "dQ", {{&dk, "dK"}, {&dv, "dV"}});
  expect_disjoint(a, dk, "dK", {{&dv, "dV"}});
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(q.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::attention_backward<T>(dq.ptr<T>(), dk.ptr<T>(), dv.ptr<T>(), dout.ptr<T>(), q.ptr<T>(), k.ptr<T>(), v.ptr<T>(),
                            out.ptr<T>(), lse.ptr<T>(), p, stream);
    });
  });
  return {[=] {
    dispatch_float(q.dtype, [&](auto t) {
      using T = decltype(t);
      attention_backward<T>(dq.ptr<T>(), dk.ptr<T>(), dv.ptr<T>(), dout.ptr<T>(), q.ptr<T>(), k.ptr<T>(), v.ptr<T>(),
                            out.ptr<T>(), lse.ptr<T>(), p);
    });
    return 0.0;
  }};
}

// Checks a (B, H, C, D) pair of keys and values: rank 4, the same shape, float, and the dtype of `ref`.
void expect_kv_pair(const Args& a, const Tensor& k, const char* kn, const Tensor& v, const char* vn, Named ref) {
  a.expect_float(k, kn);
  a.expect_same_dtype(k, kn, *ref.first, ref.second);
  a.expect_same_dtype(v, vn, *ref.first, ref.second);
  a.expect_rank(k, kn, 4, 4);
  a.expect_shape(v, vn, k.shape);
}

// Checks that rows tensor `r` has the batch, heads and head_dim of cache `c`.
void expect_rows_of(const Args& a, const Tensor& r, const char* rn, const Tensor& c, const char* cn) {
  if (r.dim(0) != c.dim(0) || r.dim(1) != c.dim(1) || r.dim(3) != c.dim(3)) {
    a.fail_range(std::string("'") + rn + "' has shape " + r.shape_str() + " but '" + cn + "' has shape " +
                 c.shape_str() + " (batch, heads and head_dim must match)");
  }
}

// attentionKvAppend(cacheK, cacheV, k, v, position)
Job prepare_attention_kv_append(const Napi::CallbackInfo& info) {
  Args a(info, "attentionKvAppend");
  Tensor ck = a.tensor(0, "cacheK"), cv = a.tensor(1, "cacheV"), k = a.tensor(2, "k"), v = a.tensor(3, "v");
  expect_kv_pair(a, ck, "cacheK", cv, "cacheV", {&ck, "cacheK"});
  expect_kv_pair(a, k, "k", v, "v", {&ck, "cacheK"});
  expect_rows_of(a, k, "k", ck, "cacheK");
  const int64_t capacity = ck.dim(2), rows = k.dim(2);
  const int64_t position = a.integer(4, "position", 0, kMaxSafeInteger);
  if (position + rows > capacity) {
    a.fail_range("appending " + std::to_string(rows) + " rows at position " + std::to_string(position) +
                 " exceeds the cache capacity " + std::to_string(capacity));
  }
  expect_disjoint(a, ck, "cacheK", {{&cv, "cacheV"}, {&k, "k"}, {&v, "v"}});
  expect_disjoint(a, cv, "cacheV", {{&k, "k"}, {&v, "v"}});
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(ck.dtype, [&](auto t) {
      using T = decltype(t);
      const int64_t BH = ck.dim(0) * ck.dim(1), D = ck.dim(3);
      gpu::attention_kv_copy<T>(ck.ptr<T>(), k.ptr<T>(), BH, capacity, position, rows, rows, D, stream);
      gpu::attention_kv_copy<T>(cv.ptr<T>(), v.ptr<T>(), BH, capacity, position, rows, rows, D, stream);
    });
  });
  return {[=] {
    dispatch_float(ck.dtype, [&](auto t) {
      using T = decltype(t);
      const int64_t BH = ck.dim(0) * ck.dim(1), D = ck.dim(3);
      attention_kv_copy<T>(ck.ptr<T>(), k.ptr<T>(), BH, capacity, position, rows, rows, D);
      attention_kv_copy<T>(cv.ptr<T>(), v.ptr<T>(), BH, capacity, position, rows, rows, D);
    });
    return 0.0;
  }};
}

// attentionKvCopy(dstK, dstV, srcK, srcV, length): rows [0, length) of each (batch, head), between caches of any
// capacities (growing a cache).
Job prepare_attention_kv_copy(const Napi::CallbackInfo& info) {
  Args a(info, "attentionKvCopy");
  Tensor dk = a.tensor(0, "dstK"), dv = a.tensor(1, "dstV"), sk = a.tensor(2, "srcK"), sv = a.tensor(3, "srcV");
  expect_kv_pair(a, dk, "dstK", dv, "dstV", {&dk, "dstK"});
  expect_kv_pair(a, sk, "srcK", sv, "srcV", {&dk, "dstK"});
  expect_rows_of(a, sk, "srcK", dk, "dstK");
  const int64_t length = a.integer(4, "length", 0, std::min(sk.dim(2), dk.dim(2)));
  expect_disjoint(a, dk, "dstK", {{&dv, "dstV"}, {&sk, "srcK"}, {&sv, "srcV"}});
  expect_disjoint(a, dv, "dstV", {{&sk, "srcK"}, {&sv, "srcV"}});
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(dk.dtype, [&](auto t) {
      using T = decltype(t);
      const int64_t BH = dk.dim(0) * dk.dim(1), D = dk.dim(3);
      gpu::attention_kv_copy<T>(dk.ptr<T>(), sk.ptr<T>(), BH, dk.dim(2), 0, sk.dim(2), length, D, stream);
      gpu::attention_kv_copy<T>(dv.ptr<T>(), sv.ptr<T>(), BH, dv.dim(2), 0, sv.dim(2), length, D, stream);
    });
  });
  return {[=] {
    dispatch_float(dk.dtype, [&](auto t) {
      using T = decltype(t);
      const int64_t BH = dk.dim(0) * dk.dim(1), D = dk.dim(3);
      attention_kv_copy<T>(dk.ptr<T>(), sk.ptr<T>(), BH, dk.dim(2), 0, sk.dim(2), length, D);
      attention_kv_copy<T>(dv.ptr<T>(), sv.ptr<T>(), BH, dv.dim(2), 0, sv.dim(2), length, D);
    });
    return 0.0;
  }};
}

// attentionCausalMaskFill(scores, qOffset): scores (..., Tq, Tk)
Job prepare_attention_causal_mask_fill(const Napi::CallbackInfo& info) {
  Args a(info, "attentionCausalMaskFill");
  Tensor s = a.tensor(0, "scores");
  a.expect_float(s, "scores");
  a.expect_rank(s, "scores", 2, 8);
  const int64_t Tq = s.dim(-2), Tk = s.dim(-1);
  const int64_t q_offset = a.integer(1, "qOffset", 0, kMaxSafeInteger);
  const int64_t N = Tq * Tk == 0 ? 0 : s.numel() / (Tq * Tk);
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(s.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::attention_causal_mask_fill<T>(s.ptr<T>(), N, Tq, Tk, q_offset, stream);
    });
  });
  return {[=] {
    dispatch_float(s.dtype, [&](auto t) {
      using T = decltype(t);
      attention_causal_mask_fill<T>(s.ptr<T>(), N, Tq, Tk, q_offset);
    });
    return 0.0;
  }};
}

}  // namespace

void register_attention_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "attentionForward", prepare_attention_forward);
  export_op(env, exports, "attentionBackward", prepare_attention_backward);
  export_op(env, exports, "attentionKvAppend", prepare_attention_kv_append);
  export_op(env, exports, "attentionKvCopy", prepare_attention_kv_copy);
  export_op(env, exports, "attentionCausalMaskFill", prepare_attention_causal_mask_fill);
}

}  // namespace wavemoe
