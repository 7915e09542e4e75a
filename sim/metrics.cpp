#include "sim/metrics.h"

#include <algorithm>
#include <cmath>

namespace attnsim {

namespace {
double ratio(uint64_t a, uint64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / b; }
}  // namespace

double HeadMetrics::filtered_ratio() const { return ratio(filtered_keys, candidate_keys); }
double HeadMetrics::exact_ratio() const { return ratio(exact_keys, visible_keys); }
double HeadMetrics::rel_error() const { return ref_sq == 0 ? 0.0 : std::sqrt(err_sq / ref_sq); }
double HeadMetrics::mass_recall() const { return mass_rows == 0 ? 0.0 : mass_sum / mass_rows; }

void CandidateHistogram::add(uint64_t c) {
  size_t bin = 0;
  while (bin < 64 && (uint64_t{1} << bin) <= c) ++bin;  // c in [2^(bin-1), 2^bin - 1]
  if (bins.size() <= bin) bins.resize(bin + 1, 0);
  ++bins[bin];
  max = std::max(max, c);
}

void CandidateHistogram::merge(const CandidateHistogram& o) {
  if (bins.size() < o.bins.size()) bins.resize(o.bins.size(), 0);
  for (size_t b = 0; b < o.bins.size(); ++b) bins[b] += o.bins[b];
  max = std::max(max, o.max);
}

nlohmann::json CandidateHistogram::to_json(uint64_t candidate_keys, uint64_t rows) const {
  nlohmann::json h = nlohmann::json::array();
  for (size_t b = 0; b < bins.size(); ++b) {
    const uint64_t from = b == 0 ? 0 : uint64_t{1} << (b - 1), to = b == 0 ? 0 : (uint64_t{1} << b) - 1;
    h.push_back({{"from", from}, {"to", to}, {"count", bins[b]}});
  }
  return {{"mean", rows == 0 ? 0.0 : static_cast<double>(candidate_keys) / rows}, {"max", max}, {"histogram", h}};
}
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
  if (candidates_per_query_) m.candidates_per_query.add(o.candidates);
  if (!quality_ || !o.measured) return;
  ++m.quality_rows;
  m.err_sq += o.err_sq;
  m.ref_sq += o.ref_sq;
  if (o.has_mass) {
    ++m.mass_rows;
    m.mass_sum += o.mass;
  }
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
  uint64_t c = 0, f = 0, e = 0, v = 0, rows = 0;
  CandidateHistogram all;
  nlohmann::json by_layer = nlohmann::json::array();
  for (const auto& layer : heads_) {
    uint64_t lc = 0, lf = 0, le = 0, lv = 0;
    nlohmann::json by_head = nlohmann::json::array();
    for (const HeadMetrics& h : layer) {
      nlohmann::json hj = counts_json(h.candidate_keys, h.filtered_keys, h.exact_keys, h.visible_keys);
      if (quality_) {
        hj["rel_error"] = h.rel_error();
        hj["mass_recall"] = h.has_mass_recall() || h.quality_rows == 0 ? nlohmann::json(h.mass_recall()) : nlohmann::json();
        if (h.has_float) hj["quant_error"] = h.quant_error();
      }
      if (candidates_per_query_) {
        hj["candidates_per_query"] = h.candidates_per_query.to_json(h.candidate_keys, h.rows);
        all.merge(h.candidates_per_query);
        rows += h.rows;
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
  if (candidates_per_query_) j["candidates_per_query"] = all.to_json(c, rows);
  j["by_layer"] = by_layer;
  return j;
}

nlohmann::json Metrics::quality_json() const {
  if (!quality_) return {{"enabled", false}};
  double rel = 0, mass = 0, quant = 0;
  int heads = 0, mass_heads = 0, float_heads = 0;
  for (const auto& layer : heads_)
    for (const HeadMetrics& h : layer) {
      rel += h.rel_error();
      ++heads;
      // A head whose rows all lack a mass (Treeformer TC) has none; one without measured
      // rows (every query a coarse FCA token) counts 0, as before.
      if (h.has_mass_recall() || h.quality_rows == 0) mass += h.mass_recall(), ++mass_heads;
      if (h.has_float) {
        quant += h.quant_error();
        ++float_heads;
      }
    }
  nlohmann::json j = {{"rel_error", heads ? rel / heads : 0.0},
                      {"mass_recall", mass_heads ? nlohmann::json(mass / mass_heads)
                                      : heads ? nlohmann::json() : nlohmann::json(0.0)}};
  if (float_heads > 0) j["quant_error"] = quant / float_heads;
  return j;
}

}  // namespace attnsim
