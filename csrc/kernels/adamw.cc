#include "adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/thread_pool.h"

namespace wavemoe {

constexpr int64_t kGrain = 1 << 14;  // elements per chunk, at least

template <typename T> void adamw_step(T* param, T* m, T* v, const T* grad, int64_t n, const AdamWParams& p) {
  // The scalars PyTorch computes in Python (double), then applies in the tensor's precision.
  const T decay = static_cast<T>(1.0 - p.lr * p.weight_decay);
  const T b1 = static_cast<T>(p.beta1), b2 = static_cast<T>(p.beta2);
  const T one_minus_b1 = static_cast<T>(1.0 - p.beta1), one_minus_b2 = static_cast<T>(1.0 - p.beta2);
  const double t = static_cast<double>(p.step);
  const T step_size = static_cast<T>(p.lr / (1.0 - std::pow(p.beta1, t)));
  const T bc2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(p.beta2, t)));
  const T eps = static_cast<T>(p.eps);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    // Restrict-qualified locals: the four arrays never overlap (checked at the binding), so the compiler may
    // vectorise; sqrt and division are exact in SIMD too, so the result is the scalar loop's, bit for bit.
    T* __restrict pp = param;
    T* __restrict mp = m;
    T* __restrict vp = v;
    const T* __restrict gp = grad;
    for (int64_t i = b; i < e; ++i) {
      const T g = gp[i];
      const T mi = mp[i] * b1 + g * one_minus_b1;
      const T vi = vp[i] * b2 + g * g * one_minus_b2;
      mp[i] = mi;
      vp[i] = vi;
      const T denom = std::sqrt(vi) / bc2_sqrt + eps;
      pp[i] = pp[i] * decay - step_size * (mi / denom);
    }
  });
}

namespace {

constexpr int64_t kSegment = 8192;  // elements per partial sum of the norm: fixed, so thread-count independent

// One piece of one grad tensor: the unit of work of both passes of clip_grad_norm. P is T* or const T*.
template <typename P> struct Segment {
  P data;
  int64_t n;
};

template <typename P> std::vector<Segment<P>> segments(const P* grads, const int64_t* sizes, int64_t count) {
  std::vector<Segment<P>> s;
  for (int64_t k = 0; k < count; ++k) {
    for (int64_t b = 0; b < sizes[k]; b += kSegment) s.push_back({grads[k] + b, std::min(kSegment, sizes[k] - b)});
  }
  return s;
}

template <typename P> double sum_of_squares(const std::vector<Segment<P>>& segs) {
  std::vector<double> partial(segs.size());
  parallel_for(static_cast<int64_t>(segs.size()), 4, [&](int64_t b, int64_t e) {
    for (int64_t s = b; s < e; ++s) {
      // Eight independent accumulators (element i goes to lane i % 8), summed pairwise at the end: a fixed order,
      // so thread-count independent, and no add-latency chain (one chain ran at ~6 GB/s, far below memory speed).
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const auto* x = segs[s].data;
      const int64_t n = segs[s].n;
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) {
        for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(x[i + l]) * x[i + l];
      }
      for (; i < n; ++i) acc[i % 8] += static_cast<double>(x[i]) * x[i];
      partial[s] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
  });
  double total = 0.0;
  for (double x : partial) total += x;
  return total;
}

}  // namespace

template <typename T> double grad_norm_squared(const T* const* grads, const int64_t* sizes, int64_t count) {
  return sum_of_squares(segments(grads, sizes, count));
}

template <typename T> double clip_grad_norm(T* const* grads, const int64_t* sizes, int64_t count, double max_norm) {
  const std::vector<Segment<T*>> segs = segments(grads, sizes, count);
  const double norm = std::sqrt(sum_of_squares(segs));
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return norm;
  const T c = static_cast<T>(coef);
  parallel_for(static_cast<int64_t>(segs.size()), 4, [&](int64_t b, int64_t e) {
    for (int64_t s = b; s < e; ++s) {
      for (int64_t i = 0; i < segs[s].n; ++i) segs[s].data[i] *= c;
    }
  });
  return norm;
}

template void adamw_step<float>(float*, float*, float*, const float*, int64_t, const AdamWParams&);
template void adamw_step<double>(double*, double*, double*, const double*, int64_t, const AdamWParams&);
template double grad_norm_squared<float>(const float* const*, const int64_t*, int64_t);
template double grad_norm_squared<double>(const double* const*, const int64_t*, int64_t);
template double clip_grad_norm<float>(float* const*, const int64_t*, int64_t, double);
template double clip_grad_norm<double>(double* const*, const int64_t*, int64_t, double);

}  // namespace wavemoe
