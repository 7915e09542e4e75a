#include "arch/gemm_math.h"

#include "core/cycles.h"

#include <algorithm>
#include <stdexcept>

namespace attnsim::gemm {

Dataflow parse_dataflow(const std::string& name) {
  for (const auto& [n, d] : dataflows())
    if (n == name) return d;
  throw std::invalid_argument("gemm_engine.dataflow: must be one of \"os\", \"ws\", \"is\", got \"" + name + "\"");
}

const char* dataflow_name(Dataflow d) { return choice_name(dataflows(), d).c_str(); }

void check_shape(const GemmShape& s) {
  const auto shape = [&] {
    return "M=" + std::to_string(s.m) + " N=" + std::to_string(s.n) + " K=" + std::to_string(s.k);
  };
  if (s.m < 1 || s.n < 1 || s.k < 1) throw std::invalid_argument("gemm: M, N and K must be >= 1, got " + shape());
  if (s.m > kMaxDimension || s.n > kMaxDimension || s.k > kMaxDimension)
    throw std::invalid_argument("gemm: M, N and K must be <= " + std::to_string(kMaxDimension) + ", got " + shape());
  if (s.m * s.n * s.k > kMaxMacs)
    throw std::invalid_argument("gemm: M*N*K must be <= 2^50, got " + shape());
}

Mapping map_gemm(const GemmShape& s, Dataflow d, uint64_t rows, uint64_t cols) {
  Mapping m;
  switch (d) {
    case Dataflow::OutputStationary: m.sr = s.m, m.sc = s.n, m.t = s.k; break;
    case Dataflow::WeightStationary: m.sr = s.k, m.sc = s.n, m.t = s.m; break;
    case Dataflow::InputStationary: m.sr = s.k, m.sc = s.m, m.t = s.n; break;
  }
  m.row_folds = ceil_div(m.sr, rows);
  m.col_folds = ceil_div(m.sc, cols);
  return m;
}

uint64_t cycles_per_fold(Dataflow d, uint64_t rows, uint64_t cols, uint64_t t) {
  // Output-stationary: skewed streams fill R + C - 2 diagonals around T steps; the drain
  // of the finished outputs overlaps the next fold. Weight/input-stationary: the
  // stationary tile first shifts in through the R rows.
  const uint64_t preload = d == Dataflow::OutputStationary ? 0 : rows;
  return preload + rows + cols + t - 2;
}

uint64_t compute_cycles(const GemmShape& s, Dataflow d, uint64_t rows, uint64_t cols) {
  const Mapping m = map_gemm(s, d, rows, cols);
  return m.folds() * cycles_per_fold(d, rows, cols, m.t);
}

uint64_t macs(const GemmShape& s) { return s.m * s.n * s.k; }

double utilization(uint64_t macs, uint64_t cycles, uint64_t rows, uint64_t cols) {
  if (cycles == 0) return 0.0;
  return static_cast<double>(macs) / (static_cast<double>(cycles) * static_cast<double>(rows * cols));
}

namespace {

uint64_t bytes_of(uint64_t bits) { return ceil_div(bits, 8); }

// The three matrices (in bits) by their role on the array.
struct Roles {
  uint64_t row_edge, column_edge, stationary;
  bool column_edge_is_output;                  // ws, is: C streams out of the column edge
};

Roles roles(Dataflow d, uint64_t a, uint64_t b, uint64_t c) {
  switch (d) {
    case Dataflow::OutputStationary: return {a, b, c, false};
    case Dataflow::WeightStationary: return {a, c, b, true};
    case Dataflow::InputStationary: return {b, c, a, true};
  }
  return {a, b, c, false};
}

}  // namespace

GemmTraffic traffic(const GemmShape& s, const GemmEngineParams& p) {
  check_shape(s);
  const Dataflow d = p.dataflow;
  const Mapping m = map_gemm(s, d, p.rows, p.cols);
  const uint64_t in = p.input_bits, out = p.output_bits;
  const uint64_t a = s.m * s.k * in, b = s.k * s.n * in, c = s.m * s.n * out;
  const Roles r = roles(d, a, b, c);

  GemmTraffic t;
  t.footprint_bytes = bytes_of(a) + bytes_of(b) + bytes_of(c);
  t.buffer_bytes = static_cast<uint64_t>(p.sram_kib) * 1024;
  t.fits = t.footprint_bytes <= t.buffer_bytes;

  // One fold's tiles: the row-edge tile is (<= R) x T, the column-edge block T x (<= C),
  // the stationary tile (<= R) x (<= C); each at the width of its matrix (A and B are
  // inputs, C the output).
  const uint64_t tile_rows = std::min<uint64_t>(p.rows, m.sr), tile_cols = std::min<uint64_t>(p.cols, m.sc);
  const uint64_t column_edge_width = r.column_edge_is_output ? out : in;
  const uint64_t stationary_width = d == Dataflow::OutputStationary ? out : in;
  t.fold_working_set_bytes = bytes_of(tile_rows * m.t * in) + bytes_of(m.t * tile_cols * column_edge_width) +
                             bytes_of(tile_rows * tile_cols * stationary_width);

  // DRAM: A and B read once when everything fits; otherwise the row-edge operand (os, ws:
  // A; is: B) once per fold column. C written once. Each transfer rounds up to bytes.
  const uint64_t row_edge_reads = t.fits ? 1 : m.col_folds;
  const uint64_t a_reads = d == Dataflow::InputStationary ? 1 : row_edge_reads;
  const uint64_t b_reads = d == Dataflow::InputStationary ? row_edge_reads : 1;
  t.dram_read_bytes = a_reads * bytes_of(a) + b_reads * bytes_of(b);
  t.dram_write_bytes = bytes_of(c);

  // Array edge, summed over folds: the row-edge operand is fed once per fold column, the
  // column-edge one once per fold row, the stationary tiles once in all.
  t.sram_read_bits = m.col_folds * r.row_edge;
  if (r.column_edge_is_output) {
    t.sram_read_bits += r.stationary + (m.row_folds - 1) * r.column_edge;  // preload + partial sums back
    t.sram_write_bits = m.row_folds * r.column_edge;
  } else {
    t.sram_read_bits += m.row_folds * r.column_edge;
    t.sram_write_bits = r.stationary;  // os: each output tile drained once
  }
  return t;
}

uint64_t dram_cycles(uint64_t bytes, const DramParams& dram) {
  if (bytes == 0) return 0;
  return dram_transfer_cycles(dram, bytes).count() + static_cast<uint64_t>(dram.latency_cycles);
}

uint64_t stall_cycles(uint64_t dram, uint64_t compute) { return dram > compute ? dram - compute : 0; }

uint64_t burst_bytes(const DramParams& dram) {
  const uint64_t per_cycle = static_cast<uint64_t>(dram.bytes_per_cycle);
  const uint64_t burst = static_cast<uint64_t>(dram.burst_bytes);
  return std::max(per_cycle, burst - burst % per_cycle);
}

GemmTiming gemm_timing(const GemmShape& s, const GemmEngineParams& p, const DramParams& dram) {
  check_shape(s);
  const Dataflow d = p.dataflow;
  GemmTiming g;
  g.mapping = map_gemm(s, d, p.rows, p.cols);
  g.cycles_per_fold = cycles_per_fold(d, p.rows, p.cols, g.mapping.t);
  g.compute_cycles = g.mapping.folds() * g.cycles_per_fold;
  g.traffic = traffic(s, p);
  g.dram_cycles = dram_cycles(g.traffic.dram_read_bytes + g.traffic.dram_write_bytes, dram);
  g.stall_cycles = stall_cycles(g.dram_cycles, g.compute_cycles);
  g.cycles = g.compute_cycles + g.stall_cycles;
  g.macs = macs(s);
  g.utilization = utilization(g.macs, g.cycles, p.rows, p.cols);
  return g;
}

}  // namespace attnsim::gemm
