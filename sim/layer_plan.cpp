#include "sim/layer_plan.h"

#include "arch/dma.h"
#include "arch/qk_math.h"
#include "arch/skim_math.h"

#include <cmath>
#include <sstream>
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

int resolve_d_model(const Config& c, const Trace& trace) {
  if (c.model.d_model > 0) return c.model.d_model;
  if (const int v = metadata_int(trace, "d_model")) return v;
  return trace.shape(0).heads * trace.shape(0).d;
}

int resolve_d_ff(const Config& c, const Trace& trace, int d_model) {
  if (c.model.d_ff > 0) return c.model.d_ff;
  if (const int v = metadata_int(trace, "d_ff")) return v;
  return 4 * d_model;
}

void check_skim_fits_trace(const Config& c, const Trace& trace) {
  const SkimMode mode = c.skim_controller.mode;
  if (mode == SkimMode::off) return;
  for (int l = 1; l < trace.layers(); ++l)
    if (trace.shape(l).n != trace.shape(0).n || trace.shape(l).m != trace.shape(l).n)
      c.fail("skim_controller.mode",
                   "skimming needs self-attention layers with the same token count (layer " +
                       std::to_string(l) + " differs)");
  if (mode == SkimMode::fca && trace.causal())
    c.fail("skim_controller.mode", "fca needs a bidirectional trace: coarse tokens have no causal position");
  if (mode != SkimMode::transkimmer) return;
  for (int l = 0; l < trace.layers(); ++l) {
    const std::string layer = "layers." + std::to_string(l) + ".";
    if (c.skim_controller.source == SkimSource::trace && !trace.file().has(layer + "skim_keep"))
      c.fail("skim_controller.source",
                   "\"trace\" needs " + layer + "skim_keep in " + trace.path() + ", which has none");
    if (c.skim_controller.source == SkimSource::predictor && (!trace.has_predictor(l) || !trace.has_hidden(l)))
      c.fail("skim_controller.source",
                   "\"predictor\" needs " + layer + "hidden and " + layer + "skim_predictor.* in " +
                       trace.path());
    // The predictor's cost, the forwarded hidden states and the GEMMs all use D.
    if (c.skim_controller.source == SkimSource::predictor && trace.hidden_size(l) != resolve_d_model(c, trace))
      c.fail("model.d_model",
                   "is " + std::to_string(resolve_d_model(c, trace)) + ", but " + layer + "hidden in " +
                       trace.path() + " has D = " + std::to_string(trace.hidden_size(l)));
  }
}

// The comparator's per-head values, one [layer][head] table each.
void resolve_thresholds(const Config& c, const Trace& trace, RunPlan& plan) {
  const bool margin_given = !c.comparator.margin.is_null();
  for (int l = 0; l < trace.layers(); ++l) {
    const int heads = trace.shape(l).heads;
    plan.gamma.emplace_back();
    plan.theta.emplace_back();
    if (margin_given) plan.margin.emplace_back();
    for (int h = 0; h < heads; ++h) {
      plan.gamma.back().push_back(
          per_head_value(c.comparator.gamma, l, h, trace.layers(), heads, c.origin_of("comparator.gamma"), "comparator.gamma"));
      plan.theta.back().push_back(static_cast<int64_t>(
          per_head_value(c.comparator.theta, l, h, trace.layers(), heads, c.origin_of("comparator.theta"), "comparator.theta")));
      if (margin_given)
        plan.margin.back().push_back(static_cast<int64_t>(
            per_head_value(c.comparator.margin, l, h, trace.layers(), heads, c.origin_of("comparator.margin"), "comparator.margin")));
    }
  }
}

