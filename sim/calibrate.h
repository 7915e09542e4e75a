#pragma once
// `attnsim calibrate`: finds the LATTE keep ratio gamma_h of every (layer, head) that makes
// a trace hit a target filtered-key ratio or relative output error, and writes a config
// with those gammas ready for `attnsim run`. docs/calibrate.md explains the algorithm.
//
// Everything is measured with the simulator's own head model (arch/head_model.h: score_row,
// which calls qk::latte_filter, then softmax and weighted_sum, with the run's quality
// meter), so `attnsim run` with the written config reproduces the calibrated figures
// exactly.
#include "arch/candidates.h"
#include "arch/qk_unit.h"
#include "sim/config.h"
#include "workloads/trace.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace attnsim {

enum class CalibrationMetric { FilteredRatio, RelError };

struct CalibrationTarget {
  CalibrationMetric metric = CalibrationMetric::FilteredRatio;
  double value = 0.0;  // in (0, 1)
};

// "filtered_ratio=0.85" or "rel_error=0.02"; the value must lie strictly inside (0, 1).
// Throws std::invalid_argument with a one-line message.
CalibrationTarget parse_calibration_target(const std::string& text);
const char* calibration_metric_name(CalibrationMetric metric);

// The gamma in (0, 1) for which qk::latte_margin(gamma, d, scale_q, scale_k) == margin,
// exactly: exp(-(margin + 0.5) * scale_q * scale_k / sqrt(d)), nudged by ulps if the
// rounding of latte_margin disagrees. Throws std::invalid_argument for margin < 0, and
// std::range_error if no double gamma maps to the margin (it would underflow).
double gamma_for_margin(int64_t margin, int d, double scale_q, double scale_k);

// How many keys of one head the LATTE comparator keeps, as a function of the margin T.
// A key j of row i is kept iff gap_ij <= T, where gap_ij = m - e_ij and m is the running
// maximum of the MSB estimates at the end of the key's reuse-buffer segment (SEMANTICS §3).
// m does not depend on T, so the kept count is a non-decreasing step function of T that
// changes only at the distinct gap values: T in [gaps[k], gaps[k+1]) keeps kept[k] keys.
struct MarginProfile {
  uint64_t candidates = 0;     // sum over rows of |C_i|
  std::vector<int64_t> gaps;   // distinct gap values, ascending; gaps[0] = 0 unless empty
  std::vector<uint64_t> kept;  // kept[k] = number of keys with gap <= gaps[k]

  size_t plateaus() const { return gaps.size(); }
  uint64_t filtered_at(int64_t margin) const;       // candidates - keys with gap <= margin
  uint64_t filtered_on(size_t plateau) const { return candidates - kept[plateau]; }
  // The largest margin that behaves like plateau k (gaps[k+1] - 1; the last plateau, which
  // keeps every key, gets gaps.back()): the same decisions on this trace, the most slack.
  int64_t plateau_top(size_t plateau) const;
  // The plateau whose filtered ratio is closest to `ratio` (ties: the larger margin).
  size_t closest_plateau(double ratio) const;
};

// The profile of head `work.head` of `work.layer` under the QK unit of `setup` (bits,
// estimate_bits, reuse_buffer.entries) with the candidates of `generator` (causal if the
// layer is). Rows are spread over `threads` threads; the result does not depend on it.
MarginProfile margin_profile(const QkSetup& setup, const CandidateGenerator& generator, const HeadWork& work,
                             int threads);

struct HeadCalibration {
  int layer = 0, head = 0;
  double head_target = 0;    // the per-head target this head was calibrated to
  int64_t margin = 0;        // the chosen integer margin T_h
  double gamma = 1.0;        // gamma_for_margin(margin, ...)
  uint64_t candidates = 0, filtered = 0;  // measured by the functional model at `margin`
  double rel_error = 0;      // measured by the functional model at `margin`
  size_t plateaus = 0;       // distinct behaviours of the comparator on this head
  double filtered_ratio() const { return candidates ? double(filtered) / candidates : 0.0; }
};

struct CalibrationResult {
  CalibrationTarget target;
  std::vector<std::vector<HeadCalibration>> heads;  // [layer][head]
  double filtered_ratio = 0;  // overall: filtered / candidates over every head
  double rel_error = 0;       // overall: mean of the per-head rel_error (SEMANTICS §3)
  int passes = 1;             // 2 when per-head targets had to be shifted
  double target_shift = 0;    // per-head target = target + target_shift (filtered_ratio)
  nlohmann::json config;      // the resolved config with comparator.gamma filled in
  double achieved() const {
    return target.metric == CalibrationMetric::FilteredRatio ? filtered_ratio : rel_error;
  }
};

// Calibrates every head of `trace` for `config` (qk_unit.mode must be "latte", otherwise
// ConfigError naming config.origin and qk_unit.mode). `threads`: 0 = one per core.
// Throws ConfigError / TraceError (one line) on bad input.
CalibrationResult calibrate(const Config& config, const Trace& trace, const CalibrationTarget& target,
                            int threads = 0);

// The per-head table and the overall achieved value, for the terminal.
std::string calibration_report(const CalibrationResult& result);

}  // namespace attnsim
