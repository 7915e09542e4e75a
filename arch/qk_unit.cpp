#include "arch/qk_unit.h"

#include "arch/activity_trace.h"
#include "arch/kernel_time.h"
#include "arch/qk_math.h"
#include "arch/sc_threads.h"

namespace attnsim {

namespace {

const int16_t* row_ptr(const std::vector<int16_t>& matrix, int row, int d) {
  return matrix.data() + static_cast<size_t>(row) * d;
}

void exact_scores(const HeadWork& w, const int16_t* q, RowData& row) {
  const auto& k = w.data().k;
  const int d = w.d();
  row.exact.resize(row.candidates.size());
  for (size_t j = 0; j < row.candidates.size(); ++j)
    row.exact[j] = qk::dot(q, row_ptr(k, row.candidates[j], d), d, w.wide);
}

// The survivors and their exact scores: from row.exact when every candidate was scored,
// else scored here (the filtered keys' exact scores are never computed).
void collect_survivors(const HeadWork& w, const int16_t* q, RowData& row) {
  row.survivor_ids.clear();
  row.survivor_scores.clear();
  const bool scored = row.exact.size() == row.candidates.size();
  const int d = w.d();
  for (size_t j = 0; j < row.candidates.size(); ++j) {
    if (!row.keep[j]) continue;
    row.survivor_ids.push_back(row.candidates[j]);
    row.survivor_scores.push_back(scored ? row.exact[j] : qk::dot(q, row_ptr(w.data().k, row.candidates[j], d), d, w.wide));
  }
}

// The lanes' time for each pass of each segment: the pass's planes (pass1_cycles,
// pass2_cycles) plus, with reuse_buffer.ports, the cycles a tile waits for the reuse
// buffer (header of arch/qk_unit.h: a tile lasts max(its planes, its accesses' port time)).
struct PassTimes {
  std::vector<uint64_t> pass1, pass2, compared;
  uint64_t port_wait = 0;   // cycles the lanes waited for reuse-buffer ports
  uint64_t port_busy = 0;   // cycles the buffer's ports were in use (its busy)
  uint64_t sram_wait = 0;   // cycles the lanes waited for K-buffer ports
  void clear() {
    pass1.clear(), pass2.clear(), compared.clear();
    port_wait = port_busy = sram_wait = 0;
  }
};

// K-buffer reads (sram.ports; absent: unlimited): each lane-cycle, every lane of a tile
// reads its key's next W bits of the plane (bit-serial; W x B bits bit-parallel) from the
// banks of key j (sram.mapping: all in bank j mod banks, or striped from bank j x a):
// a = ceil(those bits / sram.width_bits) accesses. The lane-cycle lasts max(1, max over
// banks of ceil(accesses in the bank / ports)) cycles.
uint64_t k_read_cycles(const QkSetup& s, int d, const int32_t* ids, size_t n) {
  if (!s.sram.ports || n == 0) return 1;
  const uint64_t width = std::min<uint64_t>(static_cast<uint64_t>(s.qk.lane_width.value_or(d)), d);
  const uint64_t bits = s.qk.type == QkType::bit_parallel ? width * s.qk.bits : width;
  const uint64_t accesses = ceil_div(bits, static_cast<uint64_t>(s.sram.width_bits));
  const uint64_t banks = s.sram.banks;
  thread_local std::vector<uint32_t> per_bank;
  per_bank.assign(banks, 0);
  uint32_t most = 0;
  for (size_t i = 0; i < n; ++i) most = std::max(most, s.sram.add_row(per_bank, banks, static_cast<uint64_t>(ids[i]), accesses));
  return std::max<uint64_t>(1, ceil_div(static_cast<uint64_t>(most), static_cast<uint64_t>(*s.sram.ports)));
}

// One pass streaming `ids` (the keys, in order) in tiles of L, `planes` lane-cycles per
// key (planes x c): a tile lasts planes x k_read_cycles(tile) and at least `reuse(tile)`,
// its reuse-buffer port time (0 when none). Returns the pass's cycles; adds the waits.
template <class Reuse>
uint64_t pass_cycles(const QkSetup& s, int d, const int32_t* ids, size_t n, uint64_t planes, Reuse reuse,
                     PassTimes& t) {
  const uint64_t lanes = s.qk.lanes;
  uint64_t total = 0;
  for (size_t tile = 0, begin = 0; begin < n; ++tile, begin += lanes) {
    const size_t len = std::min<size_t>(lanes, n - begin);
    const uint64_t plain = planes;
    const uint64_t with_k = planes * k_read_cycles(s, d, ids + begin, len);
    const uint64_t r = reuse(tile);
    t.port_busy += r;
    const uint64_t tile_time = std::max(with_k, r);
    t.sram_wait += with_k - plain;
    t.port_wait += tile_time - with_k;
    total += tile_time;
  }
  return total;
}

// Port time of one tile's accesses: the most any bank holds, ceil(count / ports) each.
uint64_t port_cycles(const std::vector<uint32_t>& per_bank, uint64_t ports) {
  uint32_t most = 0;
  for (uint32_t c : per_bank) most = std::max(most, c);
  return ceil_div(static_cast<uint64_t>(most), ports);
}

// early_term, lock-step tiles with K-buffer reads: plane b of a tile reads the keys still
// running (planes_j >= b); it lasts c x k_read_cycles(those keys). Returns the cycles.
uint64_t early_term_lockstep_reads(const QkSetup& s, int d, const int32_t* ids, const int* planes, size_t n) {
  const uint64_t lanes = s.qk.lanes, chunks = s.qk.plane_cycles(d);
  thread_local std::vector<int32_t> running;
  uint64_t total = 0;
  for (size_t begin = 0; begin < n; begin += lanes) {
    const size_t end = std::min<size_t>(n, begin + lanes);
    const int most = *std::max_element(planes + begin, planes + end);
    for (int b = 1; b <= most; ++b) {
      running.clear();
      for (size_t j = begin; j < end; ++j)
        if (planes[j] >= b) running.push_back(ids[j]);
      total += chunks * k_read_cycles(s, d, running.data(), running.size());
    }
  }
  return total;
}

// Dense (every candidate scored exactly) over keys ids[0, n) in order.
QkRowCost dense_cost(const QkSetup& s, int d, const int32_t* ids, uint64_t n) {
  QkRowCost c;
  const int bits = s.qk.bits;
  if (s.qk.type == QkType::bit_parallel) {
    c.busy = qk::bit_parallel_cycles(n, s.qk.lanes) * s.qk.plane_cycles(d);
    c.int8_macs = n * d;
    c.sram_read_bits = n * d * bits;
  } else {
    c.busy = qk::dense_bit_serial_cycles(n, s.qk.lanes, bits) * s.qk.plane_cycles(d);
    c.bitplane_ops = qk::dense_bitplane_ops(n, bits);
    c.adder_tree_inputs = c.bitplane_ops * d;
    c.sram_read_bits = c.bitplane_ops * d;
  }
  if (s.sram.ports) {  // the lanes wait for the K buffer (header: K-buffer reads)
    const uint64_t per_key = (s.qk.type == QkType::bit_parallel ? 1 : static_cast<uint64_t>(bits)) * s.qk.plane_cycles(d);
    PassTimes t;
    c.sram_port_wait = pass_cycles(s, d, ids, n, per_key, [](uint64_t) -> uint64_t { return 0; }, t) - c.busy;
  }
  return c;
}

QkRowCost dense_row(const QkSetup& s, int d, RowData& row) {
  const uint64_t n = row.candidates.size();
  row.keep.assign(n, 1);
  row.exact_scored = n;
  return dense_cost(s, d, row.candidates.data(), n);
}

// The comparator schedule of a row's (or block's) segments (header of arch/qk_unit.h),
// all but the last segment's overlap with whatever follows. t.compared[k]: the keys the
// comparator checks in segment k.
void schedule_passes(const QkSetup& s, const PassTimes& t, QkRowCost& c) {
  const size_t n = t.pass1.size();
  c.overlapped = true;
  c.segments = static_cast<int>(n);
  if (n == 0) return;
  const uint64_t kpc = s.comparator.keys_per_cycle;
  c.first_pass1 = t.pass1.front();
  for (size_t k = 0; k < n; ++k) {
    const uint64_t compare_cycles = ceil_div(t.compared[k], kpc);
    const uint64_t compare_done = compare_cycles + s.comparator.latency_cycles;
    c.comparator_busy += compare_cycles;
    if (k + 1 == n) {
      c.last_compare = compare_done;
      c.last_pass2 = t.pass2[k];
      break;
    }
    const uint64_t next_pass1 = t.pass1[k + 1];
    c.inner_wait += compare_done > next_pass1 ? compare_done - next_pass1 : 0;
    c.inner_advance += std::max(next_pass1, compare_done) + t.pass2[k];
  }
  c.reuse_port_wait += t.port_wait;
  c.sram_port_wait += t.sram_wait;
}

// A row's (or a tile part's) passes: pass 1 streams the segment's candidates `ids` and
// writes each tile's L estimates at consecutive positions of the segment, pass 2 streams
// its survivors and reads their partial sums at their positions (banks:
// reuse_buffer.mapping). keep[] and ids[] are the candidates' in order.
void row_passes(const QkSetup& s, int d, const std::vector<qk::Segment>& segs, const int32_t* ids,
                const uint8_t* keep, PassTimes& t) {
  t.clear();
  const uint64_t lanes = s.qk.lanes, chunks = s.qk.plane_cycles(d);
  const uint64_t p1_planes = static_cast<uint64_t>(s.qk.estimate_bits) * chunks;
  const uint64_t p2_planes = static_cast<uint64_t>(s.qk.bits - s.qk.estimate_bits) * chunks;
  const bool ported = s.reuse.ports.has_value();
  const uint64_t banks = s.reuse.banks, ports = ported ? static_cast<uint64_t>(*s.reuse.ports) : 1;
  thread_local std::vector<uint32_t> per_bank;
  thread_local std::vector<uint32_t> positions;
  thread_local std::vector<int32_t> survivors;
  size_t begin = 0;
  for (const qk::Segment& seg : segs) {
    const uint64_t keys = seg.keys;
    if (!ported && !s.sram.ports) {  // no memory modelled: the planes alone (the hot path)
      t.pass1.push_back(ceil_div(keys, lanes) * p1_planes);
      t.pass2.push_back(ceil_div(static_cast<uint64_t>(seg.survivors), lanes) * p2_planes);
      t.compared.push_back(keys);
      begin += keys;
      continue;
    }
    // Consecutive positions: a tile of len keys puts at most ceil(len / banks) in a bank.
    const uint64_t pass1 = pass_cycles(s, d, ids + begin, keys, p1_planes, [&](uint64_t tile) -> uint64_t {
      if (!ported) return 0;
      const uint64_t len = std::min(lanes, keys - tile * lanes);
      return ceil_div(ceil_div(len, banks), ports);
    }, t);
    positions.clear();
    survivors.clear();
    for (size_t j = 0; j < keys; ++j)
      if (keep[begin + j]) positions.push_back(static_cast<uint32_t>(j)), survivors.push_back(ids[begin + j]);
    const uint64_t pass2 = pass_cycles(s, d, survivors.data(), survivors.size(), p2_planes, [&](uint64_t tile) -> uint64_t {
      if (!ported) return 0;
      per_bank.assign(banks, 0);
      const size_t end = std::min<size_t>(positions.size(), (tile + 1) * lanes);
      for (size_t i = tile * lanes; i < end; ++i) ++per_bank[s.reuse.bank(0, positions[i])];
      return port_cycles(per_bank, ports);
    }, t);
    t.pass1.push_back(pass1);
    t.pass2.push_back(pass2);
    t.compared.push_back(keys);
    begin += keys;
  }
}

// The cost of a row's (or a tile part's) segments: ids[] their candidates in order, keep[]
// the comparator's decisions of them.
QkRowCost latte_cost(const QkSetup& s, int d, const std::vector<qk::Segment>& segs, const int32_t* ids,
                     const uint8_t* keep) {
  QkRowCost c;
  const int bits = s.qk.bits, planes = s.qk.estimate_bits;
  c.busy = qk::latte_cycles(segs, s.qk.lanes, bits, planes) * s.qk.plane_cycles(d);
  c.bitplane_ops = qk::latte_bitplane_ops(segs, bits, planes);
  c.adder_tree_inputs = c.bitplane_ops * d;
  c.sram_read_bits = c.bitplane_ops * d;
  thread_local PassTimes passes;
  row_passes(s, d, segs, ids, keep, passes);
  schedule_passes(s, passes, c);
  const uint64_t banks = s.reuse.banks;
  for (const qk::Segment& seg : segs) {
    c.compares += seg.keys;
    c.reuse_writes += seg.keys;
    c.reuse_reads += seg.survivors;
    if (!s.reuse.ports) c.reuse_busy += ceil_div(seg.keys, banks) + ceil_div(seg.survivors, banks);
  }
  if (s.reuse.ports) c.reuse_busy = passes.port_busy;
  return c;
}

QkRowCost latte_row(const QkSetup& s, const HeadWork& w, const int16_t* q, RowData& row) {
  QkRowCost c;
  const int d = w.d();
  const int n = static_cast<int>(row.candidates.size());
  std::vector<int64_t> estimates(n);
  for (int j = 0; j < n; ++j)
    estimates[j] = qk::dot(q, row_ptr(w.k_msb, row.candidates[j], d), d, w.wide);
  row.keep.assign(n, 0);
  const int64_t margin = w.layer->margin[w.head];
  const std::vector<qk::Segment> segs =
      qk::latte_filter(estimates.data(), n, s.reuse.entries, margin, row.keep.data());
  c = latte_cost(s, d, segs, row.candidates.data(), row.keep.data());
  for (const qk::Segment& seg : segs) row.exact_scored += seg.survivors;
  return c;
}

// early_term over keys ids[0, n) in order, planes[j] the planes key j ran.
QkRowCost early_term_cost(const QkSetup& s, int d, const int32_t* ids, const int* planes, int n) {
  QkRowCost c;
  c.busy = (s.qk.lane_sync == LaneSync::independent ? qk::early_term_independent_cycles(planes, n, s.qk.lanes)
                                                      : qk::early_term_lockstep_cycles(planes, n, s.qk.lanes)) *
           s.qk.plane_cycles(d);
  c.bitplane_ops = qk::early_term_bitplane_ops(planes, n);
  c.adder_tree_inputs = c.bitplane_ops * d;
  c.sram_read_bits = c.bitplane_ops * d;
  c.compares = c.bitplane_ops;  // one bound check per processed plane, inside the lane
  if (s.sram.ports)  // lock-step only (independent lanes with ports: a config error)
    c.sram_port_wait = early_term_lockstep_reads(s, d, ids, planes, static_cast<size_t>(n)) - c.busy;
  return c;
}

QkRowCost early_term_row(const QkSetup& s, const HeadWork& w, const int16_t* q, RowData& row) {
  const int d = w.d();
  const int n = static_cast<int>(row.candidates.size());
  const int bits = s.qk.bits;
  const int64_t qpos = qk::positive_sum(q, d);
  const int64_t theta = w.layer->theta[w.head];
  std::vector<int>& planes = row.planes;  // kept for a query block's cost (block_cost) and tile parts
  planes.resize(n);
  row.keep.assign(n, 0);
  for (int j = 0; j < n; ++j) {
    const qk::EarlyTerm t = qk::early_term(q, row_ptr(w.data().k, row.candidates[j], d), d, bits, qpos, theta);
    planes[j] = t.planes;
    row.keep[j] = t.survives ? 1 : 0;
    if (t.planes == bits) ++row.exact_scored;
  }
  return early_term_cost(s, d, row.candidates.data(), planes.data(), n);
}

}  // namespace

QkRowCost score_row(const QkSetup& s, const HeadWork& w, RowData& row) {
  const int d = w.d();
  const int16_t* q = row_ptr(w.data().q, row.row, d);
  // The functional model knows every candidate's exact score when the quality reference
  // needs them (softmax needs only the survivors'); the cost below counts only the work
  // the hardware does.
  if (s.exact_all)
    exact_scores(w, q, row);
  else
    row.exact.clear();
  row.exact_scored = 0;
  QkRowCost c;
  switch (s.qk.mode) {
    case QkMode::latte: c = latte_row(s, w, q, row); break;
    case QkMode::early_term: c = early_term_row(s, w, q, row); break;
    case QkMode::dense: c = dense_row(s, d, row); break;
  }
  c.sram_read_bits += static_cast<uint64_t>(d) * s.qk.bits;  // the query row
  collect_survivors(w, q, row);
  return c;
}

void tile_parts(const QkSetup& s, int d, const RowData& row, int key_tile, int tiles, TilePart* parts) {
  const std::vector<int32_t>& ids = row.candidates;
  const size_t n = ids.size(), entries = static_cast<size_t>(s.reuse.entries);
  // With sram.ports key j of tile t sits in row j - t*key_tile of its tile buffer; the
  // absolute ids give the same bank counts (a shift of every row only permutes the banks).
  size_t begin = 0;
  for (int t = 0; t < tiles; ++t) {
    TilePart& part = parts[t];
    part = TilePart{};
    const int32_t end_key = static_cast<int32_t>(std::min<int64_t>(static_cast<int64_t>(t + 1) * key_tile, INT32_MAX));
    size_t end = begin;
    while (end < n && ids[end] < end_key) ++end;
    if (end == begin) continue;
    const uint64_t keys = end - begin;
    part.first = static_cast<uint32_t>(begin);
    part.candidates = static_cast<uint32_t>(keys);
    for (size_t j = begin; j < end; ++j) part.survivors += row.keep[j];
    const int32_t* tile_ids = ids.data() + begin;
    QkRowCost& c = part.qk;
    switch (s.qk.mode) {
      case QkMode::latte: {
        // The row's segments (positions [kE, (k+1)E)) cut at the tile's edges; with
        // key_tile a multiple of E and every key a candidate, none is cut.
        std::vector<qk::Segment> segs;
        for (size_t p = begin; p < end;) {
          const size_t seg_end = std::min(end, (p / entries + 1) * entries);
          int kept = 0;
          for (size_t j = p; j < seg_end; ++j) kept += row.keep[j];
          segs.push_back({static_cast<int>(seg_end - p), kept});
          p = seg_end;
        }
        c = latte_cost(s, d, segs, tile_ids, row.keep.data() + begin);
        break;
      }
      case QkMode::early_term:
        c = early_term_cost(s, d, tile_ids, row.planes.data() + begin, static_cast<int>(keys));
        break;
      case QkMode::dense: c = dense_cost(s, d, tile_ids, keys); break;
    }
    c.sram_read_bits += static_cast<uint64_t>(d) * s.qk.bits;  // the query row, once per part
    begin = end;
  }
}

void KeyMarks::reset(int m) {
  if (stamp.size() < static_cast<size_t>(m)) {
    stamp.assign(m, 0);
    planes.assign(m, 0);
    epoch = 0;
  }
  if (++epoch == 0) {  // wrapped: clear once every 2^32 sets
    std::fill(stamp.begin(), stamp.end(), 0);
    epoch = 1;
  }
}

namespace {

// Adds ids[begin, end) to the set; returns how many were new.
uint64_t mark(KeyMarks& marks, const int32_t* ids, size_t begin, size_t end) {
  uint64_t added = 0;
  for (size_t j = begin; j < end; ++j) {
    uint32_t& s = marks.stamp[ids[j]];
    if (s != marks.epoch) s = marks.epoch, ++added;
  }
  return added;
}

void add_row_counters(const QkRowCost& row, QkRowCost& block) {
  block.bitplane_ops += row.bitplane_ops;
  block.adder_tree_inputs += row.adder_tree_inputs;
  block.int8_macs += row.int8_macs;
  block.compares += row.compares;
  block.reuse_reads += row.reuse_reads;
  block.reuse_writes += row.reuse_writes;
  block.reuse_busy += row.reuse_busy;
}

}  // namespace

QkRowCost block_cost(const QkSetup& s, int d, int m, const std::vector<BlockRow>& rows, KeyMarks& marks) {
  QkRowCost c;
  for (const BlockRow& r : rows) add_row_counters(*r.cost, c);
  const uint64_t chunks = s.qk.plane_cycles(d), bits = s.qk.bits, planes = s.qk.estimate_bits;
  const uint64_t query_bits = static_cast<uint64_t>(rows.size()) * d * bits;  // each row's query
  if (s.qk.mode == QkMode::dense) {
    marks.reset(m);
    uint64_t keys = 0;
    for (const BlockRow& r : rows) keys += mark(marks, r.candidates, 0, r.n);
    const bool parallel = s.qk.type == QkType::bit_parallel;
    c.busy = ceil_div(keys, s.qk.lanes) * (parallel ? 1 : bits) * chunks;
    c.sram_read_bits = keys * d * bits + query_bits;
    if (s.sram.ports) {  // the union in key-index order, against the K buffer
      std::vector<int32_t> ids;
      for (int32_t j = 0; j < m; ++j)
        if (marks.stamp[j] == marks.epoch) ids.push_back(j);
      PassTimes t;
      c.sram_port_wait = pass_cycles(s, d, ids.data(), ids.size(), (parallel ? 1 : bits) * chunks,
                                     [](uint64_t) -> uint64_t { return 0; }, t) - c.busy;
    }
    return c;
  }
  if (s.qk.mode == QkMode::early_term) {
    // Keys of the block in key-index order with the most planes any row ran on each.
    marks.reset(m);
    std::vector<int32_t> keys;
    for (const BlockRow& r : rows) {
      for (size_t j = 0; j < r.n; ++j) {
        const int32_t id = r.candidates[j];
        const int p = r.planes[j];
        if (marks.stamp[id] != marks.epoch) {
          marks.stamp[id] = marks.epoch;
          marks.planes[id] = p;
          keys.push_back(id);
        } else {
          marks.planes[id] = std::max(marks.planes[id], p);
        }
      }
    }
    std::sort(keys.begin(), keys.end());
    std::vector<int> key_planes(keys.size());
    uint64_t streamed = 0;
    for (size_t j = 0; j < keys.size(); ++j) streamed += key_planes[j] = marks.planes[keys[j]];
    const int n = static_cast<int>(keys.size());
    c.busy = (s.qk.lane_sync == LaneSync::independent ? qk::early_term_independent_cycles(key_planes.data(), n, s.qk.lanes)
                                                      : qk::early_term_lockstep_cycles(key_planes.data(), n, s.qk.lanes)) *
             chunks;
    c.sram_read_bits = streamed * d + query_bits;
    if (s.sram.ports) c.sram_port_wait = early_term_lockstep_reads(s, d, keys.data(), key_planes.data(), keys.size()) - c.busy;
    return c;
  }
  // latte: the block's k-th segment is the union of its rows' k-th segments.
  const size_t entries = static_cast<size_t>(s.reuse.entries);
  size_t longest = 0;
  for (const BlockRow& r : rows) longest = std::max(longest, r.n);
  const bool ported = s.reuse.ports.has_value();
  const uint64_t lanes = s.qk.lanes, banks = s.reuse.banks, ports = ported ? *s.reuse.ports : 1;
  const uint64_t p1_planes = planes * chunks, p2_planes = (bits - planes) * chunks;
  std::vector<qk::Segment> union_segs;   // {|U_k|, |S_k|}
  PassTimes t;
  std::vector<int32_t> streamed, kept;   // U_k and S_k in key-index order
  std::vector<uint32_t> per_bank;
  size_t begin = 0;
  // Position of `key` in row r's k-th segment [begin, end) (ascending ids), or -1.
  const auto position = [&](const BlockRow& r, int32_t key) -> int64_t {
    const int32_t* first = r.candidates + std::min(r.n, begin);
    const int32_t* last = r.candidates + std::min(r.n, begin + entries);
    const int32_t* at = std::lower_bound(first, last, key);
    return at != last && *at == key ? at - first : -1;
  };
  // A tile's accesses: row r's entry for a key at position p of its segment is r * E + p,
  // in bank (r * E + p) mod banks. `want` picks the rows that access the key.
  const auto tile_port = [&](const std::vector<int32_t>& keys, uint64_t tile, auto want) {
    per_bank.assign(banks, 0);
    const size_t end = std::min<size_t>(keys.size(), (tile + 1) * lanes);
    for (size_t i = tile * lanes; i < end; ++i)
      for (size_t r = 0; r < rows.size(); ++r) {
        const int64_t at = position(rows[r], keys[i]);
        if (at >= 0 && want(r, static_cast<uint32_t>(at))) ++per_bank[s.reuse.bank(r, static_cast<uint32_t>(at))];
      }
    return port_cycles(per_bank, ports);
  };
  for (; begin < longest; begin += entries) {
    uint64_t n_k = 0;
    streamed.clear();
    kept.clear();
    marks.reset(m);
    for (const BlockRow& r : rows) {
      if (begin >= r.n) continue;
      const size_t end = std::min(r.n, begin + entries);
      for (size_t j = begin; j < end; ++j) {
        uint32_t& st = marks.stamp[r.candidates[j]];
        if (st != marks.epoch) st = marks.epoch, streamed.push_back(r.candidates[j]);
      }
      n_k += end - begin;
    }
    marks.reset(m);
    for (const BlockRow& r : rows) {
      for (size_t j = begin; j < std::min(r.n, begin + entries); ++j) {
        if (!r.keep[j]) continue;
        uint32_t& st = marks.stamp[r.candidates[j]];
        if (st != marks.epoch) st = marks.epoch, kept.push_back(r.candidates[j]);
      }
    }
    std::sort(streamed.begin(), streamed.end());
    std::sort(kept.begin(), kept.end());
    const uint64_t pass1 = pass_cycles(s, d, streamed.data(), streamed.size(), p1_planes, [&](uint64_t tile) -> uint64_t {
      return ported ? tile_port(streamed, tile, [](size_t, uint32_t) { return true; }) : 0;
    }, t);
    const uint64_t pass2 = pass_cycles(s, d, kept.data(), kept.size(), p2_planes, [&](uint64_t tile) -> uint64_t {
      return ported ? tile_port(kept, tile, [&](size_t r, uint32_t p) { return rows[r].keep[begin + p] != 0; }) : 0;
    }, t);
    union_segs.push_back({static_cast<int>(streamed.size()), static_cast<int>(kept.size())});
    t.pass1.push_back(pass1);
    t.pass2.push_back(pass2);
    t.compared.push_back(n_k);
  }
  c.busy = qk::latte_cycles(union_segs, s.qk.lanes, static_cast<int>(bits), static_cast<int>(planes)) * chunks;
  c.sram_read_bits = qk::latte_bitplane_ops(union_segs, static_cast<int>(bits), static_cast<int>(planes)) * d + query_bits;
  schedule_passes(s, t, c);
  if (ported) c.reuse_busy = t.port_busy;
  return c;
}

QkRowTiming qk_row_timing(const QkRowCost& c, bool own_pass1_done, uint64_t next_first_pass1) {
  if (!c.overlapped) return {c.busy + c.sram_port_wait, 0};
  if (c.segments == 0) return {0, 0};
  QkRowTiming t;
  t.advance = (own_pass1_done ? 0 : c.first_pass1) + c.inner_advance +
              std::max(next_first_pass1, c.last_compare) + c.last_pass2;
  t.comparator_wait = c.inner_wait + (c.last_compare > next_first_pass1 ? c.last_compare - next_first_pass1 : 0);
  return t;
}

QkUnit::QkUnit(sc_core::sc_module_name name, const QkSetup& setup, SramBuffers& sram)
    : sc_module(name), setup_(setup), sram_(sram) {
  SC_HAS_PROCESS(QkUnit);
  SC_THREAD(run);
}

// One row, block or tile part through the lanes: its timing joined with the next one's
// first pass 1 (the comparator schedule of the header; `next` null when there is none),
// the K reads counted, the cycles waited. `own_pass1_done` carries along the chain.
void QkUnit::process(const HeadWork& work, int row, const QkRowCost& c, const QkRowCost* next,
                     bool& own_pass1_done, bool traced) {
  // The comparator of this one's last segment overlaps the next one's first pass 1.
  const bool next_overlapped = c.segments > 0 && next && next->segments > 0;
  const QkRowTiming t = qk_row_timing(c, own_pass1_done, next_overlapped ? next->first_pass1 : 0);
  own_pass1_done = next_overlapped;
  sram_.read_bits(c.sram_read_bits);
  if (traced) trace_row(work, row, t);
  // It leaves when its last pass 2 ends (see the comparator schedule in the header).
  wait_cycles(Cycles(t.advance));
  total_ += c;
  comparator_wait_ += t.comparator_wait;
}

// Hands a row on; time blocked on the full output FIFO is stall.
void QkUnit::emit(const RowToken& token, bool traced) {
  if (traced)
    trace_->open(TraceUnit::qk_unit, kStall, "stall: output FIFO full",
                 {token.head->layer_index(), token.head->head, token.row});
  const Cycles before = now_cycles();
  row_out->write(token);
  output_stall_ += (now_cycles() - before).count();
  if (traced) trace_->close(TraceUnit::qk_unit);
}

void QkUnit::run() {
  run_thread_body([this] {
    while (true) {
      std::shared_ptr<HeadWork> work = head_in->read();
      if (!work->blocks.empty()) {
        run_blocks(work);
        continue;
      }
      if (work->tiled) {
        run_tiled(work);
        continue;
      }
      const bool traced = trace_ && trace_->in_window(work->layer_index(), work->head);
      const std::vector<RowOutcome>& rows = work->rows;
      bool own_pass1_done = false;  // the first row of a head starts with its own pass 1
      for (int i = 0; i < work->n(); ++i) {
        process(*work, i, rows[i].qk, i + 1 < work->n() ? &rows[i + 1].qk : nullptr, own_pass1_done, traced);
        emit(RowToken{work, i, sc_core::sc_time_stamp()}, traced);
      }
    }
  });
}

// Query blocks: the same schedule with a block's cost in place of a row's; the block's
// rows leave together, in row order, when its last pass ends.
void QkUnit::run_blocks(const std::shared_ptr<HeadWork>& work) {
  const bool traced = trace_ && trace_->in_window(work->layer_index(), work->head);
  const std::vector<QkRowCost>& blocks = work->blocks;
  const int block = setup_.qk.query_block, n = work->n();
  bool own_pass1_done = false;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const int first = static_cast<int>(b) * block, last = std::min(n, first + block);
    process(*work, first, blocks[b], b + 1 < blocks.size() ? &blocks[b + 1] : nullptr, own_pass1_done, traced);
    for (int i = first; i < last; ++i) emit(RowToken{work, i, sc_core::sc_time_stamp()}, traced);
  }
}

