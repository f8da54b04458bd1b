// The device side of a recorded run's checks and waits (csrc/core/device_run.h): kernels that read indices never read
// out of bounds and report the first bad one in a check word; sampling's bad rows and history ids reported the same
// way; the checked copy of an MoE backward's routing; host
// waits are counted; uploads through pinned staging do not wait and keep the data as it was at the call.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/device_run.h"
#include "cuda/backend.h"
#include "cuda/cross_entropy.h"
#include "cuda/embedding.h"
#include "cuda/moe_routing_check.h"
#include "cuda/sampling.h"
#include "cuda/wavelet.h"
#include "cuda_check.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"

using namespace cuda_test;

namespace {

// A zeroed device check word, and its value after the queued work.
struct Word {
  gpu::DeviceBuffer<unsigned long long> d{1};
  Word() { WAVEMOE_CUDA_CHECK(cudaMemsetAsync(d.get(), 0, sizeof(unsigned long long), g_stream)); }
  unsigned long long* get() { return d.get(); }
  uint64_t value() { return download_scalar(d.get()); }
};

bool all_nan(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isnan(p[i])) return false;
  }
  return true;
}

void test_embedding_bad_ids() {
  std::printf("embedding with ids out of range: NaN rows, nothing read or written outside the table, first one reported\n");
  const int64_t V = 97, C = 13, N = 31;
  std::vector<float> table = uniform<float>(V * C), dout = uniform<float>(N * C), dtable = uniform<float>(V * C);
  std::vector<int32_t> ids(N);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(V - 1));
  for (auto& id : ids) id = pick(g_gen);
  ids[5] = -3;
  ids[20] = static_cast<int32_t>(V);
  ids[29] = std::numeric_limits<int32_t>::min();
  auto d_table = upload(table), d_dout = upload(dout), d_dtable = upload(dtable);
  auto d_ids = upload(ids);
  gpu::DeviceBuffer<float> d_out(N * C);
  Word fwd, bwd;
  gpu::embedding_forward<float>(d_out.get(), d_ids.get(), d_table.get(), N, C, V, fwd.get(), g_stream);
  const std::vector<float> out = download(d_out);
  bool rows_ok = true;
  for (int64_t n = 0; n < N; ++n) {
    const bool bad = ids[n] < 0 || ids[n] >= V;
    rows_ok = rows_ok && (bad ? all_nan(&out[n * C], C)
                              : std::memcmp(&out[n * C], &table[ids[n] * C], C * sizeof(float)) == 0);
  }
  CHECK(rows_ok);
  CHECK(fwd.value() == wavemoe::encode_bad_index(5, -3));

  // Backward: the good ids' rows added in the CPU's order, the bad ones skipped.
  std::vector<int32_t> good_ids;
  std::vector<float> good_dout;
  for (int64_t n = 0; n < N; ++n) {
    if (ids[n] < 0 || ids[n] >= V) continue;
    good_ids.push_back(ids[n]);
    good_dout.insert(good_dout.end(), dout.begin() + n * C, dout.begin() + (n + 1) * C);
  }
  std::vector<float> ref = dtable;
  cpu::embedding_backward<float>(ref.data(), good_dout.data(), good_ids.data(), static_cast<int64_t>(good_ids.size()), C);
  gpu::embedding_backward<float>(d_dtable.get(), d_dout.get(), d_ids.get(), N, C, V, bwd.get(), g_stream);
  expect_identical("embedding_backward skips bad ids", download(d_dtable), ref);
  CHECK(bwd.value() == wavemoe::encode_bad_index(5, -3));

  // Valid ids leave the word at 0.
  for (auto& id : ids) id = pick(g_gen);
  auto d_ids2 = upload(ids);
  Word none;
  gpu::embedding_forward<float>(d_out.get(), d_ids2.get(), d_table.get(), N, C, V, none.get(), g_stream);
  gpu::embedding_backward<float>(d_dtable.get(), d_dout.get(), d_ids2.get(), N, C, V, none.get(), g_stream);
  CHECK(none.value() == 0);
}

