#include "sim/memory_estimate.h"

#include "arch/head_model.h"
#include "arch/pipeline.h"
#include "core/errors.h"
#include "sim/masks.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace attnsim {

namespace {

// Bytes of one row's scratch per key it sees: RowData (candidates 4, exact score 8,
// decision 1, planes 4, survivor id 4 and score 8, probability 8) and the quality
// reference (three doubles a key, an exact score and an index): 37 + 36, rounded up.
constexpr double kRowScratchPerKey = 80;

double ceil_div(double a, double b) { return std::ceil(a / b); }

// The candidate generator's state for one head, kept while the head is in flight.
double candidate_state(const Config& c, const RunPlan& plan, double n, double m, double d) {
  if (c.candidates.source == "lsh") {
    const double rounds = plan.config.at("lsh_unit").at("rounds").get<int>();
    const double reach = std::min(m, rounds * c.lsh_unit.cluster_size);  // candidates a query can have
    return n * reach * 4 + (n + m) * rounds * 4;
  }
  if (c.candidates.source == "tree") {
    const double depth = plan.config.at("tree_engine").at("depth").get<int>();
    const double tc_outputs = c.tree_engine.attention == TreeAttention::tc ? n * d * 8 : 0;
    return tc_outputs + m * ((depth + 1) * 4 + 24);  // each key's path
  }
  return 0;
}

// One head from its load to its last row written back.
double head_in_flight(const Config& c, const RunPlan& plan, double n, double m, double d) {
  const double qb = c.qk_unit.query_block, blocks = qb > 1 ? ceil_div(n, qb) : 0;
  double bytes = n * sizeof(RowOutcome);
  if (!plan.tiling.on) return bytes + blocks * sizeof(QkRowCost) + candidate_state(c, plan, n, m, d);
  // K/V tiling: per row and tile its part, per query block and tile their cost together.
  const double tiles = ceil_div(m, plan.tiling.key_tile);
  bytes += n * tiles * sizeof(TilePart) + n * 8 + ceil_div(n, plan.tiling.query_tile) * tiles * 4 +
           blocks * tiles * sizeof(QkRowCost);
  return bytes + candidate_state(c, plan, n, m, d);
}

// The helpers of the head the model is computing (freed once its rows are done).
// float_reference: the quality meter's float reference (a float trace with quality on)
// holds the head's K and V floats widened to double.
double head_being_loaded(const Config& c, const RunPlan& plan, double n, double m, double d, bool float_reference) {
  const bool dequantized_rows =
      c.candidates.source == "tree" || c.candidates.source == "lsh" || c.lowrank_unit.enabled;
  double bytes = m * d * 8;                                        // V
  if (c.qk_unit.mode == QkMode::latte) bytes += m * d * 2;         // K's MSB planes
  if (dequantized_rows) bytes += (n + m) * d * 8;                  // Q and K
  if (c.lowrank_unit.enabled) bytes += plan.config.at("lowrank_unit").at("features").get<int>() * (n + m) * 8.0;
  if (float_reference) bytes += 2 * m * d * 8;
  return bytes;
}

std::vector<MemoryPart> layer_parts(const Config& c, const RunPlan& plan, const LayerShape& s, int threads) {
  const double h = s.heads, n = s.n, m = s.m, d = s.d;
  const double element = s.dtype == DType::I8 ? 2 : 2 + 4;  // quantized, and the floats of a float trace
  const int row_threads = std::max(1, std::min(threads, s.n / 16));  // as HeadModel spreads rows
  return {{"layer tensors", 2 * h * (n + 2 * m) * d * element},
          {"FCA probabilities", c.skim_controller.mode == SkimMode::fca ? n * n * 8 : 0},
          // The SRAM slots, the head in the write-back and, with more than one thread, the
          // heads the head source computed ahead (HeadSource::kAhead).
          {"heads in flight", (plan.sram_slots + 1 + (threads > 1 ? HeadSource::kAhead : 0)) *
                                  head_in_flight(c, plan, n, m, d)},
          {"head being loaded", head_being_loaded(c, plan, n, m, d, c.quality.enabled && s.dtype != DType::I8)},
          {"row scratch", double(row_threads) * c.qk_unit.query_block * m * kRowScratchPerKey}};
}

double total_of(const std::vector<MemoryPart>& parts) {
  double total = 0;
  for (const MemoryPart& p : parts) total += p.bytes;
  return total;
}

}  // namespace

