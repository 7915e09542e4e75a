#pragma once
// Subcommands of the `attnsim` command line. Each parses its own arguments (Boost
// program_options) and returns the process exit code; errors are printed as one line
// "attnsim: <message>" on stderr with a non-zero exit.
namespace attnsim {

int cmd_run(int argc, char** argv);     // sim/cli_run.cpp
int cmd_trace(int argc, char** argv);   // sim/cli_trace.cpp: `trace synth`, `trace info`
int cmd_config(int argc, char** argv);  // sim/cli_config.cpp: `config --doc`, `config --resolve`

}  // namespace attnsim
