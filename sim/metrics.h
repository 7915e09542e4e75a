#pragma once
// Functional outcome of a run, gathered row by row from the write-back: filter counts
// (SEMANTICS §3: filtered_ratio, exact_ratio) and approximation quality against exact
// float64 attention (rel_error, mass_recall, and quant_error for float traces).
#include "arch/pipeline.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

namespace attnsim {

// |C_i| per query: power-of-two bins (bin 0: 0, bin b >= 1: 2^(b-1) .. 2^b - 1) and the maximum.
struct CandidateHistogram {
  std::vector<uint64_t> bins;
  uint64_t max = 0;
  void add(uint64_t candidates);
  void merge(const CandidateHistogram& o);
  // {"mean", "max", "histogram": [{"from", "to", "count"}, ...]} over `rows` queries.
  nlohmann::json to_json(uint64_t candidate_keys, uint64_t rows) const;
};

struct HeadMetrics {
  uint64_t candidate_keys = 0;
  uint64_t filtered_keys = 0;
  uint64_t exact_keys = 0;    // keys scored exactly
  uint64_t visible_keys = 0;  // keys the queries of the unreduced layer may see
  uint64_t rows = 0;          // rows processed (active queries)
  uint64_t quality_rows = 0;  // rows with a quality reference (not coarse FCA tokens)
  uint64_t mass_rows = 0;     // of which rows with a mass_recall (not Treeformer TC rows)
  double err_sq = 0, ref_sq = 0;     // ||O_approx - O_exact||^2, ||O_exact||^2
  double mass_sum = 0;               // sum over rows of the survivors' exact probability
  CandidateHistogram candidates_per_query;
  double qerr_sq = 0, qref_sq = 0;   // ||O_exact - O_float||^2, ||O_float||^2
  bool has_float = false;

  double filtered_ratio() const;
  double exact_ratio() const;
  double rel_error() const;
  bool has_mass_recall() const { return mass_rows > 0; }
  double mass_recall() const;
  double quant_error() const;
};

class Metrics : public RowSink {
 public:
  // `quality`: compute the quality metrics (they cost a reference attention per row).
  // `candidates_per_query`: report filter.candidates_per_query (with a candidate
  // generator other than "all", SEMANTICS §7).
  Metrics(int layers, bool quality, bool candidates_per_query = false)
      : quality_(quality), candidates_per_query_(candidates_per_query), heads_(layers) {}

  // Called when a layer is loaded: sizes its heads and fixes their visible-key counts.
  void begin_layer(int layer, int heads, int n, int m, bool causal);
  // Adds a finished row's outcome; rows arrive in order, so sums are deterministic.
  void row_done(const HeadWork& head, int row) override;

  uint64_t rows_done() const { return rows_done_; }
  const std::vector<std::vector<HeadMetrics>>& heads() const { return heads_; }

  // The `filter` section (with by_layer[l].by_head[h]) and the `quality` section.
  nlohmann::json filter_json() const;
  nlohmann::json quality_json() const;

 private:
  bool quality_;
  bool candidates_per_query_;
  std::vector<std::vector<HeadMetrics>> heads_;
  uint64_t rows_done_ = 0;
};

}  // namespace attnsim
