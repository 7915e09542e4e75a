#include "sim/functional.h"

#include "arch/attention_math.h"
#include "arch/qk_math.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace attnsim {

namespace {

void derive_helpers(const FunctionalSetup& s, HeadWork& w) {
  const HeadData& data = w.data();
  const int d = w.d(), bits = s.qk.qk.bits;
  w.wide = qk::needs_wide_accumulator(bits, d);
  w.score_scale = data.scale_q * data.scale_k / std::sqrt(static_cast<double>(d));
  if (s.qk.qk.mode == "latte") {
    w.k_msb.resize(data.k.size());
    qk::msb_truncate(data.k.data(), data.k.size(), bits, s.qk.qk.estimate_bits, w.k_msb.data());
  }
  w.v_deq.resize(data.v.size());
  for (size_t i = 0; i < data.v.size(); ++i) w.v_deq[i] = data.v[i] * data.scale_v;
}

void compute_rows(const FunctionalSetup& s, HeadWork& w, int begin, int end) {
  RowData row;
  std::vector<double> scratch;
  const int d = w.d();
  const bool causal = w.layer->causal;
  for (int i = begin; i < end; ++i) {
    row.row = i;
    dense_candidates(i, w.m(), causal, row.candidates);
    RowOutcome& out = w.rows[i];
    RowPlace place;
    place.first_in_head = i == 0;
    if (s.qk.qk.mode == "latte" && i + 1 < w.n())
      place.next_row_pass1 =
          first_segment_pass1_cycles(s.qk, candidate_count(i + 1, w.m(), causal));
    out.qk = score_row(s.qk, w, row, place);
    out.candidates = static_cast<uint32_t>(row.candidates.size());
    out.survivors = static_cast<uint32_t>(row.survivor_ids.size());
    out.exact_scored = row.exact_scored;
    // softmax unit, then AV unit
    row.probs.resize(out.survivors);
    attn::softmax(row.survivor_scores.data(), out.survivors, w.score_scale, row.probs.data());
    row.out.resize(d);
    attn::weighted_sum(row.probs.data(), row.survivor_ids.data(), out.survivors, w.v_deq.data(), d,
                       row.out.data());
    if (s.quality) measure_row_quality(w, row, out, scratch);
  }
}

}  // namespace

void compute_head(const FunctionalSetup& s, HeadWork& w) {
  derive_helpers(s, w);
  const int n = w.n();
  w.rows.assign(n, RowOutcome{});
  const int threads = std::max(1, std::min(s.threads, n / 16));
  if (threads == 1) {
    compute_rows(s, w, 0, n);
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back(compute_rows, std::cref(s), std::ref(w), n * t / threads, n * (t + 1) / threads);
    for (auto& th : pool) th.join();
  }
  std::vector<int16_t>().swap(w.k_msb);
  std::vector<double>().swap(w.v_deq);
}

void measure_row_quality(const HeadWork& w, const RowData& row, RowOutcome& out,
                         std::vector<double>& scratch) {
  const int d = w.d();
  const int n = static_cast<int>(row.candidates.size());
  const bool all_survive = row.survivor_ids.size() == row.candidates.size();
  // scratch layout: [exact probs n | exact out d | float logits n | float probs n | float out d]
  scratch.resize(3 * static_cast<size_t>(n) + 2 * d);
  double* probs = scratch.data();
  double* exact_out = probs + n;
  const double* reference;
  if (all_survive) {
    // Every key survived: the accelerator ran the very same arithmetic on the same
    // values, so its probabilities and output are the exact ones bit for bit.
    std::copy(row.probs.begin(), row.probs.end(), probs);
    reference = row.out.data();
  } else {
    attn::softmax(row.exact.data(), n, w.score_scale, probs);
    attn::weighted_sum(probs, row.candidates.data(), n, w.v_deq.data(), d, exact_out);
    reference = exact_out;
  }
  out.err_sq = attn::squared_distance(row.out.data(), reference, d);
  out.ref_sq = attn::squared_norm(reference, d);
  double mass = 0;
  for (int j = 0; j < n; ++j)
    if (row.keep[j]) mass += probs[j];
  out.mass = mass;

  const HeadData& data = w.data();
  if (data.q_float.empty()) return;
  double* logits = exact_out + d;
  double* float_probs = logits + n;
  double* float_out = float_probs + n;
  const float* q = data.q_float.data() + static_cast<size_t>(row.row) * d;
  const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(d));
  for (int j = 0; j < n; ++j) {
    const float* k = data.k_float.data() + static_cast<size_t>(row.candidates[j]) * d;
    logits[j] = attn::dot_f64(q, k, d) * inv_sqrt_d;
  }
  attn::softmax_real(logits, n, float_probs);
  std::fill(float_out, float_out + d, 0.0);
  for (int j = 0; j < n; ++j) {
    attn::axpy_f64(float_probs[j], data.v_float.data() + static_cast<size_t>(row.candidates[j]) * d, d,
                   float_out);
  }
  // The quantized dense output is the exact reference (same quantized q, k, v).
  out.qerr_sq = attn::squared_distance(reference, float_out, d);
  out.qref_sq = attn::squared_norm(float_out, d);
}

}  // namespace attnsim
