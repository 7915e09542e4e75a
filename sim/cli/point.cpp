// `attnsim point DIR HASH [--timeout S] [-- COMMAND...]`: the body of the job lines that
// `attnsim sweep --emit-jobs` writes (docs/sweeps.md).
#include "sim/cli/commands.h"
#include "sim/cli/errors.h"
#include "sim/sweep/point_job.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

namespace attnsim {

namespace po = boost::program_options;

int cmd_point(int argc, char** argv) {
  po::options_description opts(
      "usage: attnsim point DIR HASH                         (is the point done?)\n"
      "       attnsim point DIR HASH [--timeout S] -- COMMAND  (run it unless done)\n\n"
      "A sweep point is done when DIR/points/HASH.json is a complete stats file. Without a\n"
      "command: exit status 0 when done, 1 (and why) when not. With one: runs COMMAND unless\n"
      "the point is done, killing it after S seconds (exit status 124). These are the\n"
      "lines of `attnsim sweep --emit-jobs`. See docs/sweeps.md.\n\noptions");
  std::string dir, hash;
  double timeout = 0;
  opts.add_options()("help,h", "show this help")("dir", po::value(&dir), "sweep directory")(
      "hash", po::value(&hash), "the point's hash")(
      "timeout", po::value(&timeout), "seconds the command may run (default: no limit)");
  po::positional_options_description positional;
  positional.add("dir", 1).add("hash", 1);
  // Everything after "--" is the command, untouched by option parsing.
  char** dashes = std::find_if(argv, argv + argc, [](const char* a) { return std::string(a) == "--"; });
  PointJob job;
  for (char** a = dashes == argv + argc ? dashes : dashes + 1; a < argv + argc; ++a) job.command.emplace_back(*a);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(static_cast<int>(dashes - argv), argv).options(opts).positional(positional).run(),
              vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(std::string("point: ") + e.what());
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  if (dir.empty() || hash.empty() || !(timeout >= 0) || (dashes != argv + argc && job.command.empty()))
    return usage_error("point: usage: attnsim point DIR HASH [--timeout S] [-- COMMAND ...]");
  try {
    job.dir = sweep_dir(dir);
    job.hash = hash;
    job.timeout_seconds = timeout;
    return run_point_job(job);
  } catch (const std::exception& e) {
    return report_error(e);
  }
}

}  // namespace attnsim
