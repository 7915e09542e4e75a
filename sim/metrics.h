#pragma once
// Functional outcome of a run, gathered row by row from the write-back: filter counts
// (SEMANTICS §3: filtered_ratio, exact_ratio) and approximation quality against exact
// float64 attention (rel_error, mass_recall, and quant_error for float traces).
#include "arch/pipeline.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

namespace attnsim {

struct HeadMetrics {
  uint64_t candidate_keys = 0;
  uint64_t filtered_keys = 0;
  uint64_t exact_keys = 0;    // keys scored exactly
  uint64_t visible_keys = 0;  // keys the queries of the unreduced layer may see
  uint64_t rows = 0;          // rows processed (active queries)
  uint64_t quality_rows = 0;  // rows with a quality reference (not coarse FCA tokens)
  double err_sq = 0, ref_sq = 0;     // ||O_approx - O_exact||^2, ||O_exact||^2
  double mass_sum = 0;               // sum over rows of the survivors' exact probability
  double qerr_sq = 0, qref_sq = 0;   // ||O_exact - O_float||^2, ||O_float||^2
  bool has_float = false;

  double filtered_ratio() const;
  double exact_ratio() const;
  double rel_error() const;
  double mass_recall() const;
  double quant_error() const;
};

class Metrics : public RowSink {
 public:
  // `quality`: compute the quality metrics (they cost a reference attention per row).
  Metrics(int layers, bool quality) : quality_(quality), heads_(layers) {}

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
  std::vector<std::vector<HeadMetrics>> heads_;
  uint64_t rows_done_ = 0;
};

}  // namespace attnsim
