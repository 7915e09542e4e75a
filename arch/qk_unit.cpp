#include "arch/qk_unit.h"

#include "arch/activity_trace.h"
#include "arch/kernel_time.h"
#include "arch/qk_math.h"

namespace attnsim {

void dense_candidates(int row, int m, bool causal, std::vector<int32_t>& out) {
  const int n = causal ? std::min(row + 1, m) : m;
  out.resize(n);
  for (int j = 0; j < n; ++j) out[j] = j;
}

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

void collect_survivors(RowData& row) {
  row.survivor_ids.clear();
  row.survivor_scores.clear();
  for (size_t j = 0; j < row.candidates.size(); ++j) {
    if (!row.keep[j]) continue;
    row.survivor_ids.push_back(row.candidates[j]);
    row.survivor_scores.push_back(row.exact[j]);
  }
}

QkRowCost dense_row(const QkSetup& s, int d, RowData& row) {
  QkRowCost c;
  const uint64_t n = row.candidates.size();
  const int bits = s.qk.bits;
  row.keep.assign(n, 1);
  row.exact_scored = n;
  if (s.qk.type == "bit_parallel") {
    c.busy = qk::bit_parallel_cycles(n, s.qk.lanes);
    c.int8_macs = n * d;
    c.sram_read_bits = n * d * bits;
  } else {
    c.busy = qk::dense_bit_serial_cycles(n, s.qk.lanes, bits);
    c.bitplane_ops = qk::dense_bitplane_ops(n, bits);
    c.adder_tree_inputs = c.bitplane_ops * d;
    c.sram_read_bits = c.bitplane_ops * d;
  }
  return c;
}

QkRowCost latte_row(const QkSetup& s, const HeadWork& w, const int16_t* q, RowData& row,
                    const RowPlace& place) {
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

  const int bits = s.qk.bits, planes = s.qk.estimate_bits;
  c.busy = qk::latte_cycles(segs, s.qk.lanes, bits, planes);
  c.bitplane_ops = qk::latte_bitplane_ops(segs, bits, planes);
  c.adder_tree_inputs = c.bitplane_ops * d;
  c.sram_read_bits = c.bitplane_ops * d;
  const uint64_t kpc = s.comparator.keys_per_cycle, banks = s.reuse.banks;
  const auto pass1 = [&](const qk::Segment& seg) { return ceil_div(seg.keys, s.qk.lanes) * planes; };
  const auto pass2 = [&](const qk::Segment& seg) { return ceil_div(seg.survivors, s.qk.lanes) * (bits - planes); };
  if (place.first_in_head && !segs.empty()) c.advance += pass1(segs.front());
  for (size_t k = 0; k < segs.size(); ++k) {
    const qk::Segment& seg = segs[k];
    const uint64_t compare_cycles = ceil_div(seg.keys, kpc);
    const uint64_t compare_done = compare_cycles + s.comparator.latency_cycles;
    const uint64_t next_pass1 = k + 1 < segs.size() ? pass1(segs[k + 1]) : place.next_row_pass1;
    c.comparator_busy += compare_cycles;
    c.comparator_wait += compare_done > next_pass1 ? compare_done - next_pass1 : 0;
    c.advance += std::max(next_pass1, compare_done) + pass2(seg);
    c.compares += seg.keys;
    c.reuse_writes += seg.keys;
    c.reuse_reads += seg.survivors;
    c.reuse_busy += ceil_div(seg.keys, banks) + ceil_div(seg.survivors, banks);
    row.exact_scored += seg.survivors;
  }
  return c;
}

QkRowCost early_term_row(const QkSetup& s, const HeadWork& w, const int16_t* q, RowData& row) {
  QkRowCost c;
  const int d = w.d();
  const int n = static_cast<int>(row.candidates.size());
  const int bits = s.qk.bits;
  const int64_t qpos = qk::positive_sum(q, d);
  const int64_t theta = w.layer->theta[w.head];
  std::vector<int> planes(n);
  row.keep.assign(n, 0);
  for (int j = 0; j < n; ++j) {
    const qk::EarlyTerm t = qk::early_term(q, row_ptr(w.data().k, row.candidates[j], d), d, bits, qpos, theta);
    planes[j] = t.planes;
    row.keep[j] = t.survives ? 1 : 0;
    if (t.planes == bits) ++row.exact_scored;
  }
  c.busy = s.qk.lane_sync == "independent"
               ? qk::early_term_independent_cycles(planes.data(), n, s.qk.lanes)
               : qk::early_term_lockstep_cycles(planes.data(), n, s.qk.lanes);
  c.bitplane_ops = qk::early_term_bitplane_ops(planes.data(), n);
  c.adder_tree_inputs = c.bitplane_ops * d;
  c.sram_read_bits = c.bitplane_ops * d;
  c.compares = c.bitplane_ops;  // one bound check per processed plane, inside the lane
  return c;
}

}  // namespace