// Heads the SRAM holds at once: two (double buffering) plus one per head-level stage
// between the DMA and the QK unit (the tree engine or LSH unit, the low-rank key side),
// as many as fit of the largest head. When not one fits (or kv_tiling.mode is "always")
// the run is K/V-tiled (resolve_tiling) and has one slot.
int sram_slots(const Config& c, const Trace& trace, bool& unfit) {
  const SramBuffers sram(c.sram);
  const int stages = (c.candidates.source == "tree" || c.candidates.source == "lsh" ? 1 : 0) +
                     (c.lowrank_unit.enabled ? 1 : 0);
  const int wanted = 2 + stages;
  int slots = wanted;
  unfit = false;
  for (int l = 0; l < trace.layers(); ++l) {
    const LayerShape& s = trace.shape(l);
    const uint64_t bits = head_bits(s.n, s.m, s.d, c.qk_unit.bits);
    if (sram.slots_for(bits) == 0) {
      unfit = true;
      continue;
    }
    slots = std::min(slots, sram.slots_for(bits, wanted));
  }
  return slots;
}

// K/V tiling geometry (arch/kv_tiling.h), and what a tiled run rules out.
KvTiling resolve_tiling(const Config& c, const Trace& trace, bool unfit) {
  KvTiling t;
  if (!unfit && c.kv_tiling.mode != TilingMode::always) return t;
  int d = 1, n = 1, m = 1, unfit_layer = -1;
  const SramBuffers sram(c.sram);
  for (int l = 0; l < trace.layers(); ++l) {
    const LayerShape& s = trace.shape(l);
    d = std::max(d, s.d), n = std::max(n, s.n), m = std::max(m, s.m);
    if (unfit_layer < 0 && sram.slots_for(head_bits(s.n, s.m, s.d, c.qk_unit.bits)) == 0) unfit_layer = l;
  }
  // Why the run is tiled, for the messages below.
  std::ostringstream why;
  if (unfit_layer >= 0) {
    const LayerShape& s = trace.shape(unfit_layer);
    why << " when heads are K/V-tiled (a head of layer " << unfit_layer << " needs "
        << ceil_div(head_bits(s.n, s.m, s.d, c.qk_unit.bits), 8 * 1024) << " KiB, sram.capacity_kib is "
        << c.sram.capacity_kib << ")";
  } else {
    why << " when heads are K/V-tiled (kv_tiling.mode is \"always\")";
  }
  if (c.candidates.source != "all") c.fail("candidates.source", "must be \"all\"" + why.str());
  if (c.lowrank_unit.enabled) c.fail("lowrank_unit.enabled", "must be false" + why.str());
  if (c.skim_controller.mode == SkimMode::fca) c.fail("skim_controller.mode", "must not be \"fca\"" + why.str());
  const int entries = c.reuse_buffer.entries;
  const int key_tile = c.kv_tiling.key_tile.value_or(entries);
  if (c.qk_unit.mode == QkMode::latte && key_tile % entries != 0)
    c.fail("kv_tiling.key_tile", "must be a multiple of reuse_buffer.entries (" + std::to_string(entries) +
                                     ") in latte mode, so that no segment straddles two tiles, got " +
                                     std::to_string(key_tile));
  const uint64_t bits = c.qk_unit.bits;
  const uint64_t keys = static_cast<uint64_t>(std::min(key_tile, m));
  const uint64_t tile_bits = 2 * keys * d * bits;
  const uint64_t state_bits = static_cast<uint64_t>(d) * c.av_unit.output_bits + 32 * kRowStateWords;
  const uint64_t row_bits = static_cast<uint64_t>(d) * bits + state_bits;
  const uint64_t capacity = sram.capacity_bits();
  // A Q block holds whole query blocks of qk_unit.query_block rows (Qb).
  const uint64_t qb = static_cast<uint64_t>(c.qk_unit.query_block);
  const uint64_t least = std::min<uint64_t>(qb, n);
  if (tile_bits + least * row_bits > capacity) {
    std::ostringstream msg;
    msg << "too small for one K/V tile of " << keys << " keys and "
        << (least == 1 ? std::string("one query row") : std::to_string(least) + " query rows (qk_unit.query_block)")
        << " (need " << ceil_div(tile_bits + least * row_bits, 8 * 1024) << " KiB, have " << c.sram.capacity_kib
        << ")";
    c.fail(c.kv_tiling.key_tile ? "kv_tiling.key_tile" : "sram.capacity_kib", msg.str());
  }
  const uint64_t probe = c.kv_tiling.query_tile ? static_cast<uint64_t>(*c.kv_tiling.query_tile)
                                                : std::min<uint64_t>(n, std::max(keys, qb));
  t.on = true;
  t.key_tile = key_tile;
  t.tile_buffers = 2 * tile_bits + probe * row_bits <= capacity ? 2 : 1;
  t.row_state_bits = static_cast<int>(state_bits);
  if (c.kv_tiling.query_tile) {
    const uint64_t rows = static_cast<uint64_t>(*c.kv_tiling.query_tile);
    if (tile_bits + rows * row_bits > capacity) {
      std::ostringstream msg;
      msg << "too large: one K/V tile of " << keys << " keys and " << rows << " query rows need "
          << ceil_div(tile_bits + rows * row_bits, 8 * 1024) << " KiB, sram.capacity_kib is " << c.sram.capacity_kib;
      c.fail("kv_tiling.query_tile", msg.str());
    }
    if (rows % qb != 0 && rows < static_cast<uint64_t>(n))
      c.fail("kv_tiling.query_tile", "must be a multiple of qk_unit.query_block (" + std::to_string(qb) +
                                         "): a Q block holds whole query blocks, got " + std::to_string(rows));
    t.query_tile = static_cast<int>(std::min<uint64_t>(rows, n));
  } else {
    const uint64_t fit = (capacity - t.tile_buffers * tile_bits) / row_bits;
    t.query_tile = static_cast<int>(std::min<uint64_t>(n, fit - fit % qb));
  }
  return t;
}