// K/V tiling: job by job (arch/kv_tiling.h), the rows of the job's query block that have
// candidates in its key tile, in row order, each part timed as a row of its own (with
// query blocks: each block of Qb rows' parts timed together) by the comparator schedule; the chain of overlapped pass 1s stays within the job (its last
// part pays its whole last compare). Job j starts when the DMA has loaded it; after the
// last part of a query block the block's Q buffer is free.
void QkUnit::run_tiled(const std::shared_ptr<HeadWork>& work) {
  TileState& ts = *work->tiled;
  const bool traced = trace_ && trace_->in_window(work->layer_index(), work->head);
  const auto part = [&](int row, int tile) -> const TilePart& {
    return work->parts[static_cast<size_t>(row) * ts.tiles + tile];
  };
  const int block = setup_.qk.query_block;  // Q blocks hold whole query blocks
  const auto cost = [&](int first, int tile) -> const QkRowCost& {
    return block > 1 ? work->block_parts[static_cast<size_t>(first / block) * ts.tiles + tile] : part(first, tile).qk;
  };
  std::vector<int> units;
  for (size_t j = 0; j < ts.jobs.size(); ++j) {
    const TileJob& job = ts.jobs[j];
    ts.wait_for([&] { return ts.loaded > static_cast<int>(j); });
    // The job's units of work: its rows with candidates in the tile, or with query blocks
    // (Qb > 1) the blocks of Qb rows with some; each is timed by its cost, then its rows'
    // parts leave in row order.
    units.clear();
    for (int first = job.first_row; first < job.end_row; first += block) {
      const int end = std::min(job.end_row, first + block);
      bool any = false;
      for (int i = first; i < end; ++i) any = any || part(i, job.tile).candidates > 0;
      if (any) units.push_back(first);
    }
    bool own_pass1_done = false;
    for (size_t k = 0; k < units.size(); ++k) {
      const int first = units[k], end = std::min(job.end_row, first + block);
      process(*work, first, cost(first, job.tile), k + 1 < units.size() ? &cost(units[k + 1], job.tile) : nullptr,
              own_pass1_done, traced);
      for (int i = first; i < end; ++i) {
        if (part(i, job.tile).candidates == 0) continue;
        RowToken token{work, i, sc_core::sc_time_stamp()};
        token.part = job.tile;
        emit(token, traced);
      }
    }
    if (j + 1 == ts.jobs.size() || ts.jobs[j + 1].block != job.block) {
      ts.q_free = true;
      ts.signal();
    }
  }
}