MemoryEstimate estimate_run_memory(const Config& c, const Trace& trace, const RunPlan& plan, int threads,
                                   bool masks) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  MemoryEstimate e;
  std::vector<MemoryPart> peak;
  for (int l = 0; l < trace.layers(); ++l) {
    std::vector<MemoryPart> parts = layer_parts(c, plan, trace.shape(l), threads);
    if (l == 0 || total_of(parts) > total_of(peak)) {
      peak = std::move(parts);
      e.layer = l;
    }
  }
  if (masks) peak.push_back({"masks", keep_masks_bytes(c, trace)});
  for (const MemoryPart& p : peak)
    if (p.bytes > 0) e.parts.push_back(p);
  e.bytes = total_of(e.parts);
  return e;
}

std::string bytes_text(double bytes) {
  static const char* const kUnits[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 6) bytes /= 1024, ++unit;
  char text[32];
  if (unit == 0) std::snprintf(text, sizeof text, "%.0f bytes", bytes);
  else std::snprintf(text, sizeof text, bytes < 10 ? "%.2f %s" : bytes < 100 ? "%.1f %s" : "%.0f %s", bytes, kUnits[unit]);
  return text;
}

void check_memory_cap(const MemoryEstimate& e, uint64_t cap_bytes, const std::string& cap_source,
                      const std::string& trace_path) {
  if (cap_bytes == 0 || e.bytes <= static_cast<double>(cap_bytes)) return;
  std::string parts;
  for (const MemoryPart& p : e.parts) parts += (parts.empty() ? "" : ", ") + p.what + " " + bytes_text(p.bytes);
  throw SimulationError(trace_path + ": the run needs an estimated " + bytes_text(e.bytes) + " (layer " +
                        std::to_string(e.layer) + ": " + parts + "), more than the memory cap of " +
                        bytes_text(static_cast<double>(cap_bytes)) + " (" + cap_source + ")");
}

uint64_t default_memory_cap() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  uint64_t limit = pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
  std::ifstream cgroup("/sys/fs/cgroup/memory.max");  // cgroup v2; "max" when unlimited
  std::string text;
  if (cgroup >> text && !text.empty() && std::all_of(text.begin(), text.end(), ::isdigit)) {
    const uint64_t cg = std::stoull(text);
    if (cg > 0 && (limit == 0 || cg < limit)) limit = cg;
  }
  return limit / 2;
}

uint64_t parse_memory_size(const std::string& text) {
  const auto bad = [&] {
    return std::invalid_argument("expected a size such as 512MiB, 8GiB or unlimited, got '" + text + "'");
  };
  if (text == "unlimited") return 0;
  size_t used = 0;
  double number = 0;
  try {
    if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) throw bad();
    number = std::stod(text, &used);
  } catch (const std::exception&) {
    throw bad();
  }
  std::string unit = text.substr(used);
  if (unit.size() == 3 && unit.compare(1, 2, "iB") == 0) unit = unit.substr(0, 1);  // KiB -> K
  const std::string units = "KMGT";
  double scale = 1;
  if (unit.size() == 1 && units.find(unit[0]) != std::string::npos)
    scale = std::pow(1024.0, double(units.find(unit[0]) + 1));
  else if (!unit.empty() && unit != "B")
    throw bad();
  const double bytes = number * scale;
  if (!(bytes >= 1) || bytes > 1.8e19) throw bad();  // at least a byte, within 64 bits
  return static_cast<uint64_t>(bytes);
}

}  // namespace attnsim