void resolve_fca_keep(const Config& c, const Trace& trace, RunPlan& plan) {
  const json& keep = c.skim_controller.keep;
  if (keep.is_number()) plan.keep_fraction = keep.get<double>();
  if (c.skim_controller.mode != SkimMode::fca) return;
  if (keep.is_array()) {
    if (static_cast<int>(keep.size()) != trace.layers())
      c.fail("skim_controller.keep",
                   "has " + std::to_string(keep.size()) + " values, the trace has " +
                       std::to_string(trace.layers()) + " layers");
    for (size_t l = 0; l < keep.size(); ++l) {
      if (!keep[l].is_number_integer())
        c.fail("skim_controller.keep", "skim_controller.keep[" + std::to_string(l) + "]",
                     "a list gives R_l, a token count: must be an integer, got " + shown(keep[l]));
      plan.keep_counts.push_back(keep[l].get<int64_t>());
    }
  }
  if (keep.is_number() && keep.get<double>() > 1.0)
    c.fail("skim_controller.keep",
                 "a single number is the fraction of each layer's tokens kept: must be <= 1, got " + shown(keep));
}

// One kind of per-head mechanism tensor (tree.{h}.w, lsh.{h}.proj, performer.{h}.w): none
// in the trace, or one for every head of every layer, all with the same number of rows.
// Returns those rows (0: none) and the first tensor's name.
struct TensorRows {
  int64_t rows = 0;
  std::string first;
};

TensorRows per_head_rows(const Trace& trace, const std::string& kind, const std::string& part, const std::string& what) {
  const auto name = [&](int l, int h) { return "layers." + std::to_string(l) + "." + kind + "." + std::to_string(h) + "." + part; };
  bool any = false;
  for (int l = 0; l < trace.layers() && !any; ++l)
    for (int h = 0; h < trace.shape(l).heads && !any; ++h) any = trace.file().has(name(l, h));
  TensorRows r;
  if (!any) return r;
  for (int l = 0; l < trace.layers(); ++l)
    for (int h = 0; h < trace.shape(l).heads; ++h) {
      const std::string n = name(l, h);
      if (!trace.file().has(n))
        throw TraceError(trace.path() + ": " + n + ": missing (the trace has " + what +
                         " for other heads; every head of every layer needs one)");
      const int64_t rows = trace.file().info(n).shape[0];
      if (r.first.empty()) {
        r.rows = rows;
        r.first = n;
      } else if (rows != r.rows) {
        throw TraceError(trace.path() + ": " + n + ": " + std::to_string(rows) + " rows, but " + r.first + " has " +
                         std::to_string(r.rows) + " (one " + what + " size per trace)");
      }
    }
  return r;
}

