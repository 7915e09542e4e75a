#include "sim/metrics.h"

#include <cmath>

namespace attnsim {

namespace {
double ratio(uint64_t a, uint64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / b; }
}  // namespace

double HeadMetrics::filtered_ratio() const { return ratio(filtered_keys, candidate_keys); }
double HeadMetrics::exact_ratio() const { return ratio(exact_keys, visible_keys); }
double HeadMetrics::rel_error() const { return ref_sq == 0 ? 0.0 : std::sqrt(err_sq / ref_sq); }
double HeadMetrics::mass_recall() const { return quality_rows == 0 ? 0.0 : mass_sum / quality_rows; }
double HeadMetrics::quant_error() const { return qref_sq == 0 ? 0.0 : std::sqrt(qerr_sq / qref_sq); }

void Metrics::begin_layer(int layer, int heads, int n, int m, bool causal) {
  auto& layer_heads = heads_.at(layer);
  layer_heads.assign(heads, HeadMetrics{});
  // N*M, or sum_i min(i+1, M) = N(N+1)/2 when causal (N = M).
  uint64_t visible = 0;
  if (causal) {
    for (int i = 0; i < n; ++i) visible += std::min(i + 1, m);
  } else {
    visible = static_cast<uint64_t>(n) * m;
  }
  for (auto& h : layer_heads) h.visible_keys = visible;
}

void Metrics::row_done(const HeadWork& w, int row) {
  const RowOutcome& o = w.rows[row];
  HeadMetrics& m = heads_.at(w.layer_index()).at(w.head);
  m.candidate_keys += o.candidates;
  m.filtered_keys += o.candidates - o.survivors;
  m.exact_keys += o.exact_scored;
  ++m.rows;
  ++rows_done_;
  if (!quality_ || !o.measured) return;
  ++m.quality_rows;
  m.err_sq += o.err_sq;
  m.ref_sq += o.ref_sq;
  m.mass_sum += o.mass;
  if (!w.data().q_float.empty()) {
    m.has_float = true;
    m.qerr_sq += o.qerr_sq;
    m.qref_sq += o.qref_sq;
  }
}

namespace {

nlohmann::json counts_json(uint64_t candidates, uint64_t filtered, uint64_t exact, uint64_t visible) {
  return {{"candidate_keys", candidates},
          {"filtered_keys", filtered},
          {"filtered_ratio", ratio(filtered, candidates)},
          {"exact_ratio", ratio(exact, visible)}};
}

}  // namespace

nlohmann::json Metrics::filter_json() const {
  uint64_t c = 0, f = 0, e = 0, v = 0;
  nlohmann::json by_layer = nlohmann::json::array();
  for (const auto& layer : heads_) {
    uint64_t lc = 0, lf = 0, le = 0, lv = 0;
    nlohmann::json by_head = nlohmann::json::array();
    for (const HeadMetrics& h : layer) {
      nlohmann::json hj = counts_json(h.candidate_keys, h.filtered_keys, h.exact_keys, h.visible_keys);
      if (quality_) {
        hj["rel_error"] = h.rel_error();
        hj["mass_recall"] = h.mass_recall();
        if (h.has_float) hj["quant_error"] = h.quant_error();
      }
      by_head.push_back(hj);
      lc += h.candidate_keys, lf += h.filtered_keys, le += h.exact_keys, lv += h.visible_keys;
    }
    nlohmann::json lj = counts_json(lc, lf, le, lv);
    lj["by_head"] = by_head;
    by_layer.push_back(lj);
    c += lc, f += lf, e += le, v += lv;
  }
  nlohmann::json j = counts_json(c, f, e, v);
  j["by_layer"] = by_layer;
  return j;
}

nlohmann::json Metrics::quality_json() const {
  if (!quality_) return {{"enabled", false}};
  double rel = 0, mass = 0, quant = 0;
  int heads = 0, float_heads = 0;
  for (const auto& layer : heads_)
    for (const HeadMetrics& h : layer) {
      rel += h.rel_error();
      mass += h.mass_recall();
      ++heads;
      if (h.has_float) {
        quant += h.quant_error();
        ++float_heads;
      }
    }
  nlohmann::json j = {{"rel_error", heads ? rel / heads : 0.0}, {"mass_recall", heads ? mass / heads : 0.0}};
  if (float_heads > 0) j["quant_error"] = quant / float_heads;
  return j;
}

}  // namespace attnsim