uint64_t first_segment_pass1_cycles(const QkSetup& s, uint64_t candidates) {
  const uint64_t keys = std::min<uint64_t>(candidates, s.reuse.entries);
  return ceil_div(keys, s.qk.lanes) * s.qk.estimate_bits;
}

QkRowCost score_row(const QkSetup& s, const HeadWork& w, RowData& row, const RowPlace& place) {
  const int d = w.d();
  const int16_t* q = row_ptr(w.data().q, row.row, d);
  // The functional model knows every candidate's exact score (the quality reference
  // needs them); the cost below counts only the work the hardware does.
  exact_scores(w, q, row);
  row.exact_scored = 0;
  QkRowCost c;
  if (s.qk.mode == "latte")
    c = latte_row(s, w, q, row, place);
  else if (s.qk.mode == "early_term")
    c = early_term_row(s, w, q, row);
  else
    c = dense_row(s, d, row);
  if (s.qk.mode != "latte") c.advance = c.busy;
  c.sram_read_bits += static_cast<uint64_t>(d) * s.qk.bits;  // the query row
  collect_survivors(row);
  return c;
}

QkUnit::QkUnit(sc_core::sc_module_name name, const QkSetup& setup, SramBuffers& sram)
    : sc_module(name), setup_(setup), sram_(sram) {
  SC_HAS_PROCESS(QkUnit);
  SC_THREAD(run);
}

void QkUnit::run() {
  while (true) {
    std::shared_ptr<HeadWork> work = head_in->read();
    const bool traced = trace_ && trace_->in_window(work->layer_index(), work->head);
    for (int i = 0; i < work->n(); ++i) {
      const QkRowCost& c = work->rows[i].qk;
      sram_.read_bits(c.sram_read_bits);
      if (traced) trace_row(*work, i, c);
      // The row leaves when its last pass 2 ends (see the comparator schedule in the header).
      wait_cycles(Cycles(c.advance));
      total_ += c;
      if (traced)
        trace_->open(TraceUnit::qk_unit, kStall, "stall: output FIFO full", {work->layer_index(), work->head, i});
      const Cycles before = now_cycles();
      row_out->write(RowToken{work, i, sc_core::sc_time_stamp()});
      output_stall_ += (now_cycles() - before).count();
      if (traced) trace_->close(TraceUnit::qk_unit);
    }
  }
}

// A row's `advance` cycles drawn as lanes busy, then the comparator wait. Per head the
// busy parts add up to the §4 busy exactly (a row's part includes the next row's
// overlapped pass 1, see the header); the wait is drawn at the row's end.
void QkUnit::trace_row(const HeadWork& work, int row, const QkRowCost& c) {
  const TraceTag tag{work.layer_index(), work.head, row};
  const Cycles now = now_cycles(), lanes_end = now + Cycles(c.advance - c.comparator_wait);
  trace_->interval(TraceUnit::qk_unit, kBusy, now, lanes_end, "row", tag);
  trace_->interval(TraceUnit::qk_unit, kStall, lanes_end, now + Cycles(c.advance), "stall: comparator", tag);
}

ModuleActivity QkUnit::activity() const {
  ModuleActivity a{"qk_unit", total_.busy, total_.comparator_wait + output_stall_, {}};
  if (setup_.qk.type == "bit_parallel") {
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