void test_cross_entropy_bad_targets() {
  std::printf("cross_entropy with targets out of range: NaN rows, first one reported\n");
  const int64_t N = 9, V = 101;
  std::vector<float> logits = uniform<float>(N * V, -4, 4);
  std::vector<int32_t> targets(N);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(V - 1));
  for (auto& t : targets) t = pick(g_gen);
  targets[2] = -100;  // ignored: fine
  targets[4] = static_cast<int32_t>(V);
  targets[7] = -5;
  // Reference row losses of the good rows: the CPU kernel with the bad rows ignored.
  std::vector<int32_t> cpu_targets = targets;
  cpu_targets[4] = cpu_targets[7] = -100;
  std::vector<float> ref_losses(N);
  cpu::cross_entropy_forward_backward<float>(nullptr, ref_losses.data(), logits.data(), cpu_targets.data(), N, V, -100,
                                             1.0);
  auto d_logits = upload(logits);
  auto d_targets = upload(targets);
  gpu::DeviceBuffer<float> d_dlogits(N * V), d_losses(N);
  gpu::DeviceBuffer<double> d_mean(1);
  Word w;
  gpu::cross_entropy_forward_backward<float>(d_dlogits.get(), d_losses.get(), d_mean.get(), d_logits.get(),
                                             d_targets.get(), N, V, -100, 1.0, w.get(), g_stream);
  const std::vector<float> losses = download(d_losses), dlogits = download(d_dlogits);
  bool ok = true;
  for (int64_t i = 0; i < N; ++i) {
    if (i == 4 || i == 7) {
      ok = ok && std::isnan(losses[i]) && all_nan(&dlogits[i * V], V);
    } else {
      ok = ok && std::fabs(losses[i] - ref_losses[i]) <= 5e-5 * std::fabs(ref_losses[i]);
    }
  }
  CHECK(ok);
  CHECK(std::isnan(download_scalar(d_mean.get())));  // a bad row poisons the mean: the step cannot look fine
  CHECK(w.value() == wavemoe::encode_bad_index(4, static_cast<int32_t>(V)));
}

void test_wavelet_raw_bad_ids() {
  std::printf("wavelet raw embedding with an id out of range: NaN row, reported\n");
  const int64_t V = 11, R = 32, N = 6;
  const wavemoe::WaveletSpec spec;
  const int64_t C = wavemoe::wavelet_channels(R, spec);
  std::vector<float> raw = uniform<float>(V * R);
  std::vector<int32_t> ids = {1, 10, 11, 0, -1, 3};
  auto d_raw = upload(raw);
  auto d_ids = upload(ids);
  gpu::DeviceBuffer<float> W(R * C), out(N * C);
  gpu::wavelet_matrix<float>(W.get(), R, spec, g_stream);
  Word w;
  gpu::wavelet_embedding_raw_forward<float>(out.get(), d_ids.get(), d_raw.get(), W.get(), N, V, R, C, w.get(), g_stream);
  const std::vector<float> o = download(out);
  CHECK(all_nan(&o[2 * C], C) && all_nan(&o[4 * C], C) && !std::isnan(o[0]) && !std::isnan(o[5 * C]));
  CHECK(w.value() == wavemoe::encode_bad_index(2, 11));
}

