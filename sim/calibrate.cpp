#include "sim/calibrate.h"

#include "arch/head_model.h"
#include "arch/qk_math.h"
#include "core/errors.h"
#include "sim/layer_plan.h"
#include "sim/quality.h"

#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace attnsim {

// ---- target ------------------------------------------------------------------------------

const char* calibration_metric_name(CalibrationMetric metric) {
  return metric == CalibrationMetric::FilteredRatio ? "filtered_ratio" : "rel_error";
}

CalibrationTarget parse_calibration_target(const std::string& text) {
  const auto bad = [&]() -> std::invalid_argument {
    return std::invalid_argument("--target: expected filtered_ratio=X or rel_error=X with 0 < X < 1, got '" +
                                 text + "'");
  };
  const size_t eq = text.find('=');
  if (eq == std::string::npos) throw bad();
  const std::string name = text.substr(0, eq), number = text.substr(eq + 1);
  CalibrationTarget t;
  if (name == "filtered_ratio")
    t.metric = CalibrationMetric::FilteredRatio;
  else if (name == "rel_error")
    t.metric = CalibrationMetric::RelError;
  else
    throw bad();
  if (number.empty() || std::isspace(static_cast<unsigned char>(number[0]))) throw bad();
  char* end = nullptr;
  errno = 0;
  t.value = std::strtod(number.c_str(), &end);
  if (errno != 0 || *end != '\0' || !(t.value > 0.0 && t.value < 1.0)) throw bad();
  return t;
}

// ---- gamma <-> margin ----------------------------------------------------------------------

double gamma_for_margin(int64_t margin, int d, double scale_q, double scale_k) {
  if (margin < 0) throw std::invalid_argument("gamma_for_margin: margin must be >= 0");
  // latte_margin computes floor(-ln(gamma) * sqrt(d) / (sq*sk)); aim at the middle of the
  // interval [margin, margin + 1) so that rounding cannot push it across an integer.
  const double step = scale_q * scale_k / std::sqrt(static_cast<double>(d));
  double gamma = std::exp(-(static_cast<double>(margin) + 0.5) * step);
  for (int nudge = 0; nudge < 1000; ++nudge) {
    if (!(gamma > 0.0))
      throw std::range_error("gamma_for_margin: margin " + std::to_string(margin) +
                             " needs a gamma below the smallest double");
    const int64_t got = qk::latte_margin(std::min(gamma, 1.0), d, scale_q, scale_k);
    if (got == margin) return std::min(gamma, 1.0);
    // A smaller gamma gives a larger margin.
    gamma = std::nextafter(gamma, got < margin ? 0.0 : 2.0);
  }
  throw std::range_error("gamma_for_margin: no double gamma gives margin " + std::to_string(margin));
}

// ---- margin profile ----------------------------------------------------------------------

namespace {

// A multiset of gaps as (value, count) pairs, values ascending and distinct.
using GapCounts = std::vector<std::pair<int64_t, uint64_t>>;

GapCounts merge_counts(const GapCounts& a, const GapCounts& b) {
  GapCounts out;
  out.reserve(a.size() + b.size());
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (j == b.size() || (i < a.size() && a[i].first < b[j].first)) {
      out.push_back(a[i++]);
    } else if (i == a.size() || b[j].first < a[i].first) {
      out.push_back(b[j++]);
    } else {
      out.emplace_back(a[i].first, a[i].second + b[j].second);
      ++i, ++j;
    }
  }
  return out;
}

// Sorts `gaps`, folds it into `counts` and empties it.
void fold_gaps(std::vector<int64_t>& gaps, GapCounts& counts) {
  std::sort(gaps.begin(), gaps.end());
  GapCounts run;
  for (const int64_t g : gaps) {
    if (run.empty() || run.back().first != g)
      run.emplace_back(g, 1);
    else
      ++run.back().second;
  }
  counts = merge_counts(counts, run);
  gaps.clear();
}

