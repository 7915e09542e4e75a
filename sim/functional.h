#pragma once
// The functional model of one head: every row goes through the units' pure functions
// (QK unit: score_row; softmax: attn::softmax; AV unit: attn::weighted_sum) on the
// trace's real data, and its quality against exact float64 attention is measured. Rows
// are independent, so they are spread over threads; each row's outcome is stored in
// HeadWork::rows, and nothing depends on the number of threads.
#include "arch/pipeline.h"
#include "arch/qk_unit.h"

namespace attnsim {

struct FunctionalSetup {
  QkSetup qk;
  bool quality = true;
  int threads = 1;
};

// Derives the per-head helpers (truncated K, dequantized V, score scale), runs every row
// and fills work.rows; frees the helpers afterwards.
void compute_head(const FunctionalSetup& setup, HeadWork& work);

// Quality contributions of one finished row (SEMANTICS §3 "Quality metrics"): the exact
// reference is the softmax over every key the query may see, here the dense candidate
// set whose exact scores row.exact holds; quant_error compares the exact quantized
// output with attention on the trace's own floats (float traces only).
void measure_row_quality(const HeadWork& work, const RowData& row, RowOutcome& out,
                         std::vector<double>& scratch);

// The same for a row of a layer reduced by skimming (LayerContext::full is set): the
// query's original token against every key of the unreduced layer; coarse tokens are
// not measured (RowOutcome::measured stays false).
void measure_reduced_row_quality(const HeadWork& work, const RowData& row, RowOutcome& out,
                                 std::vector<double>& scratch);

}  // namespace attnsim
