#include "sim/masks.h"

#include "arch/tree_engine.h"
#include "core/errors.h"
#include "workloads/safetensors.h"

#include <cstdio>
#include <stdexcept>

namespace attnsim {

namespace {

constexpr const char* kEncoding =
    "layers.{l}.keep[h, i, j]: 0 = key j is not a candidate of query row i, 1 = a candidate the comparator "
    "filtered, 2 = a candidate it kept (its exact score entered the softmax); layers.{l}.tokens[i]: the "
    "original token id of row i (-1: an FCA coarse token)";

constexpr const char* kKeepOmitted =
    "omitted: tree_engine.attention = tc, rows attend to the nodes of their tree path, not to keys";

bool rows_attend_tree_nodes(const Config& c) {
  return c.candidates.source == "tree" && c.tree_engine.attention == TreeAttention::tc;
}

std::string config_text(const Config& c, const char* section, const char* key) {
  return c.resolved.at(section).at(key).get<std::string>();
}

// One head's rows of keep: row i's decisions are the m bytes at base + i * m, zero (not a
// candidate) until the row is recorded.
class HeadKeep : public HeadDecisions {
 public:
  HeadKeep(uint8_t* base, int m) : base_(base), m_(m) {}
  void record(const RowData& row) override {
    uint8_t* decisions = base_ + static_cast<size_t>(row.row) * m_;
    for (const int32_t j : row.candidates) decisions[j] = 1;
    for (const int32_t j : row.survivor_ids) decisions[j] = 2;  // survivors are candidates
  }

 private:
  uint8_t* base_;
  int m_;
};

}  // namespace

double keep_masks_bytes(const Config& config, const Trace& trace) {
  const bool keep = !rows_attend_tree_nodes(config);
  double bytes = 0;  // a double: exact far beyond the limit, and cannot overflow
  for (int l = 0; l < trace.layers(); ++l) {
    const LayerShape& s = trace.shape(l);
    bytes += 4.0 * s.n;
    if (keep) bytes += static_cast<double>(s.heads) * s.n * s.m;
  }
  return bytes;
}

KeepMasks::KeepMasks(const Config& config, const Trace& trace) : layers_(trace.layers()) {
  const double bytes = keep_masks_bytes(config, trace);
  if (bytes > static_cast<double>(kMaxBytes)) {
    char size[64];
    std::snprintf(size, sizeof size, "%.0f bytes (%.1f MiB)", bytes, bytes / (1 << 20));
    throw SimulationError("--masks: the masks of " + trace.path() + " would take " + size +
                          ", more than the 1 GiB limit (H x N x M bytes per layer)");
  }
  metadata_ = {{"source", "attnsim run --masks"},
               {"trace", trace.path()},
               {"qk_unit.mode", config_text(config, "qk_unit", "mode")},
               {"candidates.source", config.candidates.source},
               {"skim_controller.mode", config_text(config, "skim_controller", "mode")},
               {"causal", trace.causal() ? "true" : "false"},
               {"encoding", kEncoding}};
}

std::unique_ptr<HeadDecisions> KeepMasks::begin_head(const HeadWork& head) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Layer& layer = layers_.at(static_cast<size_t>(head.layer_index()));
  if (!layer.seen) {
    const LayerView& view = head.layer->view;
    layer.seen = true;
    layer.heads = view.heads;
    layer.n = view.n;
    layer.m = view.m;
    layer.tokens = view.original;
    layer.aggregates = head.candidates->attends_aggregates();
    if (!layer.aggregates) layer.keep.assign(static_cast<size_t>(layer.heads) * layer.n * layer.m, 0);
  }
  if (layer.aggregates) return nullptr;
  const size_t head_bytes = static_cast<size_t>(layer.n) * layer.m;
  return std::make_unique<HeadKeep>(layer.keep.data() + head.head * head_bytes, layer.m);
}

void KeepMasks::write(const std::string& path, const std::string& trace_sha256) {
  SafetensorsWriter w;
  bool omitted = false;
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& layer = layers_[l];
    if (!layer.seen) throw std::logic_error("--masks: layer " + std::to_string(l) + " never ran (internal error)");
    const std::string prefix = "layers." + std::to_string(l) + ".";
    w.add_i32(prefix + "tokens", {layer.n}, layer.tokens);
    if (layer.aggregates) {
      omitted = true;
      continue;
    }
    w.add(prefix + "keep", DType::U8, {layer.heads, layer.n, layer.m}, std::move(layer.keep));
  }
  for (const auto& kv : metadata_) w.set_metadata(kv.first, kv.second);
  w.set_metadata("trace_sha256", trace_sha256);
  if (omitted) w.set_metadata("keep", kKeepOmitted);
  w.write(path);
}

}  // namespace attnsim