// Appends the gaps m - e_ij of one row, m the running maximum at the end of each key's
// reuse-buffer segment: exactly the quantity qk::latte_filter compares with the margin.
void append_row_gaps(const QkSetup& s, const HeadWork& w, const HeadCandidates& rows, const int16_t* k_msb,
                     int row, std::vector<int32_t>& candidates, std::vector<int64_t>& estimates,
                     std::vector<int64_t>& gaps) {
  const int d = w.d();
  rows.row(row, candidates);
  const int n = static_cast<int>(candidates.size());
  const int16_t* q = w.data().q.data() + static_cast<size_t>(row) * d;
  estimates.resize(n);
  for (int j = 0; j < n; ++j)
    estimates[j] = qk::dot(q, k_msb + static_cast<size_t>(candidates[j]) * d, d, w.wide);
  const int entries = s.reuse.entries;
  int64_t running_max = std::numeric_limits<int64_t>::min();
  for (int begin = 0; begin < n; begin += entries) {
    const int end = std::min(n, begin + entries);
    for (int j = begin; j < end; ++j) running_max = std::max(running_max, estimates[j]);
    for (int j = begin; j < end; ++j) gaps.push_back(running_max - estimates[j]);
  }
}

GapCounts row_range_gaps(const QkSetup& s, const HeadWork& w, const HeadCandidates& rows, const int16_t* k_msb,
                         int begin, int end) {
  GapCounts counts;
  std::vector<int32_t> candidates;
  std::vector<int64_t> estimates, gaps;
  constexpr int kRowsPerFold = 64;  // bounds the scratch to 64 rows of gaps
  for (int i = begin; i < end; ++i) {
    append_row_gaps(s, w, rows, k_msb, i, candidates, estimates, gaps);
    if ((i - begin + 1) % kRowsPerFold == 0) fold_gaps(gaps, counts);
  }
  fold_gaps(gaps, counts);
  return counts;
}

int effective_threads(int threads) {
  if (threads > 0) return threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

uint64_t MarginProfile::filtered_at(int64_t margin) const {
  // The last distinct gap <= margin decides.
  const auto it = std::upper_bound(gaps.begin(), gaps.end(), margin);
  if (it == gaps.begin()) return candidates;
  return candidates - kept[static_cast<size_t>(it - gaps.begin()) - 1];
}

int64_t MarginProfile::plateau_top(size_t plateau) const {
  return plateau + 1 < gaps.size() ? gaps[plateau + 1] - 1 : gaps.back();
}

size_t MarginProfile::closest_plateau(double ratio) const {
  const auto ratio_on = [&](size_t k) { return static_cast<double>(filtered_on(k)) / candidates; };
  // Ratios fall as k grows: find the first plateau at or below the target...
  size_t lo = 0, hi = gaps.size() - 1;  // the last plateau keeps every key: ratio 0
  if (ratio_on(hi) > ratio) return hi;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (ratio_on(mid) <= ratio)
      hi = mid;
    else
      lo = mid + 1;
  }
  // ...and compare it with the one before (above the target); ties keep the larger margin.
  if (lo > 0 && ratio_on(lo - 1) - ratio < ratio - ratio_on(lo)) return lo - 1;
  return lo;
}

MarginProfile margin_profile(const QkSetup& s, const CandidateGenerator& generator, const HeadWork& w,
                             int threads) {
  const HeadData& data = w.data();
  std::vector<int16_t> k_msb(data.k.size());
  qk::msb_truncate(data.k.data(), data.k.size(), s.qk.bits, s.qk.estimate_bits, k_msb.data());
  HeadWork work_view;  // w with the accumulator width the head model would choose
  work_view.layer = w.layer;
  work_view.head = w.head;
  work_view.wide = qk::needs_wide_accumulator(s.qk.bits, w.d());
  if (generator.uses_dequantized_rows()) dequantize_rows(work_view);
  const std::unique_ptr<HeadCandidates> rows = generator.for_head(work_view);

  const int n = w.n();
  const int parts = std::max(1, std::min(effective_threads(threads), n / 16));
  std::vector<GapCounts> counts(parts);
  if (parts == 1) {
    counts[0] = row_range_gaps(s, work_view, *rows, k_msb.data(), 0, n);
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < parts; ++t)
      pool.emplace_back([&, t] {
        counts[t] = row_range_gaps(s, work_view, *rows, k_msb.data(), n * t / parts, n * (t + 1) / parts);
      });
    for (auto& th : pool) th.join();
  }
  GapCounts all;
  for (const GapCounts& c : counts) all = merge_counts(all, c);

  MarginProfile p;
  p.gaps.reserve(all.size());
  p.kept.reserve(all.size());
  for (const auto& [gap, count] : all) {
    p.candidates += count;
    p.gaps.push_back(gap);
    p.kept.push_back(p.candidates);
  }
  return p;
}