// A size the config may give and the trace may fix: the config's must agree with the
// trace's; without either, the default.
int agreed_size(const Config& c, const std::optional<int>& configured, int from_trace, const std::string& key,
                const std::string& trace_what, int fallback) {
  if (configured && from_trace && *configured != from_trace)
    c.fail(key, "is " + std::to_string(*configured) + ", but " + trace_what + " " + std::to_string(from_trace));
  if (configured) return *configured;
  return from_trace ? from_trace : fallback;
}

int depth_of_rows(int64_t rows) {
  int depth = 0;
  while ((int64_t{1} << depth) - 1 < rows) ++depth;
  return depth;
}

// tree_engine.depth, lsh_unit.rounds, lowrank_unit.features: from the config, else from the
// trace's tensors, else the defaults; written into plan.config.
void resolve_mechanisms(const Config& c, const Trace& trace, RunPlan& plan) {
  const std::string& source = c.candidates.source;
  plan.config = c.resolved;
  int depth = 0, rounds = 0, features = 0;
  if (source == "tree") {
    const TensorRows t = per_head_rows(trace, "tree", "w", "Treeformer trees");
    plan.trace_trees = t.rows > 0;
    if (plan.trace_trees) depth = depth_of_rows(t.rows);
    depth = agreed_size(c, c.tree_engine.depth, depth, "tree_engine.depth",
                        "the trace's trees (" + t.first + ") have depth", TreeEngineParams::kDefaultDepth);
  }
  if (source == "lsh") {
    const TensorRows t = per_head_rows(trace, "lsh", "proj", "LSH directions");
    plan.trace_lsh = t.rows > 0;
    rounds = agreed_size(c, c.lsh_unit.rounds, static_cast<int>(t.rows), "lsh_unit.rounds",
                         "the trace's LSH directions (" + t.first + ") number", LshUnitParams::kDefaultRounds);
  }
  if (c.lowrank_unit.enabled) {
    const TensorRows t = per_head_rows(trace, "performer", "w", "Performer matrices");
    plan.trace_performer = t.rows > 0;
    features = agreed_size(c, c.lowrank_unit.features, static_cast<int>(2 * t.rows), "lowrank_unit.features",
                           "the trace's Performer matrices (" + t.first + ") give m = 2 x rows =",
                           LowRankParams::kDefaultFeatures);
  }
  plan.config["tree_engine"]["depth"] = depth ? depth : c.tree_engine.depth.value_or(TreeEngineParams::kDefaultDepth);
  plan.config["lsh_unit"]["rounds"] = rounds ? rounds : c.lsh_unit.rounds.value_or(LshUnitParams::kDefaultRounds);
  plan.config["lowrank_unit"]["features"] =
      features ? features : c.lowrank_unit.features.value_or(LowRankParams::kDefaultFeatures);
  // The lanes' width: as given, else the head dimension (a whole plane per cycle; the
  // default is the trace's shape, not a decision, so it is not listed in from_trace).
  const int head_dim = trace.layers() > 0 ? trace.shape(0).d : 0;
  plan.config["qk_unit"]["lane_width"] = c.qk_unit.lane_width.value_or(head_dim);
  // The lanes' static power: W / d of a head-wide lane, Qb adder trees each.
  plan.qk_lane_fraction = static_cast<double>(c.qk_unit.lane_width.value_or(head_dim)) / std::max(1, head_dim) *
                          c.qk_unit.query_block;
  if (plan.trace_trees && !c.tree_engine.depth) plan.from_trace["tree_engine.depth"] = depth;
  if (plan.trace_lsh && !c.lsh_unit.rounds) plan.from_trace["lsh_unit.rounds"] = rounds;
  if (plan.trace_performer && !c.lowrank_unit.features) plan.from_trace["lowrank_unit.features"] = features;
}

