// `attnsim calibrate`: per-head LATTE gammas for a target filtered ratio or rel_error.
#include "core/file_io.h"
#include "sim/calibrate.h"
#include "sim/cli/commands.h"
#include "sim/cli/errors.h"
#include "sim/cli/limits.h"
#include "sim/config.h"
#include "sim/stats.h"

#include <boost/program_options.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace attnsim {

namespace po = boost::program_options;

int cmd_calibrate(int argc, char** argv) {
  po::options_description opts(
      "usage: attnsim calibrate --config C.json --trace T.safetensors --target filtered_ratio=0.85 --out C2.json\n"
      "       attnsim calibrate ... --target rel_error=0.02 ...\n\n"
      "Finds the LATTE keep ratio gamma of every (layer, head) so that the trace reaches the target\n"
      "(per head by bisection on the integer margin, measured with the simulator's own functional\n"
      "model), and writes the whole resolved config with comparator.gamma as L lists of H numbers,\n"
      "ready for `attnsim run`. filtered_ratio: the overall ratio lands within 0.01 of the target.\n"
      "rel_error: every head's rel_error is at most the target. See docs/calibrate.md.\n\noptions");
  std::string config_path, trace_path, out_path, target_text;
  std::vector<std::string> overrides;
  opts.add_options()("help,h", "show this help")(
      "config,c", po::value(&config_path), "config JSON (schema attnsim.config/1); qk_unit.mode must be \"latte\"")(
      "trace,t", po::value(&trace_path), "trace (safetensors) to calibrate on")(
      "target", po::value(&target_text), "filtered_ratio=X or rel_error=X, 0 < X < 1")(
      "out,o", po::value(&out_path), "calibrated config JSON to write (atomically; nothing on error)")(
      "set", po::value(&overrides)->composing(), "override a config key before calibrating (repeatable)")(
      "quiet,q", "print nothing on success")(
      "threads,j", po::value<int>()->default_value(0),
      "threads for the functional model (0 = one per core, at most 1024); results do not depend on it");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(std::string("calibrate: ") + e.what());
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"--trace", &trace_path},
                                    {"--target", &target_text}, {"--out", &out_path}}) {
    if (value->empty()) return usage_error(std::string("calibrate: ") + name + " is required");
  }
  if (const std::string bad = count_problem("--threads", vm["threads"].as<int>(), 0); !bad.empty())
    return usage_error("calibrate: " + bad);
  CalibrationTarget target;
  try {
    target = parse_calibration_target(target_text);
  } catch (const std::exception& e) {
    return usage_error(std::string("calibrate: ") + e.what());
  }
  try {
    const Config config = config_path.empty()
                              ? resolve_config(json{{"schema", kConfigSchema}}, "<defaults>", overrides)
                              : load_config(config_path, overrides);
    const Trace trace(trace_path);
    const CalibrationResult result = calibrate(config, trace, target, vm["threads"].as<int>());
    write_file_atomically(out_path, result.config.dump(2) + "\n");
    if (!vm.count("quiet")) std::cout << calibration_report(result) << "wrote     " << out_path << "\n";
  } catch (const std::exception& e) {
    return report_error(e);
  }
  return kExitOk;
}

}  // namespace attnsim