// A consistent routing of N = 4 tokens, k = 2, E = 3 (what a forward writes), then corrupted copies of it.
void test_moe_routing_check() {
  std::printf("MoE backward routing checked on the device: a consistent routing is copied as is, a corrupt one reads nothing\n");
  wavemoe::MoeConfig c;
  c.N = 4;
  c.k = 2;
  c.E = 3;
  const std::vector<int32_t> expert = {0, 1, 1, 2, 0, 2, 2, 0}, counts = {3, 2, 3}, offsets = {0, 3, 5, 8};
  const std::vector<int32_t> row_slot = {0, 4, 7, 1, 2, 3, 5, 6}, slot_row = {0, 3, 4, 5, 1, 6, 7, 2};
  struct Corruption {
    const char* what;
    std::vector<int32_t> expert, counts, offsets, row_slot, slot_row;
    int64_t position;
    gpu::RoutingProblem problem;
  };
  const std::vector<Corruption> cases = {
      {"offsets decrease", expert, counts, {0, 5, 3, 8}, row_slot, slot_row, 1, gpu::RoutingProblem::offsets_decrease},
      {"expert out of range", {0, 1, 1, 2, 0, 2, 3, 0}, counts, offsets, row_slot, slot_row, 6,
       gpu::RoutingProblem::expert_out_of_range},
      {"too many rows", expert, counts, {0, 3, 5, 9}, row_slot, slot_row, 3, gpu::RoutingProblem::too_many_rows},
      {"slot_row out of range", expert, counts, offsets, row_slot, {0, 3, 4, 5, 1, 6, 8, 2}, 6,
       gpu::RoutingProblem::slot_row_out_of_range},
      {"row_slot out of range", expert, counts, offsets, {0, 4, -7, 1, 2, 3, 5, 6}, slot_row, 2,
       gpu::RoutingProblem::row_slot_out_of_range},
      {"negative count", expert, {3, -2, 3}, offsets, row_slot, slot_row, 1, gpu::RoutingProblem::negative_count},
      {"first offset", expert, counts, {1, 3, 5, 8}, row_slot, slot_row, 0, gpu::RoutingProblem::first_offset_not_zero},
  };
  auto run = [&](const std::vector<int32_t>& e, const std::vector<int32_t>& cn, const std::vector<int32_t>& off,
                 const std::vector<int32_t>& rs, const std::vector<int32_t>& sr, uint64_t* word,
                 std::vector<std::vector<int32_t>>* copy) {
    auto de = upload(e), dc = upload(cn), doff = upload(off), drs = upload(rs), dsr = upload(sr);
    wavemoe::MoeSaved<float> s;
    s.expert = de.get();
    s.counts = dc.get();
    s.offsets = doff.get();
    s.row_slot = drs.get();
    s.slot_row = dsr.get();
    Word w;
    gpu::CheckedRouting checked;
    const wavemoe::MoeSaved<float> out = gpu::checked_routing<float>(s, c, &checked, w.get(), g_stream);
    *word = w.value();
    *copy = {download(checked.expert), download(checked.counts), download(checked.offsets), download(checked.row_slot),
             download(checked.slot_row)};
    CHECK(out.expert == checked.expert.get() && out.offsets == checked.offsets.get());
  };
  uint64_t word = 1;
  std::vector<std::vector<int32_t>> copy;
  run(expert, counts, offsets, row_slot, slot_row, &word, &copy);
  CHECK(word == 0);
  CHECK(copy == (std::vector<std::vector<int32_t>>{expert, counts, offsets, row_slot, slot_row}));
  for (const Corruption& k : cases) {
    run(k.expert, k.counts, k.offsets, k.row_slot, k.slot_row, &word, &copy);
    const bool reported = word == wavemoe::encode_bad_index(k.position, static_cast<int32_t>(k.problem));
    const bool safe = copy[2] == std::vector<int32_t>(4, 0) && copy[4] == std::vector<int32_t>(8, -1) &&
                      copy[1] == std::vector<int32_t>(3, 0);
    if (!reported || !safe) std::fprintf(stderr, "  routing case '%s': reported %d, safe copy %d\n", k.what, reported, safe);
    CHECK(reported && safe);
  }
  CHECK(gpu::routing_problem_message(3, static_cast<int32_t>(gpu::RoutingProblem::offsets_decrease)) ==
        "offsets decrease at expert 3");
}

