#include "sim/layer_plan.h"

#include "arch/qk_math.h"
#include "arch/skim_math.h"

#include <cmath>
#include <string>

namespace attnsim {

namespace {

int metadata_int(const Trace& trace, const std::string& key) {
  const auto& md = trace.metadata();
  const auto it = md.find(key);
  if (it == md.end()) return 0;
  try {
    size_t used = 0;
    const long v = std::stol(it->second, &used);
    if (used == it->second.size() && v > 0 && v < (1L << 24)) return static_cast<int>(v);
  } catch (const std::exception&) {
  }
  throw TraceError(trace.path() + ": metadata " + key + ": must be a positive integer, got \"" + it->second + "\"");
}

int64_t resolve_margin(const Config& c, const Trace& trace, int l, int h, const HeadData& head, int d) {
  const int layers = trace.layers(), heads = trace.shape(l).heads;
  if (!c.comparator.margin.is_null())
    return static_cast<int64_t>(
        per_head_value(c.comparator.margin, l, h, layers, heads, c.origin, "comparator.margin"));
  const double gamma = per_head_value(c.comparator.gamma, l, h, layers, heads, c.origin, "comparator.gamma");
  return qk::latte_margin(gamma, d, head.scale_q, head.scale_k);
}

}  // namespace

int resolve_d_model(const Config& c, const Trace& trace) {
  if (c.model.d_model > 0) return c.model.d_model;
  if (const int v = metadata_int(trace, "d_model")) return v;
  return trace.shape(0).heads * trace.shape(0).d;
}

int resolve_d_ff(const Config& c, const Trace& trace) {
  if (c.model.d_ff > 0) return c.model.d_ff;
  if (const int v = metadata_int(trace, "d_ff")) return v;
  return 4 * resolve_d_model(c, trace);
}

LayerPlanner::LayerPlanner(const Config& c, const Trace& trace, Metrics& metrics)
    : c_(c), trace_(trace), metrics_(metrics) {
  d_model_ = resolve_d_model(c, trace);
  d_ff_ = resolve_d_ff(c, trace);
  map_ = skim::identity_map(trace.shape(0).n);
}

std::vector<uint8_t> LayerPlanner::transkimmer_keep(int l, const LayerView& full) {
  if (c_.skim_controller.source == "trace")
    return skim::cumulative_keep(map_, full.skim_keep.data(), full.n);
  // Predictor MLP on the active tokens' hidden states; token 0 stays, drops are final.
  std::vector<int32_t> ids;
  for (const skim::TokenMix& t : map_) ids.push_back(t.original);
  const std::vector<float> hidden = trace_.hidden_rows(l, ids);
  std::vector<uint8_t> keep_active =
      skim::predictor_keep(hidden.data(), static_cast<int>(ids.size()), trace_.predictor(l));
  std::vector<uint8_t> keep_original(full.n, 0);
  for (size_t i = 0; i < ids.size(); ++i) keep_original[ids[i]] = keep_active[i];
  return skim::cumulative_keep(map_, keep_original.data(), full.n);
}

LayerStart LayerPlanner::begin_layer(int l) {
  LayerStart start;
  const int bits = c_.qk_unit.bits;
  auto full = std::make_shared<LayerView>(trace_.layer(l, bits));
  metrics_.begin_layer(l, full->heads, full->n, full->m, trace_.causal());

  const std::string& mode = c_.skim_controller.mode;
  if (mode == "transkimmer") {
    const int before = static_cast<int>(map_.size());
    const std::vector<uint8_t> keep = transkimmer_keep(l, *full);
    skim::TokenMap next;
    for (size_t i = 0; i < map_.size(); ++i)
      if (keep[i]) next.push_back(map_[i]);
    map_ = std::move(next);
    start.skim_job = true;
    start.job.layer = l;
    start.job.d_model = d_model_;
    start.job.tokens_scanned = before;
    start.job.tokens_forwarded = before - static_cast<int>(map_.size());
    if (c_.skim_controller.source == "predictor") {
      if (c_.skim_controller.predictor_unit == "dedicated")
        start.job.predictor_macs = skim::predictor_macs(before, d_model_);
      else
        start.predictor_tokens = before;
    }
  }

  auto ctx = std::make_shared<LayerContext>();
  if (skim::is_identity(map_, full->n)) {
    ctx->view = *full;
  } else {
    ctx->view = trace_.layer_mixed(l, bits, map_);
    ctx->full = full;
    ctx->map = map_;
  }
  ctx->causal = trace_.causal();
  const LayerView& v = ctx->view;
  for (int h = 0; h < v.heads; ++h) {
    ctx->margin.push_back(resolve_margin(c_, trace_, l, h, v.head[h], v.d));
    ctx->theta.push_back(static_cast<int64_t>(per_head_value(
        c_.comparator.theta, l, h, trace_.layers(), v.heads, c_.origin, "comparator.theta")));
  }
  if (mode == "fca") ctx->abar = std::make_shared<std::vector<double>>(static_cast<size_t>(v.n) * v.n, 0.0);
  start.active = v.n;
  active_.push_back(v.n);
  start.context = ctx;
  current_ = ctx;
  return start;
}

int LayerPlanner::fca_keep_count(int l, int n) const {
  const json& keep = c_.skim_controller.keep;
  skim::KeepRule rule;
  if (keep.is_array()) {
    rule.per_layer = true;
    for (const json& r : keep) rule.counts.push_back(r.get<int64_t>());
  } else {
    rule.fraction = keep.get<double>();
  }
  return skim::fca_keep_count(rule, l, n);
}

LayerEnd LayerPlanner::end_layer(int l) {
  LayerEnd end;
  const int n = current_->view.n;
  end.tokens_after = n;
  if (c_.skim_controller.mode == "fca") {
    const std::vector<double> scores = skim::fca_scores(current_->abar->data(), n);
    const int r = fca_keep_count(l, n);
    const skim::FcaSelection sel = skim::fca_select(scores, r, c_.skim_controller.groups);
    map_ = skim::fca_next_map(map_, sel);
    end.tokens_after = static_cast<int>(map_.size());
    end.skim_job = true;
    end.job.layer = l;
    end.job.d_model = d_model_;
    end.job.score_adds = static_cast<uint64_t>(current_->view.heads) * n * n;
    end.job.rank_ops = static_cast<uint64_t>(n) * static_cast<uint64_t>(std::ceil(std::log2(std::max(2, n))));
    uint64_t tail = 0;
    for (const auto& g : sel.groups) tail += g.size();
    end.job.pool_macs = tail * d_model_;
  }
  current_.reset();
  return end;
}

}  // namespace attnsim
