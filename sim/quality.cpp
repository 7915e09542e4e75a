#include "sim/quality.h"

#include "arch/attention_math.h"
#include "arch/qk_math.h"

#include <algorithm>
#include <cmath>

namespace attnsim {

namespace {

// Attention of one query over keys 0..keys-1 on the trace's floats, in double: the
// quant_error reference.
// k_wide, v_wide: the head's K and V floats widened to double (exactly), read by every row.
void float_attention(const HeadData& data, const double* k_wide, const double* v_wide, int query, int keys, int d,
                     double* logits, double* probs, double* out) {
  const float* q = data.q_float.data() + static_cast<size_t>(query) * d;
  const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(d));
  attn::dot_f64_rows(q, k_wide, keys, d, logits);
  for (int j = 0; j < keys; ++j) logits[j] *= inv_sqrt_d;
  attn::softmax_real(logits, keys, probs);
  attn::weighted_sum_rows(probs, keys, v_wide, d, out);
}

// Exact scores of `query` against keys 0..keys-1 of `data`.
void exact_scores(const HeadData& data, int query, int keys, int d, bool wide, std::vector<int64_t>& scores) {
  scores.resize(keys);
  const int16_t* q = data.q.data() + static_cast<size_t>(query) * d;
  for (int j = 0; j < keys; ++j) scores[j] = qk::dot(q, data.k.data() + static_cast<size_t>(j) * d, d, wide);
}

class ExactHeadQuality : public HeadQuality {
 public:
  explicit ExactHeadQuality(const HeadWork& w) : w_(w) {
    const HeadData& reference = w.layer->full ? w.layer->full->head[w.head] : w.data();
    k_wide_.assign(reference.k_float.begin(), reference.k_float.end());
    v_wide_.assign(reference.v_float.begin(), reference.v_float.end());
    if (!w.layer->full) return;
    const HeadData& full = w.layer->full->head[w.head];
    full_v_deq_.resize(full.v.size());
    for (size_t i = 0; i < full.v.size(); ++i) full_v_deq_[i] = full.v[i] * full.scale_v;
  }

  void measure(const RowData& row, RowOutcome& out, std::vector<double>& scratch) const override {
    if (w_.layer->full)
      measure_reduced(row, out, scratch);
    else
      measure_plain(row, out, scratch);
  }

 private:
  void measure_plain(const RowData& row, RowOutcome& out, std::vector<double>& scratch) const;
  double narrowed_reference(const RowData& row, int n, double* probs, double* exact_out) const;
  void measure_reduced(const RowData& row, RowOutcome& out, std::vector<double>& scratch) const;