int64_t resolve_margin(const RunPlan& plan, int l, int h, const HeadData& head, int d) {
  if (!plan.margin.empty()) return plan.margin[l][h];
  return qk::latte_margin(plan.gamma[l][h], d, head.scale_q, head.scale_k);
}

}  // namespace

// A query block of more rows than a layer has queries is a config that cannot be what
// the user meant (its rows would never fill it).
void check_query_block(const Config& c, const Trace& trace) {
  for (int l = 0; l < trace.layers(); ++l)
    if (c.qk_unit.query_block > trace.shape(l).n)
      c.fail("qk_unit.query_block", "must be <= N, the layer's queries (layer " + std::to_string(l) + " of " +
                                        trace.path() + " has N = " + std::to_string(trace.shape(l).n) + "), got " +
                                        std::to_string(c.qk_unit.query_block));
}

// With K-buffer ports the independent lanes would read different keys every cycle: a
// cycle-by-cycle arbitration the model does not do (yet); refuse rather than guess.
void check_sram_ports(const Config& c) {
  // With ports modelled a bank access holds whole elements of B bits: a width that does not
  // divide into them would split an element between two accesses (the rules count a row's
  // accesses as ceil(d B / width_bits)). Without ports rows are bit-packed, any width works.
  if (c.sram.ports && c.sram.width_bits % c.qk_unit.bits != 0)
    c.fail("sram.width_bits", "must be a multiple of qk_unit.bits (" + std::to_string(c.qk_unit.bits) +
                                  "-bit elements), got " + std::to_string(c.sram.width_bits));
  if (c.sram.ports && c.qk_unit.mode == QkMode::early_term && c.qk_unit.lane_sync == LaneSync::independent)
    c.fail("sram.ports", "not modelled with early_term and qk_unit.lane_sync = \"independent\" (each lane reads "
                         "a different key every cycle); use \"lockstep\" or leave sram.ports out");
}

RunPlan plan_run(const Config& c, const Trace& trace) {
  check_skim_fits_trace(c, trace);
  check_query_block(c, trace);
  check_sram_ports(c);
  RunPlan plan;
  resolve_mechanisms(c, trace, plan);
  bool unfit = false;
  plan.sram_slots = sram_slots(c, trace, unfit);
  plan.tiling = resolve_tiling(c, trace, unfit);
  if (plan.tiling.on) {
    plan.sram_slots = 1;  // a tiled head's Q block and K/V tiles fill the SRAM
    // The tile sizes the run took for absent keys (the stats list them in config_from_trace).
    if (!c.kv_tiling.key_tile) plan.from_trace["kv_tiling.key_tile"] = plan.tiling.key_tile;
    if (!c.kv_tiling.query_tile) plan.from_trace["kv_tiling.query_tile"] = plan.tiling.query_tile;
  }
  resolve_thresholds(c, trace, plan);
  resolve_fca_keep(c, trace, plan);
  // A bad metadata value is an error before the run, whether or not the GEMMs need it.
  plan.d_model = resolve_d_model(c, trace);
  plan.d_ff = resolve_d_ff(c, trace, plan.d_model);
  for (int l = 0; l < trace.layers(); ++l)
    plan.rows += static_cast<uint64_t>(trace.shape(l).heads) * trace.shape(l).n;
  return plan;
}

void load_mechanisms(const RunPlan& plan, const Trace& trace, int l, LayerContext& ctx) {
  for (int h = 0; h < trace.shape(l).heads; ++h) {
    if (plan.trace_trees) ctx.trees.push_back(trace.tree(l, h));
    if (plan.trace_lsh) ctx.lsh_directions.push_back(trace.lsh_directions(l, h));
    if (plan.trace_performer) ctx.performer.push_back(trace.performer(l, h));
  }
}

