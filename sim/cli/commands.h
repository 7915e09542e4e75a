#pragma once
// Subcommands of the `attnsim` command line. Each parses its own arguments (Boost
// program_options) and returns the process exit code; errors are printed as one line
// "attnsim: <message>" on stderr with a non-zero exit.
namespace attnsim {

int cmd_run(int argc, char** argv);     // sim/cli/run.cpp
int cmd_trace(int argc, char** argv);   // sim/cli/trace.cpp: `trace synth`, `trace info`
int cmd_config(int argc, char** argv);  // sim/cli/config.cpp: `config --doc`, `config --resolve`
int cmd_calibrate(int argc, char** argv);
int cmd_compare(int argc, char** argv); // sim/cli/compare.cpp: runs side by side
int cmd_kernel(int argc, char** argv);  // sim/cli/kernel.cpp: bare arithmetic, for benchmarks
int cmd_gemm(int argc, char** argv);    // sim/cli/gemm.cpp: GEMM engine cycles of one GEMM
int cmd_sweep(int argc, char** argv);   // sim/cli/sweep.cpp: design-space sweeps (docs/sweeps.md)
int cmd_report(int argc, char** argv);  // sim/cli/sweep.cpp: sorted table and Pareto front of a sweep
int cmd_merge(int argc, char** argv);   // sim/cli/sweep.cpp: summary.csv from whatever points finished
int cmd_point(int argc, char** argv);   // sim/cli/point.cpp: check a sweep point or run it (job lines)

}  // namespace attnsim
