// attnsim: command-line entry point. Dispatches to the subcommands in sim/cli/commands.h.
#include "core/sanitizer_options.h"
#include "sim/cli/commands.h"
#include "sim/cli/errors.h"

#include "core/isa.h"

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

namespace {

void print_usage(std::ostream& os) {
  os << "attnsim " ATTNSIM_VERSION
        " - cycle-accurate simulator of approximate and sparse attention accelerators\n\n"
        "usage: attnsim <command> [options]\n\n"
        "commands:\n"
        "  run          simulate a config on a trace, write stats JSON\n"
        "  trace synth  write a synthetic trace\n"
        "  trace info   print layers, heads, shapes, dtypes and metadata of a trace\n"
        "  config       print the config reference (--doc) or a resolved config (--resolve)\n"
        "  calibrate    find per-head LATTE gammas for a target filtered_ratio or rel_error\n"
        "  compare      compare stats files side by side (speedup, energy reduction)\n"
        "  kernel       time the bare arithmetic of dense attention on a trace (benchmarks)\n"
        "  gemm         cycles of the GEMM engine for one GEMM (compare with SCALE-Sim)\n"
        "  sweep        run a design-space sweep (points in parallel, resumable) or emit its jobs\n"
        "  report       print a sweep's points sorted by a metric and its Pareto front\n"
        "  merge        build a sweep's summary.csv from whatever points finished\n"
        "  point        check a sweep point, or run it unless done (the lines of sweep --emit-jobs)\n\n"
        "  attnsim <command> --help   options of a command\n"
        "  attnsim --version\n"
        "  attnsim --isa       the kernels' instruction-set path, then every path this CPU can run\n"
        "                      (ATTNSIM_ISA=baseline|avx2|avx512 forces one)\n";
}

// The subcommand named by argv[1]; its own name becomes its argv[0].
int dispatch(int argc, char** argv) {
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    print_usage(std::cout);
    return attnsim::kExitOk;
  }
  if (command == "--version") {
    std::cout << "attnsim " ATTNSIM_VERSION "\n";
    return attnsim::kExitOk;
  }
  // The kernels' instruction-set path (core/isa.h): ATTNSIM_ISA is checked before any work.
  try {
    attnsim::active_isa();
  } catch (const std::exception& e) {
    return attnsim::usage_error(e.what());
  }
  if (command == "--isa") {  // the path in use, then every path this CPU can run
    std::cout << attnsim::isa_name(attnsim::active_isa());
    for (attnsim::Isa isa : {attnsim::Isa::baseline, attnsim::Isa::avx2, attnsim::Isa::avx512})
      if (attnsim::isa_supported(isa)) std::cout << " " << attnsim::isa_name(isa);
    std::cout << "\n";
    return attnsim::kExitOk;
  }
  if (command == "run") return attnsim::cmd_run(argc - 1, argv + 1);
  if (command == "trace") return attnsim::cmd_trace(argc - 1, argv + 1);
  if (command == "config") return attnsim::cmd_config(argc - 1, argv + 1);
  if (command == "calibrate") return attnsim::cmd_calibrate(argc - 1, argv + 1);
  if (command == "compare") return attnsim::cmd_compare(argc - 1, argv + 1);
  if (command == "kernel") return attnsim::cmd_kernel(argc - 1, argv + 1);
  if (command == "gemm") return attnsim::cmd_gemm(argc - 1, argv + 1);
  if (command == "sweep") return attnsim::cmd_sweep(argc - 1, argv + 1);
  if (command == "report") return attnsim::cmd_report(argc - 1, argv + 1);
  if (command == "merge") return attnsim::cmd_merge(argc - 1, argv + 1);
  if (command == "point") return attnsim::cmd_point(argc - 1, argv + 1);
  return attnsim::usage_error("unknown command '" + command + "' (try attnsim --help)");
}

}  // namespace

int main(int argc, char** argv) {
  // Silence the SystemC banner before any SystemC object exists.
  setenv("SC_COPYRIGHT_MESSAGE", "DISABLE", 1);
  if (argc < 2) {
    print_usage(std::cerr);
    return attnsim::exit_code(attnsim::ErrorClass::usage);
  }
  // The commands report their own failures; this catches what escapes them, so that no
  // error ends the process without its one line and exit code.
  try {
    return dispatch(argc, argv);
  } catch (const std::exception& e) {
    return attnsim::report_error(e);
  } catch (...) {
    std::cerr << "attnsim: internal error: an exception of unknown type\n";
    return attnsim::kExitFailed;
  }
}

// libsystemc.so carries its own main() that calls sc_main(); ours above takes precedence,
// but the library still needs the symbol to resolve. It is never called.
extern "C" int sc_main(int, char**) { return 1; }
