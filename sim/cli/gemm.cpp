// `attnsim gemm --m M --n N --k K`: the GEMM engine's cycles for one GEMM
// C[M x N] = A[M x K] * B[K x N], for comparison with SCALE-Sim v2 runs. The numbers are
// those of the engine's timing rule (arch/gemm_math.h), the same the SystemC module
// waits; docs/gemm_engine.md explains them.
#include "arch/gemm_math.h"
#include "sim/cli/commands.h"
#include "sim/cli/errors.h"
#include "sim/config.h"

#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnsim {

namespace {

int gemm_usage_error(const std::string& message) { return usage_error("gemm: " + message); }

// A dimension: a decimal integer from 1 to gemm::kMaxDimension (no sign, no suffix).
uint64_t parse_dimension(const std::string& flag, const std::string& text) {
  const auto bad = [&] {
    return std::invalid_argument("--" + flag + ": must be an integer from 1 to " +
                                 std::to_string(gemm::kMaxDimension) + ", got '" + text + "'");
  };
  if (text.empty() || text.size() > 10) throw bad();
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') throw bad();
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v < 1 || v > gemm::kMaxDimension) throw bad();
  return v;
}

nlohmann::ordered_json to_json(const gemm::GemmShape& s, const Config& c, const gemm::GemmTiming& t) {
  nlohmann::ordered_json j;
  j["m"] = s.m, j["n"] = s.n, j["k"] = s.k;
  j["rows"] = c.gemm_engine.rows, j["cols"] = c.gemm_engine.cols, j["dataflow"] = gemm::dataflow_name(c.gemm_engine.dataflow);
  j["cycles"] = t.cycles;
  j["compute_cycles"] = t.compute_cycles;
  j["stall_cycles"] = t.stall_cycles;
  j["scalesim_total_cycles"] = t.compute_cycles - 1;  // SCALE-Sim prints the last cycle's 0-based index
  j["macs"] = t.macs;
  j["utilization"] = t.utilization;
  j["folds"] = t.mapping.folds();
  j["row_folds"] = t.mapping.row_folds, j["col_folds"] = t.mapping.col_folds;
  j["cycles_per_fold"] = t.cycles_per_fold;
  j["dram_cycles"] = t.dram_cycles;
  j["fits_in_buffer"] = t.traffic.fits;
  j["footprint_bytes"] = t.traffic.footprint_bytes;
  j["buffer_bytes"] = t.traffic.buffer_bytes;
  j["fold_working_set_bytes"] = t.traffic.fold_working_set_bytes;
  j["dram_read_bytes"] = t.traffic.dram_read_bytes;
  j["dram_write_bytes"] = t.traffic.dram_write_bytes;
  j["sram_read_bits"] = t.traffic.sram_read_bits;
  j["sram_write_bits"] = t.traffic.sram_write_bits;
  return j;
}

void print_text(const gemm::GemmShape& s, const Config& c, const gemm::GemmTiming& t) {
  const GemmEngineParams& p = c.gemm_engine;
  std::printf("gemm        M=%llu N=%llu K=%llu on %d x %d, %s\n", static_cast<unsigned long long>(s.m),
              static_cast<unsigned long long>(s.n), static_cast<unsigned long long>(s.k), p.rows, p.cols,
              gemm::dataflow_name(p.dataflow));
  std::printf("folds       %llu (%llu x %llu) x %llu cycles\n", static_cast<unsigned long long>(t.mapping.folds()),
              static_cast<unsigned long long>(t.mapping.row_folds),
              static_cast<unsigned long long>(t.mapping.col_folds),
              static_cast<unsigned long long>(t.cycles_per_fold));
  std::printf("compute     %llu cycles (SCALE-Sim Total Cycles %llu)\n",
              static_cast<unsigned long long>(t.compute_cycles),
              static_cast<unsigned long long>(t.compute_cycles - 1));
  std::printf("dram        %llu cycles (%llu B read, %llu B written, operands %s the %llu B buffer)\n",
              static_cast<unsigned long long>(t.dram_cycles),
              static_cast<unsigned long long>(t.traffic.dram_read_bytes),
              static_cast<unsigned long long>(t.traffic.dram_write_bytes), t.traffic.fits ? "fit in" : "exceed",
              static_cast<unsigned long long>(t.traffic.buffer_bytes));
  std::printf("stall       %llu cycles\n", static_cast<unsigned long long>(t.stall_cycles));
  std::printf("cycles      %llu\n", static_cast<unsigned long long>(t.cycles));
  std::printf("macs        %llu\n", static_cast<unsigned long long>(t.macs));
  std::printf("utilization %.6f\n", t.utilization);
}

}  // namespace

int cmd_gemm(int argc, char** argv) {
  namespace po = boost::program_options;
  po::options_description opts(
      "usage: attnsim gemm --m M --n N --k K [--config C.json] [--set key=value ...] [--json]\n\n"
      "Cycles of the GEMM engine for C[M x N] = A[M x K] * B[K x N] (A activations, B weights):\n"
      "SCALE-Sim v2's compute cycles (+1: SCALE-Sim prints the last cycle's index) plus memory\n"
      "stalls, reported separately (docs/gemm_engine.md).\n\noptions");
  std::string m_text, n_text, k_text, config_path;
  std::vector<std::string> overrides;
  opts.add_options()("help,h", "show this help")("m", po::value(&m_text), "M: rows of A and C")(
      "n", po::value(&n_text), "N: columns of B and C")("k", po::value(&k_text), "K: the reduction dimension")(
      "config,c", po::value(&config_path), "config JSON (gemm_engine and dram sections); defaults otherwise")(
      "set", po::value(&overrides)->composing(), "override a config key: --set gemm_engine.dataflow=ws (repeatable)")(
      "json", "print one JSON object instead of text");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return gemm_usage_error(e.what());
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  gemm::GemmShape shape;
  try {
    for (const char* flag : {"m", "n", "k"})
      if (!vm.count(flag)) throw std::invalid_argument(std::string("--") + flag + " is required");
    shape = {parse_dimension("m", m_text), parse_dimension("n", n_text), parse_dimension("k", k_text)};
  } catch (const std::invalid_argument& e) {
    return gemm_usage_error(e.what());
  }
  try {
    const Config config = config_path.empty()
                              ? resolve_config(json{{"schema", kConfigSchema}}, "<defaults>", overrides)
                              : load_config(config_path, overrides);
    gemm::GemmTiming t;
    try {
      t = gemm::gemm_timing(shape, config.gemm_engine, config.dram);
    } catch (const std::invalid_argument& e) {  // M x N x K beyond what the engine's counters take
      return usage_error(e.what());
    }
    if (vm.count("json"))
      std::cout << to_json(shape, config, t).dump() << "\n";
    else
      print_text(shape, config, t);
  } catch (const std::exception& e) {
    return report_error(e);
  }
  return kExitOk;
}

}  // namespace attnsim
