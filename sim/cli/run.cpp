// `attnsim run`: simulate one config on one trace.
#include "arch/activity_trace.h"
#include "core/file_io.h"
#include "core/json_input.h"
#include "sim/cli/commands.h"
#include "sim/cli/errors.h"
#include "sim/cli/limits.h"
#include "sim/config.h"
#include "sim/energy.h"
#include "sim/run.h"
#include "sim/stats.h"
#include "workloads/safetensors.h"

#include <boost/program_options.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace attnsim {

namespace po = boost::program_options;

namespace {

// A progress bar with ETA on stderr, drawn only when stderr is a terminal.
class ProgressBar {
 public:
  ProgressBar() : enabled_(isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}
  void update(uint64_t done, uint64_t total) {
    if (!enabled_ || total == 0) return;
    const double frac = static_cast<double>(done) / total;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
    const int width = 30, filled = static_cast<int>(frac * width);
    std::fprintf(stderr, "\r[%s%s] %5.1f%%  %llu/%llu rows  ETA %.1fs ",
                 std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(), 100 * frac,
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total), eta);
    drawn_ = true;
  }
  ~ProgressBar() {
    if (drawn_) std::fprintf(stderr, "\r%80s\r", "");
  }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
};

// A masks file that cannot be written is found before the simulation, not after it: the
// nearest existing ancestor of its directory must be a writable directory (missing
// directories are created when the file is written, as for --out).
void check_masks_path(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(path).parent_path();
  std::error_code ec;
  while (!dir.empty() && !fs::exists(dir, ec)) dir = dir.parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec))
    throw IoError("--masks: " + path + ": cannot write: " + dir.string() + " is not a directory");
  if (access(dir.c_str(), W_OK) != 0)
    throw IoError("--masks: " + path + ": cannot write: " + dir.string() + ": " + std::strerror(errno));
}

// Masks first, then the stats; when the stats cannot be written the masks go too, so that
// a failed run leaves no file.
void write_outputs(RunReport& report, const std::string& masks_path, const std::string& out_path) {
  if (report.masks) {
    const std::filesystem::path parent = std::filesystem::path(masks_path).parent_path();
    try {
      if (!parent.empty()) std::filesystem::create_directories(parent);
    } catch (const std::filesystem::filesystem_error& e) {
      throw IoError("--masks: " + masks_path + ": cannot write: " + e.code().message());
    }
    report.masks->write(masks_path, report.stats["trace"]["sha256"].get<std::string>());
  }
  if (out_path.empty()) return;
  try {
    write_file_atomically(out_path, report.stats.dump(2) + "\n");
  } catch (...) {
    if (report.masks) std::remove(masks_path.c_str());
    throw;
  }
}

}  // namespace