LayerPlanner::LayerPlanner(const Config& c, const Trace& trace, const RunPlan& plan, Metrics& metrics, int threads)
    : c_(c), trace_(trace), plan_(plan), metrics_(metrics), threads_(std::max(1, threads)) {
  map_ = skim::identity_map(trace.shape(0).n);
}

std::vector<uint8_t> LayerPlanner::transkimmer_keep(int l, const LayerView& full) {
  if (c_.skim_controller.source == SkimSource::trace)
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
  auto full = std::make_shared<LayerView>(trace_.layer(l, bits, threads_));
  metrics_.begin_layer(l, full->heads, full->n, full->m, trace_.causal());

  const SkimMode mode = c_.skim_controller.mode;
  if (mode == SkimMode::transkimmer) {
    const int before = static_cast<int>(map_.size());
    const std::vector<uint8_t> keep = transkimmer_keep(l, *full);
    skim::TokenMap next;
    for (size_t i = 0; i < map_.size(); ++i)
      if (keep[i]) next.push_back(map_[i]);
    map_ = std::move(next);
    start.skim_job = true;
    start.job.layer = l;
    start.job.d_model = plan_.d_model;
    start.job.tokens_scanned = before;
    start.job.tokens_forwarded = before - static_cast<int>(map_.size());
    if (c_.skim_controller.source == SkimSource::predictor) {
      if (c_.skim_controller.predictor_unit == PredictorUnit::dedicated)
        start.job.predictor_macs = skim::predictor_macs(before, plan_.d_model);
      else
        start.predictor_tokens = before;
    }
  }

  auto ctx = std::make_shared<LayerContext>();
  if (skim::is_identity(map_, full->n)) {
    ctx->view = std::move(*full);  // nothing reads `full` after this: no copy of the layer
  } else {
    ctx->view = trace_.layer_mixed(l, bits, map_, threads_);
    ctx->full = full;
    ctx->map = map_;
  }
  ctx->causal = trace_.causal();
  const LayerView& v = ctx->view;
  for (int h = 0; h < v.heads; ++h) {
    ctx->margin.push_back(resolve_margin(plan_, l, h, v.head[h], v.d));
    ctx->theta.push_back(plan_.theta[l][h]);
  }
  load_mechanisms(plan_, trace_, l, *ctx);
  if (mode == SkimMode::fca) ctx->abar = std::make_shared<std::vector<double>>(static_cast<size_t>(v.n) * v.n, 0.0);
  start.active = v.n;
  active_.push_back(v.n);
  start.context = ctx;
  current_ = ctx;
  return start;
}

int LayerPlanner::fca_keep_count(int l, int n) const {
  skim::KeepRule rule;
  rule.per_layer = !plan_.keep_counts.empty();
  rule.counts = plan_.keep_counts;
  rule.fraction = plan_.keep_fraction;
  return skim::fca_keep_count(rule, l, n);
}

LayerEnd LayerPlanner::end_layer(int l) {
  LayerEnd end;
  const int n = current_->view.n;
  end.tokens_after = n;
  if (c_.skim_controller.mode == SkimMode::fca) {
    const std::vector<double> scores = skim::fca_scores(current_->abar->data(), n);
    const int r = fca_keep_count(l, n);
    const skim::FcaSelection sel = skim::fca_select(scores, r, c_.skim_controller.groups);
    map_ = skim::fca_next_map(map_, sel);
    end.tokens_after = static_cast<int>(map_.size());
    end.skim_job = true;
    end.job.layer = l;
    end.job.d_model = plan_.d_model;
    end.job.score_adds = static_cast<uint64_t>(current_->view.heads) * n * n;
    end.job.rank_ops = static_cast<uint64_t>(n) * static_cast<uint64_t>(std::ceil(std::log2(std::max(2, n))));
    uint64_t tail = 0;
    for (const auto& g : sel.groups) tail += g.size();
    end.job.pool_macs = tail * plan_.d_model;
  }
  current_.reset();
  return end;
}

}  // namespace attnsim
