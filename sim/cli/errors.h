#pragma once
// Where errors become exit codes: every command ends a failure through report_error, which
// prints the one line and maps the error's class (core/errors.h) to its code. The table is
// in README and docs/reliability.md#exit-codes.
#include "core/errors.h"

#include <exception>
#include <string>

namespace attnsim {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;        // a sweep with failed points; an error of no class (a bug)
inline constexpr int kExitInterrupted = 130; // a sweep stopped by SIGINT / SIGTERM

// The exit code of `e`: its class's for an attnsim::Error, usage for a Boost
// program_options error, io for a std::filesystem error, simulation for std::bad_alloc
// (the machine ran out of memory), kExitFailed for anything else.
int exit_code_of(const std::exception& e);

// Prints "attnsim: <context><message>" on stderr as exactly one line (control characters
// and bytes that are not UTF-8 escaped as \xNN) and returns exit_code_of(e).
int report_error(const std::exception& e, const std::string& context = "");

// report_error(UsageError(message)).
int usage_error(const std::string& message);

// The text as one printable line: control characters and bytes that are not UTF-8 as \xNN.
std::string one_line(const std::string& text);

}  // namespace attnsim