  const HeadWork& w_;
  std::vector<double> full_v_deq_;  // dequantized V of the unreduced layer (skimming)
  std::vector<double> k_wide_, v_wide_;  // the float reference's K and V (of the unreduced layer) in double
};

// The reference of a row whose candidates a generator narrowed. No work twice: the QK
// unit's model scored the candidates exactly already (row.exact), so only the other
// visible keys are scored here; and when the output is the softmax and AV units' P.V over
// the survivors (a softmax over a subset is the full softmax restricted and renormalized),
// the survivors join the row's normalizer through their softmax sum, and the reference is
// their exact mass times that output plus the other keys' part. Returns the survivors'
// exact mass.
double ExactHeadQuality::narrowed_reference(const RowData& row, int n, double* probs, double* exact_out) const {
  const HeadData& data = w_.data();
  const int d = w_.d();
  thread_local std::vector<int64_t> scores;  // per thread, reused row after row
  thread_local std::vector<int32_t> rest;
  scores.resize(n);
  rest.clear();
  const int16_t* q = data.q.data() + static_cast<size_t>(row.row) * d;
  for (int j = 0, c = 0; j < n; ++j) {
    if (c < static_cast<int>(row.candidates.size()) && row.candidates[c] == j)
      scores[j] = row.exact[c++];
    else
      scores[j] = qk::dot(q, data.k.data() + static_cast<size_t>(j) * d, d, w_.wide);
  }
  const bool from_output = row.plain_output && !row.survivor_ids.empty();
  if (!from_output) {
    attn::softmax(scores.data(), n, w_.score_scale, probs);
    for (int j = 0; j < n; ++j) rest.push_back(j);
    attn::weighted_sum(probs, rest.data(), n, w_.v_deq.data(), d, exact_out);
    double mass = 0;
    for (const int32_t id : row.survivor_ids) mass += probs[id];
    return mass;
  }
  const int64_t top = *std::max_element(scores.begin(), scores.end());
  const double c = w_.score_scale;
  // The survivors' sum of exponentials relative to the row's largest score.
  const double kept = row.softmax_sum * std::exp(c * static_cast<double>(row.softmax_max - top));
  double total = kept;
  for (int j = 0, s = 0; j < n; ++j) {
    if (s < static_cast<int>(row.survivor_ids.size()) && row.survivor_ids[s] == j) {
      ++s;
      continue;
    }
    rest.push_back(j);
    probs[rest.size() - 1] = std::exp(c * static_cast<double>(scores[j] - top));
    total += probs[rest.size() - 1];
  }
  for (size_t x = 0; x < rest.size(); ++x) probs[x] /= total;
  attn::weighted_sum(probs, rest.data(), static_cast<int>(rest.size()), w_.v_deq.data(), d, exact_out);
  const double mass = kept / total;
  for (int t = 0; t < d; ++t) exact_out[t] += mass * row.out[t];
  return mass;
}

void ExactHeadQuality::measure_plain(const RowData& row, RowOutcome& out, std::vector<double>& scratch) const {
  out.measured = true;
  const HeadData& data = w_.data();
  const int d = w_.d();
  const int n = visible_key_count(row.row, w_.m(), w_.layer->causal);
  // Candidates are ascending ids among the visible keys: as many means every one of them.
  const bool candidates_all = static_cast<int>(row.candidates.size()) == n;
  const bool all_survive =
      row.plain_output && candidates_all && row.survivor_ids.size() == row.candidates.size();
  // scratch layout: [exact probs n | exact out d | float logits n | float probs n | float out d]
  scratch.resize(3 * static_cast<size_t>(n) + 2 * d);
  double* probs = scratch.data();
  double* exact_out = probs + n;
  const double* reference = exact_out;
  double mass = 0;
  if (!candidates_all) {
    mass = narrowed_reference(row, n, probs, exact_out);
  } else {
    if (all_survive) {
      // Every key survived: the accelerator ran the very same arithmetic on the same
      // values, so its probabilities and output are the exact ones bit for bit.
      std::copy(row.probs.begin(), row.probs.end(), probs);
      reference = row.out.data();
    } else {
      std::vector<int32_t> ids(n);
      for (int j = 0; j < n; ++j) ids[j] = j;
      attn::softmax(row.exact.data(), n, w_.score_scale, probs);
      attn::weighted_sum(probs, ids.data(), n, w_.v_deq.data(), d, exact_out);
    }
    for (const int32_t id : row.survivor_ids) mass += probs[id];
  }
  out.err_sq = attn::squared_distance(row.out.data(), reference, d);
  out.ref_sq = attn::squared_norm(reference, d);
  out.mass = mass;

  if (data.q_float.empty()) return;
  double* logits = exact_out + d;
  double* float_probs = logits + n;
  double* float_out = float_probs + n;
  float_attention(data, k_wide_.data(), v_wide_.data(), row.row, n, d, logits, float_probs, float_out);
  // The quantized dense output is the exact reference (same quantized q, k, v).
  out.qerr_sq = attn::squared_distance(reference, float_out, d);
  out.qref_sq = attn::squared_norm(float_out, d);
}

// A reduced layer (skimming): the reference is exact attention of the query's original
// token over every key of the unreduced layer; a survivor's exact probability is that of
// its original key, or for a coarse (FCA) key the sum over the originals it pools.
void ExactHeadQuality::measure_reduced(const RowData& row, RowOutcome& out, std::vector<double>& scratch) const {
  const LayerContext& layer = *w_.layer;
  const int query = layer.view.original[row.row];
  if (query < 0) return;  // a coarse token has no reference
  const LayerView& full = *layer.full;
  const HeadData& fh = full.head[w_.head];
  const int d = full.d;
  const int keys = visible_key_count(query, full.m, layer.causal);
  scratch.resize(3 * static_cast<size_t>(keys) + 2 * d);
  double* probs = scratch.data();
  double* exact_out = probs + keys;
  std::vector<int64_t> scores;
  exact_scores(fh, query, keys, d, w_.wide, scores);
  std::vector<int32_t> ids(keys);
  for (int j = 0; j < keys; ++j) ids[j] = j;
  attn::softmax(scores.data(), keys, fh.scale_q * fh.scale_k / std::sqrt(static_cast<double>(d)), probs);
  attn::weighted_sum(probs, ids.data(), keys, full_v_deq_.data(), d, exact_out);
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
  float_attention(fh, k_wide_.data(), v_wide_.data(), query, keys, d, logits, float_probs, float_out.data());
  out.qerr_sq = attn::squared_distance(exact_out, float_out.data(), d);
  out.qref_sq = attn::squared_norm(float_out.data(), d);
}

}  // namespace

std::unique_ptr<HeadQuality> ExactAttentionQuality::begin_head(const HeadWork& head) const {
  return std::make_unique<ExactHeadQuality>(head);
}

}  // namespace attnsim
