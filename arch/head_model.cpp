#include "arch/head_model.h"

#include "arch/attention_math.h"
#include "arch/av_unit.h"
#include "arch/qk_math.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>

namespace attnsim {

namespace {

void dequantize(const std::vector<int16_t>& x, double scale, std::vector<double>& out) {
  out.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * scale;
}

// Per-head helpers of the datapath's functions (not hardware state).
void derive_helpers(const QkSetup& s, HeadWork& w, bool dequantized_rows) {
  const HeadData& data = w.data();
  const int d = w.d(), bits = s.qk.bits;
  w.wide = qk::needs_wide_accumulator(bits, d);
  w.score_scale = data.scale_q * data.scale_k / std::sqrt(static_cast<double>(d));
  if (s.qk.mode == QkMode::latte) {
    w.k_msb.resize(data.k.size());
    qk::msb_truncate(data.k.data(), data.k.size(), bits, s.qk.estimate_bits, w.k_msb.data());
  }
  dequantize(data.v, data.scale_v, w.v_deq);
  if (dequantized_rows) {
    dequantize(data.q, data.scale_q, w.q_deq);
    dequantize(data.k, data.scale_k, w.k_deq);
  }
}

// A row that a generator attends itself (Treeformer TC): its output and how many
// aggregates it attended; the QK unit scores nothing, no key is exact, nothing filtered.
void attend_aggregates(const HeadWork& w, RowData& row, RowOutcome& out) {
  row.candidates.clear();
  row.exact.clear();
  row.survivor_ids.clear();
  row.survivor_scores.clear();
  row.probs.clear();
  row.exact_scored = 0;
  row.plain_output = false;
  row.out.resize(w.d());
  const int attended = w.candidates->attend(row.row, row.out.data());
  out.candidates = out.survivors = static_cast<uint32_t>(attended);
  out.value_rows = 0;
  out.exact_scored = 0;
  out.has_mass = false;
}

// FCA scores come from the head-mean probabilities the accelerator computed (filtered
// keys count 0); the skim controller accumulates them as the softmax produces them. Each
// row is written by one thread; heads run one after another.
void accumulate_abar(const HeadWork& w, const RowData& row) {
  std::vector<double>& abar = *w.layer->abar;
  const size_t n = static_cast<size_t>(w.n());
  const double share = 1.0 / w.layer->view.heads;
  double* out = abar.data() + static_cast<size_t>(row.row) * n;
  for (size_t j = 0; j < row.survivor_ids.size(); ++j) out[row.survivor_ids[j]] += share * row.probs[j];
}

// K/V tiling with sram.ports: each part's V reads (av_unit.h), its survivors' rows of the
// tile (key j of tile t is row j - t*key_tile of the tile's V buffer; the absolute ids give
// the same bank counts, a shift of every row only permuting the banks).
void part_av_reads(const QkSetup& s, int macs_per_cycle, int d, const RowData& row, int key_tile, int tiles,
                   TilePart* parts) {
  const std::vector<int32_t>& ids = row.survivor_ids;  // ascending
  size_t begin = 0;
  for (int t = 0; t < tiles; ++t) {
    const int64_t end_key = static_cast<int64_t>(t + 1) * key_tile;
    size_t end = begin;
    while (end < ids.size() && ids[end] < end_key) ++end;
    parts[t].av_read_cycles =
        static_cast<uint32_t>(av_read_cycles(s.sram, macs_per_cycle, d, s.qk.bits, ids.data() + begin, end - begin));
    begin = end;
  }
}

// K/V tiling: the jobs (b, t) in loop order, those where some row of block b has
// candidates in tile t, and each job's last such row.
void plan_jobs(HeadWork& w) {
  TileState& ts = *w.tiled;
  const int n = w.n(), m = w.m(), qb = ts.geometry.query_tile, kt = ts.geometry.key_tile;
  const int blocks = (n + qb - 1) / qb;
  ts.job_last_row.assign(static_cast<size_t>(blocks) * ts.tiles, -1);
  for (int b = 0; b < blocks; ++b) {
    const int first = b * qb, end = std::min(n, first + qb);
    for (int i = first; i < end; ++i)
      for (int t = 0; t < ts.tiles; ++t)
        if (w.parts[static_cast<size_t>(i) * ts.tiles + t].candidates > 0)
          ts.job_last_row[static_cast<size_t>(b) * ts.tiles + t] = i;
    for (int t = 0; t < ts.tiles; ++t)
      if (ts.job_last_row[static_cast<size_t>(b) * ts.tiles + t] >= 0)
        ts.jobs.push_back({b, t, first, end, t * kt, std::min(m, (t + 1) * kt)});
  }
}

}  // namespace

void dequantize_rows(HeadWork& w) {
  const HeadData& data = w.data();
  dequantize(data.q, data.scale_q, w.q_deq);
  dequantize(data.k, data.scale_k, w.k_deq);
  dequantize(data.v, data.scale_v, w.v_deq);
}

HeadModel::HeadModel(const QkSetup& qk, const CandidateGenerator& candidates, const LowRankModel* lowrank,
                     const QualityMeter* quality, int threads, const DecisionRecorder* decisions)
    : qk_(qk),
      candidates_(candidates),
      lowrank_(lowrank),
      quality_(quality),
      threads_(std::max(1, threads)),
      decisions_(decisions),
      pool_(threads_ > 1 ? std::make_unique<WorkerPool>(threads_) : nullptr) {
  qk_.exact_all = quality != nullptr;  // only the quality reference reads filtered keys' scores
}

RowChunks::RowChunks(int rows, int query_block, int threads)
    : rows_(rows), block_(std::max(1, query_block)), blocks_((rows + block_ - 1) / block_) {
  // About 16 chunks per thread keeps the last chunks' imbalance small; a chunk of at least
  // 16 rows keeps the handing out cheap.
  const int by_count = blocks_ / (16 * std::max(1, threads));
  const int by_size = (16 + block_ - 1) / block_;
  chunk_blocks_ = std::max(1, std::max(by_count, by_size));
}

bool RowChunks::next(int& begin, int& end) {
  const int b = next_.fetch_add(chunk_blocks_, std::memory_order_relaxed);
  if (b >= blocks_) return false;
  begin = std::min(rows_, b * block_);
  end = std::min(rows_, (b + chunk_blocks_) * block_);
  return true;
}

void HeadModel::compute_rows(HeadWork& w, const HeadQuality* quality, const LowRankHead* lowrank,
                             HeadDecisions* decisions, RowChunks& chunks) const {
  // With query blocks (begin and end on block boundaries) each row of a block keeps its
  // own RowData until the block's cost is known.
  const int block = std::max(1, qk_.qk.query_block);
  std::vector<RowData> rows(block);
  std::vector<BlockRow> block_rows;
  KeyMarks marks;
  std::vector<double> scratch;
  // This thread's running prefix (causal): chunks come in ascending order, so it only
  // moves forward.
  std::optional<LowRankHead::Rows> lowrank_rows;
  if (lowrank) lowrank_rows.emplace(*lowrank);
  const int d = w.d();
  int begin = 0, end = 0;
  while (chunks.next(begin, end)) {
    for (int i = begin; i < end; ++i) {
      RowData& row = rows[(i - begin) % block];
      row.row = i;
      row.plain_output = true;
      RowOutcome& out = w.rows[i];
      if (w.candidates->attends_aggregates()) {
        attend_aggregates(w, row, out);
      } else {
        w.candidates->row(i, row.candidates);
        out.qk = score_row(qk_, w, row);  // QK unit, comparator, reuse buffer
        out.candidates = static_cast<uint32_t>(row.candidates.size());
        out.survivors = out.value_rows = static_cast<uint32_t>(row.survivor_ids.size());
        if (av_macs_per_cycle_ > 0 && qk_.sram.ports)
          out.av_read_cycles = static_cast<uint32_t>(av_read_cycles(qk_.sram, av_macs_per_cycle_, d, qk_.qk.bits,
                                                                    row.survivor_ids.data(), row.survivor_ids.size()));
        out.exact_scored = row.exact_scored;
        if (w.tiled) {  // K/V tiling: the row's part in each key tile
          TileState& ts = *w.tiled;
          TilePart* parts = w.parts.data() + static_cast<size_t>(i) * ts.tiles;
          tile_parts(qk_, d, row, ts.geometry.key_tile, ts.tiles, parts);
          if (av_macs_per_cycle_ > 0 && qk_.sram.ports) part_av_reads(qk_, av_macs_per_cycle_, d, row, ts.geometry.key_tile, ts.tiles, parts);
          for (int t = 0; t < ts.tiles; ++t) {
            if (parts[t].candidates == 0) continue;
            if (ts.first_tile[i] < 0) ts.first_tile[i] = t;
            ts.last_tile[i] = t;
          }
        }
        // The softmax and AV units' results, as far as something reads them: the quality
        // meter (both), FCA's head-mean probabilities (the probabilities). Their timing
        // needs only the survivor counts.
        if (quality || w.layer->abar) {
          row.probs.resize(out.survivors);  // softmax unit
          const attn::SoftmaxSum sum =
              attn::softmax(row.survivor_scores.data(), out.survivors, w.score_scale, row.probs.data());
          row.softmax_max = sum.max;
          row.softmax_sum = sum.sum;
        }
        if (quality) {
          row.out.resize(d);  // AV unit
          attn::weighted_sum(row.probs.data(), row.survivor_ids.data(), out.survivors, w.v_deq.data(), d,
                             row.out.data());
        }
        if (lowrank_rows) lowrank_rows->combine(w, row, out);  // low-rank unit
      }
      if (w.layer->abar) accumulate_abar(w, row);
      if (quality) quality->measure(row, out, scratch);
      if (decisions) decisions->record(row);
      const int in_block = (i - begin) % block + 1;
      if (block > 1 && (in_block == block || i + 1 == end)) {  // the block's last row
        const int first = i + 1 - in_block;
        if (!w.tiled) {
          block_rows.clear();
          for (int r = 0; r < in_block; ++r)
            block_rows.push_back({rows[r].candidates.data(), rows[r].candidates.size(), rows[r].keep.data(),
                                  rows[r].planes.data(), &w.rows[first + r].qk});
          w.blocks[first / block] = block_cost(qk_, d, w.m(), block_rows, marks);
        } else {
          block_parts(w, rows, first, in_block, marks);
        }
      }
    }
  }
}

// K/V tiling with query blocks: per key tile, the block's rows' parts in it scored
// together (block_cost); rows[r] is row first + r.
void HeadModel::block_parts(HeadWork& w, const std::vector<RowData>& rows, int first, int in_block,
                            KeyMarks& marks) const {
  const int block = qk_.qk.query_block, tiles = w.tiled->tiles;
  const bool planes = qk_.qk.mode == QkMode::early_term;
  std::vector<BlockRow> block_rows;
  for (int t = 0; t < tiles; ++t) {
    block_rows.clear();
    for (int r = 0; r < in_block; ++r) {
      const TilePart& part = w.parts[static_cast<size_t>(first + r) * tiles + t];
      if (part.candidates == 0) continue;
      const RowData& data = rows[r];
      block_rows.push_back({data.candidates.data() + part.first, part.candidates, data.keep.data() + part.first,
                            planes ? data.planes.data() + part.first : nullptr, &part.qk});
    }
    if (!block_rows.empty())
      w.block_parts[static_cast<size_t>(first / block) * tiles + t] = block_cost(qk_, w.d(), w.m(), block_rows, marks);
  }
}

void HeadModel::compute(HeadWork& w) const {
  derive_helpers(qk_, w, candidates_.uses_dequantized_rows() || lowrank_);
  w.candidates = candidates_.for_head(w);
  w.param_bytes = w.candidates->param_bytes();
  const std::unique_ptr<LowRankHead> lowrank = lowrank_ ? lowrank_->for_head(w) : nullptr;
  if (lowrank) {
    w.param_bytes += lowrank->param_bytes();
    w.lowrank_head_macs = lowrank->key_side_macs();
    w.lowrank_head_exps = lowrank->key_side_exps();
  }
  const std::unique_ptr<HeadQuality> quality = quality_ ? quality_->begin_head(w) : nullptr;
  const std::unique_ptr<HeadDecisions> decisions = decisions_ ? decisions_->begin_head(w) : nullptr;
  const int n = w.n();
  w.rows.assign(n, RowOutcome{});
  // Threads take whole query blocks (rows with query_block = 1).
  const int block = std::max(1, qk_.qk.query_block);
  const int blocks = (n + block - 1) / block;
  w.blocks.assign(block > 1 && !tiling_.on ? blocks : 0, QkRowCost{});
  if (tiling_.on) {
    auto ts = std::make_shared<TileState>();
    ts->geometry = tiling_;
    ts->tiles = (w.m() + tiling_.key_tile - 1) / tiling_.key_tile;
    ts->tile_free = tiling_.tile_buffers;
    ts->first_tile.assign(n, -1);
    ts->last_tile.assign(n, -1);
    w.parts.assign(static_cast<size_t>(n) * ts->tiles, TilePart{});
    if (block > 1) w.block_parts.assign(static_cast<size_t>(blocks) * ts->tiles, QkRowCost{});
    w.tiled = std::move(ts);
  }
  const int threads = std::max(1, std::min(threads_, std::min(n / 16, blocks)));
  RowChunks chunks(n, block, threads);
  const auto rows = [&] { compute_rows(w, quality.get(), lowrank.get(), decisions.get(), chunks); };
  if (threads == 1)
    rows();
  else
    pool_->run(rows);
  if (w.tiled) plan_jobs(w);
  std::vector<int16_t>().swap(w.k_msb);
  std::vector<double>().swap(w.v_deq);
  std::vector<double>().swap(w.q_deq);
  std::vector<double>().swap(w.k_deq);
}

std::shared_ptr<HeadWork> HeadModel::compute(std::shared_ptr<const LayerContext> layer, int head) const {
  auto w = std::make_shared<HeadWork>();
  w->layer = std::move(layer);
  w->head = head;
  compute(*w);
  return w;
}

HeadSource::HeadSource(const HeadModel& model) : model_(model) {
  if (model_.threads() > 1) producer_ = std::thread([this] { produce(); });
}

HeadSource::~HeadSource() {
  if (!producer_.joinable()) return;
  {
    std::lock_guard<std::mutex> g(lock_);
    stopping_ = true;
  }
  changed_.notify_all();
  producer_.join();
}

void HeadSource::produce() {
  std::unique_lock<std::mutex> g(lock_);
  while (true) {
    changed_.wait(g, [this] {
      return stopping_ || (layer_ && next_ < layer_->view.heads && static_cast<int>(done_.size()) < kAhead);
    });
    if (stopping_) return;
    std::shared_ptr<const LayerContext> layer = layer_;
    Done d{next_++, nullptr, nullptr};
    computing_ = d.head;
    g.unlock();
    try {
      d.work = model_.compute(layer, d.head);
    } catch (...) {
      d.error = std::current_exception();
    }
    layer.reset();  // before the head is handed out: past it, only layer_ and the heads hold the layer
    g.lock();
    computing_ = -1;
    done_.push_back(std::move(d));
    changed_.notify_all();
  }
}

int HeadSource::expected_head() const {
  if (!done_.empty()) return done_.front().head;
  return computing_ >= 0 ? computing_ : next_;
}

std::shared_ptr<HeadWork> HeadSource::take(const std::shared_ptr<const LayerContext>& layer, int head) {
  if (!producer_.joinable()) return model_.compute(layer, head);
  std::unique_lock<std::mutex> g(lock_);
  if (layer_ != layer) {  // a new layer: the producer has finished the last one's heads
    if (!done_.empty() || computing_ >= 0 || (layer_ && next_ < layer_->view.heads))
      throw std::logic_error("head source: a new layer before the last one's heads were taken");
    layer_ = layer;
    next_ = head;
    changed_.notify_all();
  } else if (expected_head() != head) {
    // Computing a head twice would add its FCA probabilities twice: never skip or repeat.
    throw std::logic_error("head source: head " + std::to_string(head) + " asked out of order (next is " +
                           std::to_string(expected_head()) + ")");
  }
  changed_.wait(g, [this] { return !done_.empty(); });
  Done d = std::move(done_.front());
  done_.pop_front();
  // The layer's last head handed out: let its context go (with the next layer it would
  // hold two layers' tensors in memory).
  if (done_.empty() && computing_ < 0 && next_ >= layer_->view.heads) layer_.reset();
  changed_.notify_all();
  if (d.error) std::rethrow_exception(d.error);
  return std::move(d.work);
}

}  // namespace attnsim