int cmd_run(int argc, char** argv) {
  po::options_description opts(
      "usage: attnsim run --config C.json --trace T.safetensors --out stats.json [--set key.path=value ...]\n"
      "                   [--vcd run.vcd] [--timeline run.json] [--trace-layers A:B] [--trace-heads A:B]\n"
      "                   [--masks M.safetensors] [--max-memory SIZE]\n\n"
      "Simulates the configured accelerator on every layer and head of the trace and writes the\n"
      "stats JSON (schema attnsim.stats/1); a summary goes to stdout.\n\noptions");
  std::string config_path, trace_path, out_path, trace_layers, trace_heads, masks_path, max_memory;
  std::vector<std::string> overrides;
  TraceOptions tracing;
  opts.add_options()("help,h", "show this help")(
      "config,c", po::value(&config_path),
      "config JSON (schema attnsim.config/1); without it every default applies")(
      "trace,t", po::value(&trace_path), "trace (safetensors)")(
      "out,o", po::value(&out_path), "stats JSON to write (written atomically)")(
      "set", po::value(&overrides)->composing(), "override a config key: --set qk_unit.lanes=32 (repeatable)")(
      "quiet,q", "print nothing on success")(
      "threads,j", po::value<int>()->default_value(0),
      "threads for the functional model (0 = one per core, at most 1024); results do not depend on it")(
      "vcd", po::value(&tracing.vcd_path),
      "write each unit's busy/stall state and the FIFO levels as a VCD waveform (GTKWave; 1 ns = 1 cycle)")(
      "timeline", po::value(&tracing.timeline_path),
      "write the same activity as Chrome trace-event JSON (Perfetto, chrome://tracing; 1 ns = 1 cycle)")(
      "trace-layers", po::value(&trace_layers),
      "layers to trace, inclusive: A:B, A, A:, :B or all (default 0)")(
      "trace-heads", po::value(&trace_heads), "heads to trace, inclusive: A:B, A, A:, :B or all (default all)")(
      "masks", po::value(&masks_path),
      "write, per layer and head, each query row's candidate keys and which of them the comparator kept "
      "(safetensors: layers.{l}.tokens, layers.{l}.keep with 0 not a candidate, 1 filtered, 2 kept; "
      "docs/tracing.md); at most 1 GiB")(
      "max-memory", po::value(&max_memory)->value_name("SIZE"),
      "refuse, before it starts, a run whose estimated memory exceeds SIZE (512MiB, 8GiB, unlimited; "
      "default: $ATTNSIM_MAX_MEMORY, else half the machine's memory; docs/reliability.md#memory-cap)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(std::string("run: ") + e.what());
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return kExitOk;
  }
  if (trace_path.empty()) return usage_error("run: --trace is required");
  // The stats record the path as JSON text, which must be UTF-8: refused now rather than
  // after the whole simulation, when the stats are written.
  if (const std::string bad = utf8_problem(trace_path); !bad.empty())
    return usage_error("run: --trace: the path is not valid UTF-8 (" + bad + "), which the stats JSON cannot hold");
  if (const std::string bad = count_problem("--threads", vm["threads"].as<int>(), 0); !bad.empty())
    return usage_error("run: " + bad);
  try {
    if (!trace_layers.empty()) tracing.layers = parse_trace_range(trace_layers, "--trace-layers");
    if (!trace_heads.empty()) tracing.heads = parse_trace_range(trace_heads, "--trace-heads");
  } catch (const std::invalid_argument& e) {
    return usage_error(std::string("run: ") + e.what());
  }
  if ((!trace_layers.empty() || !trace_heads.empty()) && !tracing.enabled())
    return usage_error("run: --trace-layers and --trace-heads choose what --vcd or --timeline record; give one of them");
  MemoryCap memory_cap;
  try {
    memory_cap = resolve_memory_cap(max_memory);
  } catch (const UsageError& e) {
    return usage_error(std::string("run: ") + e.what());
  }
  try {
    const Config config = config_path.empty() ? resolve_config(json{{"schema", kConfigSchema}}, "<defaults>", overrides)
                                              : load_config(config_path, overrides);
    if (!masks_path.empty()) check_masks_path(masks_path);
    RunReport report;
    {
      ProgressBar bar;
      report = run_simulation(config, trace_path, vm["threads"].as<int>(),
                              [&](uint64_t d, uint64_t t) { bar.update(d, t); }, &tracing, !masks_path.empty(),
                              memory_cap);
    }
    write_outputs(report, masks_path, out_path);
    if (!vm.count("quiet")) {
      std::cout << text_summary(report.stats);
      if (!out_path.empty()) std::cout << "stats     " << out_path << "\n";
      if (!masks_path.empty()) std::cout << "masks     " << masks_path << "\n";
      if (!tracing.vcd_path.empty()) std::cout << "vcd       " << tracing.vcd_path << "\n";
      if (!tracing.timeline_path.empty()) std::cout << "timeline  " << tracing.timeline_path << "\n";
    }
  } catch (const std::exception& e) {
    return report_error(e);
  }
  return kExitOk;
}

}  // namespace attnsim