// ---- calibration -------------------------------------------------------------------------

namespace {

constexpr double kOverallTolerance = 0.01;  // the promise of docs/calibrate.md

struct HeadGeometry {
  int d = 1;
  double scale_q = 1, scale_k = 1;
};

struct HeadMeasure {
  uint64_t candidates = 0, filtered = 0;
  double rel_error = 0;
};

// Layer l as `attnsim run` loads it. The trace's float copies are dropped: they only feed
// quant_error, which calibration does not use.
std::shared_ptr<LayerContext> load_context(const Config& c, const RunPlan& plan, const Trace& trace, int l) {
  auto ctx = std::make_shared<LayerContext>();
  ctx->view = trace.layer(l, c.qk_unit.bits);
  ctx->causal = trace.causal();
  for (HeadData& h : ctx->view.head) {
    std::vector<float>().swap(h.q_float);
    std::vector<float>().swap(h.k_float);
    std::vector<float>().swap(h.v_float);
  }
  ctx->margin.assign(ctx->view.heads, 0);
  ctx->theta.assign(ctx->view.heads, 0);
  load_mechanisms(plan, trace, l, *ctx);
  return ctx;
}

// Runs the simulator's functional model on one head at `margin` and sums its outcome the
// way sim/metrics.cpp does (rows in order).
HeadMeasure measure_head(const HeadModel& model, const std::shared_ptr<LayerContext>& ctx, int head,
                         int64_t margin) {
  ctx->margin[head] = margin;
  HeadWork w;
  w.layer = ctx;
  w.head = head;
  model.compute(w);
  HeadMeasure m;
  double err_sq = 0, ref_sq = 0;
  for (const RowOutcome& o : w.rows) {
    m.candidates += o.candidates;
    m.filtered += o.candidates - o.survivors;
    err_sq += o.err_sq;
    ref_sq += o.ref_sq;
  }
  m.rel_error = ref_sq == 0 ? 0.0 : std::sqrt(err_sq / ref_sq);
  return m;
}

// rel_error target: the smallest plateau (most filtering) whose rel_error <= target, by
// bisection over plateaus assuming rel_error falls as the margin grows. The last plateau
// keeps every key and is exact (rel_error 0), so the answer always meets the target, and
// the plateau just below it (if any) was measured above the target.
size_t plateau_for_rel_error(const HeadModel& model, const std::shared_ptr<LayerContext>& ctx, int head,
                             const MarginProfile& p, double target) {
  const auto rel_error_on = [&](size_t k) { return measure_head(model, ctx, head, p.gaps[k]).rel_error; };
  if (rel_error_on(0) <= target) return 0;
  size_t lo = 0, hi = p.plateaus() - 1;
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    if (rel_error_on(mid) <= target)
      hi = mid;
    else
      lo = mid;
  }
  return hi;
}

using Plateaus = std::vector<std::vector<size_t>>;
using Profiles = std::vector<std::vector<MarginProfile>>;

Plateaus closest_plateaus(const Profiles& profiles, double ratio) {
  Plateaus out(profiles.size());
  for (size_t l = 0; l < profiles.size(); ++l)
    for (const MarginProfile& p : profiles[l]) out[l].push_back(p.closest_plateau(ratio));
  return out;
}

double overall_filtered_ratio(const Profiles& profiles, const Plateaus& chosen) {
  uint64_t filtered = 0, candidates = 0;
  for (size_t l = 0; l < profiles.size(); ++l)
    for (size_t h = 0; h < profiles[l].size(); ++h) {
      filtered += profiles[l][h].filtered_on(chosen[l][h]);
      candidates += profiles[l][h].candidates;
    }
  return candidates ? static_cast<double>(filtered) / candidates : 0.0;
}

// Second pass for filtered_ratio: every head aims at target + shift, with the shift found
// by bisection so that the overall ratio (non-decreasing in the shift) is closest to the
// target. Returns the shift.
double shift_for_overall(const Profiles& profiles, double target) {
  const auto overall = [&](double shift) {
    return overall_filtered_ratio(profiles, closest_plateaus(profiles, target + shift));
  };
  double lo = -1.0, hi = 1.0;  // per-head targets <= 0 keep everything; >= 1 filter the most
  if (overall(hi) <= target) return hi;
  for (int i = 0; i < 60; ++i) {
    const double mid = 0.5 * (lo + hi);
    (overall(mid) < target ? lo : hi) = mid;
  }
  return std::abs(overall(hi) - target) < std::abs(overall(lo) - target) ? hi : lo;
}

