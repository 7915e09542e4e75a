#include "sim/functional.h"

#include "arch/attention_math.h"
#include "arch/qk_math.h"

#include "arch/qk_unit.h"

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
  if (s.quality && w.layer->full) {
    const HeadData& full = w.layer->full->head[w.head];
    w.full_v_deq.resize(full.v.size());
    for (size_t i = 0; i < full.v.size(); ++i) w.full_v_deq[i] = full.v[i] * full.scale_v;
  }
}

// FCA scores come from the head-mean probabilities the accelerator computed (filtered
// keys count 0). Each row is written by one thread; heads run one after another.
void accumulate_abar(const HeadWork& w, const RowData& row) {
  std::vector<double>& abar = *w.layer->abar;
  const size_t n = static_cast<size_t>(w.n());
  const double share = 1.0 / w.layer->view.heads;
  double* out = abar.data() + static_cast<size_t>(row.row) * n;
  for (size_t j = 0; j < row.survivor_ids.size(); ++j) out[row.survivor_ids[j]] += share * row.probs[j];
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
    if (w.layer->abar) accumulate_abar(w, row);
    if (s.quality) {
      if (w.layer->full)
        measure_reduced_row_quality(w, row, out, scratch);
      else
        measure_row_quality(w, row, out, scratch);
    }
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
  std::vector<double>().swap(w.full_v_deq);
}

namespace {

// Attention of one query on the trace's floats, in double: the quant_error reference.
void float_attention(const HeadData& data, int query, int keys, int d, double* logits, double* probs,
                     double* out) {
  const float* q = data.q_float.data() + static_cast<size_t>(query) * d;
  const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(d));
  for (int j = 0; j < keys; ++j)
    logits[j] = attn::dot_f64(q, data.k_float.data() + static_cast<size_t>(j) * d, d) * inv_sqrt_d;
  attn::softmax_real(logits, keys, probs);
  std::fill(out, out + d, 0.0);
  for (int j = 0; j < keys; ++j) attn::axpy_f64(probs[j], data.v_float.data() + static_cast<size_t>(j) * d, d, out);
}

}  // namespace

// A reduced layer (skimming): the reference is exact attention of the query's original
// token over every key of the unreduced layer; a survivor's exact probability is that of
// its original key, or for a coarse (FCA) key the sum over the originals it pools.
void measure_reduced_row_quality(const HeadWork& w, const RowData& row, RowOutcome& out,
                                 std::vector<double>& scratch) {
  const LayerContext& layer = *w.layer;
  const int query = layer.view.original[row.row];
  if (query < 0) return;  // a coarse token has no reference
  const LayerView& full = *layer.full;
  const HeadData& fh = full.head[w.head];
  const int d = full.d;
  const int keys = candidate_count(query, full.m, layer.causal);
  scratch.resize(3 * static_cast<size_t>(keys) + 2 * d);
  double* probs = scratch.data();
  double* exact_out = probs + keys;
  std::vector<int64_t> scores(keys);
  std::vector<int32_t> ids(keys);
  const bool wide = w.wide;
  for (int j = 0; j < keys; ++j) {
    ids[j] = j;
    scores[j] = qk::dot(fh.q.data() + static_cast<size_t>(query) * d, fh.k.data() + static_cast<size_t>(j) * d, d, wide);
  }
  attn::softmax(scores.data(), keys, fh.scale_q * fh.scale_k / std::sqrt(static_cast<double>(d)), probs);
  attn::weighted_sum(probs, ids.data(), keys, w.full_v_deq.data(), d, exact_out);
  out.measured = true;
  out.err_sq = attn::squared_distance(row.out.data(), exact_out, d);
  out.ref_sq = attn::squared_norm(exact_out, d);
  double mass = 0;
  for (int32_t id : row.survivor_ids)
    for (const auto& part : layer.map[id].parts)
      if (part.first < keys) mass += probs[part.first];
  out.mass = mass;
  if (fh.q_float.empty()) return;
  double* logits = exact_out + d;
  double* float_probs = logits + keys;
  std::vector<double> float_out(d);
  float_attention(fh, query, keys, d, logits, float_probs, float_out.data());
  out.qerr_sq = attn::squared_distance(exact_out, float_out.data(), d);
  out.qref_sq = attn::squared_norm(float_out.data(), d);
}

void measure_row_quality(const HeadWork& w, const RowData& row, RowOutcome& out,
                         std::vector<double>& scratch) {
  out.measured = true;
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