// A row's `advance` cycles drawn as lanes busy, then the comparator wait. Per head the
// busy parts add up to the §4 busy exactly (a row's part includes the next row's
// overlapped pass 1, see the header); the wait is drawn at the row's end.
void QkUnit::trace_row(const HeadWork& work, int row, const QkRowTiming& t) {
  const TraceTag tag{work.layer_index(), work.head, row};
  const Cycles now = now_cycles(), lanes_end = now + Cycles(t.advance - t.comparator_wait);
  trace_->interval(TraceUnit::qk_unit, kBusy, now, lanes_end, "row", tag);
  trace_->interval(TraceUnit::qk_unit, kStall, lanes_end, now + Cycles(t.advance), "stall: comparator", tag);
}

ModuleActivity QkUnit::activity() const {
  ModuleActivity a{"qk_unit", total_.busy,
                   comparator_wait_ + output_stall_ + total_.reuse_port_wait + total_.sram_port_wait, {}};
  if (setup_.qk.type == QkType::bit_parallel) {
    a.counters = {{"int8_macs", total_.int8_macs}};
  } else {
    a.counters = {{"bitplane_ops", total_.bitplane_ops},
                  {"adder_tree_inputs", total_.adder_tree_inputs}};
  }
  return a;
}

ModuleActivity QkUnit::comparator_activity() const {
  return {"comparator", total_.comparator_busy, 0, {{"compares", total_.compares}}};
}

ModuleActivity QkUnit::reuse_buffer_activity() const {
  return {"reuse_buffer", total_.reuse_busy, 0,
          {{"reads", total_.reuse_reads}, {"writes", total_.reuse_writes}}};
}

}  // namespace attnsim