void test_sampling_reports() {
  std::printf("sampling problems into check words: the first bad row (4·b + fault) and the first history id out of range\n");
  const int64_t B = 5, H = 3, V = 17;
  std::vector<gpu::SamplingStatus> st(B, gpu::SamplingStatus{gpu::kSamplingOk, -1});
  st[3] = {gpu::kSamplingNaN, 9};
  st[1] = {gpu::kSamplingAllMasked, -1};
  std::vector<int32_t> history = {0, 16, -1, 3, 3, 17, -1, -1, -1, 2, -2, 5, 1, 1, 1};
  gpu::DeviceBuffer<gpu::SamplingStatus> d_st(B);
  WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(d_st.get(), st.data(), B * sizeof(gpu::SamplingStatus), cudaMemcpyHostToDevice,
                                     g_stream));
  auto d_history = upload(history);
  Word row, hist;
  gpu::report_sampling_problems(d_st.get(), B, d_history.get(), H, V, row.get(), hist.get(), g_stream);
  CHECK(row.value() == wavemoe::encode_bad_index(4 * 1 + gpu::kSamplingAllMasked, -1));
  CHECK(hist.value() == wavemoe::encode_bad_index(5, 17));
  CHECK(gpu::sampling_fault_message(4 * 3 + gpu::kSamplingNaN, 9) == "row 3: logits[3, 9] is NaN");
  CHECK(gpu::sampling_fault_message(4 * 1 + gpu::kSamplingAllMasked, -1) ==
        "row 1: every logit is -Infinity, so there is nothing to sample");
  // A sampled row with NaN logits, end to end: the status from sample_tokens, reported without a wait.
  std::vector<float> logits = uniform<float>(B * V, -3, 3);
  logits[2 * V + 4] = std::numeric_limits<float>::quiet_NaN();
  auto d_logits = upload(logits);
  gpu::DeviceBuffer<int32_t> ids(B);
  gpu::SamplingParams p;
  p.temperature = 0.7;
  p.seed = 5;
  p.counter = 2;
  int device = 0;
  WAVEMOE_CUDA_CHECK(cudaGetDevice(&device));
  const unsigned long long waits = gpu::host_waits(device);
  Word row2;
  gpu::sample_tokens<float>(ids.get(), nullptr, d_logits.get(), nullptr, p, B, V, 0, g_stream, d_st.get());
  gpu::report_sampling_problems(d_st.get(), B, nullptr, 0, V, row2.get(), nullptr, g_stream);
  CHECK(gpu::host_waits(device) == waits);
  CHECK(row2.value() == wavemoe::encode_bad_index(4 * 2 + gpu::kSamplingNaN, 4));
}

void test_waits_and_staged_uploads() {
  std::printf("host waits counted; staged uploads do not wait and copy the data as it was at the call\n");
  int device = 0;
  WAVEMOE_CUDA_CHECK(cudaGetDevice(&device));
  const unsigned long long w0 = gpu::host_waits(device);
  gpu::host_wait(g_stream);
  gpu::host_wait(g_stream);
  CHECK(gpu::host_waits(device) == w0 + 2);

  const int64_t pieces = 64, n = 1000;  // a few staging buffers get reused along the way
  gpu::DeviceBuffer<int32_t> dst(pieces * n);
  std::vector<int32_t> host(n);
  const unsigned long long w1 = gpu::host_waits(device);
  for (int64_t p = 0; p < pieces; ++p) {
    for (int64_t i = 0; i < n; ++i) host[i] = static_cast<int32_t>(p * 7919 + i);
    gpu::copy_to_device_async(dst.get() + p * n, host.data(), n * sizeof(int32_t), g_stream);
    std::fill(host.begin(), host.end(), -1);  // reusing the source at once must not change what was copied
  }
  CHECK(gpu::host_waits(device) == w1);  // not one wait
  const std::vector<int32_t> got = download(dst);
  bool ok = true;
  for (int64_t p = 0; p < pieces; ++p) {
    for (int64_t i = 0; i < n; ++i) ok = ok && got[p * n + i] == static_cast<int32_t>(p * 7919 + i);
  }
  CHECK(ok);
  // Past 64 MiB an upload goes direct and waits (once).
  const size_t big = (size_t(64) << 20) / sizeof(int32_t) + 3;
  std::vector<int32_t> big_host(big);
  for (size_t i = 0; i < big; ++i) big_host[i] = static_cast<int32_t>(i * 2654435761u);
  gpu::DeviceBuffer<int32_t> big_dst(big);
  const unsigned long long w2 = gpu::host_waits(device);
  gpu::copy_to_device_async(big_dst.get(), big_host.data(), big * sizeof(int32_t), g_stream);
  CHECK(gpu::host_waits(device) == w2 + 1);
  CHECK(download(big_dst) == big_host);
}

}  // namespace

int main(int argc, char** argv) {
  return run_cuda_test_main("cuda_test_index_checks", argc, argv, [] {
    test_embedding_bad_ids();
    test_cross_entropy_bad_targets();
    test_wavelet_raw_bad_ids();
    test_moe_routing_check();
    test_sampling_reports();
    test_waits_and_staged_uploads();
  });
}