// The margin to write for plateau k: its top (most slack on unseen data), lowered if
// gamma could not express it (gamma >= DBL_MIN); error if the plateau is out of reach.
int64_t margin_for_plateau(const MarginProfile& p, size_t k, const HeadGeometry& g, int layer, int head) {
  const int64_t cap = qk::latte_margin(DBL_MIN, g.d, g.scale_q, g.scale_k);
  const int64_t margin = std::min(p.plateau_top(k), cap);
  if (margin < p.gaps[k])
    throw SimulationError("calibrate: layer " + std::to_string(layer) + " head " + std::to_string(head) +
                          ": margin " + std::to_string(p.gaps[k]) + " is beyond what a gamma can express");
  return margin;
}

void require_latte(const Config& c) {
  if (c.qk_unit.mode != QkMode::latte)
    c.fail("qk_unit.mode",
                 "calibrate tunes the LATTE threshold and needs \"latte\", got \"" +
                     choice_name(qk_modes(), c.qk_unit.mode) + "\"");
}

// The config shapes that `attnsim run` checks, with the gammas still to be found.
RunPlan require_fits(const Config& c, const Trace& trace) {
  Config probe = c;
  probe.comparator.gamma = 1.0;
  probe.comparator.margin = json();
  return plan_run(probe, trace);
}

json gamma_lists(const std::vector<std::vector<HeadCalibration>>& heads) {
  json lists = json::array();
  for (const auto& layer : heads) {
    json row = json::array();
    for (const HeadCalibration& h : layer) row.push_back(h.gamma);
    lists.push_back(row);
  }
  return lists;
}

// Re-reads the written config the way `attnsim run` will and checks that every head gets
// back its calibrated margin.
void verify_written_config(const CalibrationResult& r, const Trace& trace,
                           const std::vector<std::vector<HeadGeometry>>& geometry) {
  const Config c = resolve_config(r.config, "<calibrated>");
  const RunPlan plan = plan_run(c, trace);
  for (size_t l = 0; l < r.heads.size(); ++l)
    for (size_t h = 0; h < r.heads[l].size(); ++h) {
      const HeadGeometry& g = geometry[l][h];
      if (qk::latte_margin(plan.gamma[l][h], g.d, g.scale_q, g.scale_k) != r.heads[l][h].margin)
        throw std::logic_error("calibrate: internal error: gamma of layer " + std::to_string(l) + " head " +
                               std::to_string(h) + " does not reproduce its margin");
    }
}

}  // namespace

CalibrationResult calibrate(const Config& config, const Trace& trace, const CalibrationTarget& target,
                            int threads) {
  require_latte(config);
  const RunPlan plan = require_fits(config, trace);
  const QkSetup qk = config.qk_setup();
  // The run's own candidates and low-rank unit: the figures are those `attnsim run` gives.
  const std::unique_ptr<CandidateGenerator> generator = make_candidate_generator(config.candidates.source, plan.config);
  const LowRankModel lowrank(LowRankParams::table().from(plan.config.at("lowrank_unit")));
  const ExactAttentionQuality quality;
  const HeadModel model(qk, *generator, config.lowrank_unit.enabled ? &lowrank : nullptr, &quality,
                        effective_threads(threads));
  const int layers = trace.layers();

  CalibrationResult r;
  r.target = target;
  r.heads.resize(layers);
  Profiles profiles(layers);
  Plateaus chosen(layers);
  std::vector<std::vector<HeadGeometry>> geometry(layers);

  // Pass 1: per head, the plateau that meets the global target on its own.
  for (int l = 0; l < layers; ++l) {
    const std::shared_ptr<LayerContext> ctx = load_context(config, plan, trace, l);
    for (int h = 0; h < ctx->view.heads; ++h) {
      HeadWork w;
      w.layer = ctx;
      w.head = h;
      profiles[l].push_back(margin_profile(qk, *generator, w, threads));
      const MarginProfile& p = profiles[l].back();
      geometry[l].push_back({ctx->view.d, ctx->view.head[h].scale_q, ctx->view.head[h].scale_k});
      chosen[l].push_back(target.metric == CalibrationMetric::FilteredRatio
                              ? p.closest_plateau(target.value)
                              : plateau_for_rel_error(model, ctx, h, p, target.value));
    }
  }

  // Pass 2 (filtered_ratio only): shift the per-head targets if the overall ratio misses.
  if (target.metric == CalibrationMetric::FilteredRatio &&
      std::abs(overall_filtered_ratio(profiles, chosen) - target.value) > kOverallTolerance) {
    const double shift = shift_for_overall(profiles, target.value);
    const Plateaus shifted = closest_plateaus(profiles, target.value + shift);
    if (std::abs(overall_filtered_ratio(profiles, shifted) - target.value) <
        std::abs(overall_filtered_ratio(profiles, chosen) - target.value)) {
      chosen = shifted;
      r.passes = 2;
      r.target_shift = shift;
    }
  }

  // Final pass: the chosen margins, measured by the functional model that `attnsim run` uses.
  uint64_t filtered = 0, candidates = 0;
  double rel_sum = 0;
  int head_count = 0;
  for (int l = 0; l < layers; ++l) {
    const std::shared_ptr<LayerContext> ctx = load_context(config, plan, trace, l);
    for (int h = 0; h < ctx->view.heads; ++h) {
      const MarginProfile& p = profiles[l][h];
      HeadCalibration hc;
      hc.layer = l;
      hc.head = h;
      hc.head_target = target.metric == CalibrationMetric::FilteredRatio ? target.value + r.target_shift
                                                                         : target.value;
      hc.plateaus = p.plateaus();
      hc.margin = margin_for_plateau(p, chosen[l][h], geometry[l][h], l, h);
      hc.gamma = gamma_for_margin(hc.margin, geometry[l][h].d, geometry[l][h].scale_q, geometry[l][h].scale_k);
      const HeadMeasure m = measure_head(model, ctx, h, hc.margin);
      if (m.candidates != p.candidates || m.filtered != p.filtered_at(hc.margin))
        throw std::logic_error("calibrate: internal error: the margin profile of layer " + std::to_string(l) +
                               " head " + std::to_string(h) + " disagrees with the QK unit model");
      hc.candidates = m.candidates;
      hc.filtered = m.filtered;
      hc.rel_error = m.rel_error;
      filtered += m.filtered;
      candidates += m.candidates;
      rel_sum += m.rel_error;
      ++head_count;
      r.heads[l].push_back(hc);
    }
  }
  r.filtered_ratio = candidates ? static_cast<double>(filtered) / candidates : 0.0;
  r.rel_error = head_count ? rel_sum / head_count : 0.0;

  r.config = config.resolved;
  r.config["comparator"]["gamma"] = gamma_lists(r.heads);
  r.config["comparator"].erase("margin");
  verify_written_config(r, trace, geometry);
  return r;
}

std::string calibration_report(const CalibrationResult& r) {
  std::ostringstream os;
  char line[200];
  std::snprintf(line, sizeof line, "%5s %4s  %-12s %10s %9s %14s %10s\n", "layer", "head", "gamma", "margin",
                "plateaus", "filtered_ratio", "rel_error");
  os << line;
  for (const auto& layer : r.heads)
    for (const HeadCalibration& h : layer) {
      std::snprintf(line, sizeof line, "%5d %4d  %-12.6g %10lld %9zu %14.4f %10.5f\n", h.layer, h.head, h.gamma,
                    static_cast<long long>(h.margin), h.plateaus, h.filtered_ratio(), h.rel_error);
      os << line;
    }
  const char* metric = calibration_metric_name(r.target.metric);
  std::snprintf(line, sizeof line, "overall   filtered_ratio %.4f, rel_error %.5f (mean over heads)\n",
                r.filtered_ratio, r.rel_error);
  os << line;
  std::snprintf(line, sizeof line, "target    %s = %.4g, achieved %.5f (%+.5f)", metric, r.target.value,
                r.achieved(), r.achieved() - r.target.value);
  os << line;
  if (r.passes == 2) {
    std::snprintf(line, sizeof line, "; per-head targets shifted by %+.5f in a second pass", r.target_shift);
    os << line;
  }
  os << "\n";
  return os.str();
}

}  // namespace attnsim
