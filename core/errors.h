#pragma once
// Every error attnsim reports belongs to a class, and each class has its own exit code
// (README, docs/reliability.md#exit-codes), so that a script or a sweep can tell a mistake
// on the command line from a bad config, a bad trace, a run refused and a file that cannot
// be read or written. The exceptions carry their class; the command line turns it into the
// exit code in one place (report_error, sim/cli/errors.h). Messages stay one line,
// "<file>: <json path or tensor>: <what>".
#include <stdexcept>
#include <string>

namespace attnsim {

enum class ErrorClass {
  usage,       // the command line: unknown or missing options, values out of range
  config,      // a config file, a --set, a sweep file, a technology table
  trace,       // a trace (safetensors) or another input data file, e.g. a stats file to compare
  simulation,  // valid inputs the run refuses: over the memory cap, masks too large
  io,          // a file that cannot be opened, read or written
};

// 2 usage, 3 config, 4 trace, 5 simulation, 6 I/O (0 is success; 1 a sweep with failed
// points or an error of no class, which is a bug).
inline int exit_code(ErrorClass c) {
  switch (c) {
    case ErrorClass::usage: return 2;
    case ErrorClass::config: return 3;
    case ErrorClass::trace: return 4;
    case ErrorClass::simulation: return 5;
    case ErrorClass::io: return 6;
  }
  return 1;
}

class Error : public std::runtime_error {
 public:
  Error(ErrorClass c, const std::string& message) : std::runtime_error(message), class_(c) {}
  ErrorClass error_class() const { return class_; }

 private:
  ErrorClass class_;
};

class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(ErrorClass::usage, message) {}
};

class SimulationError : public Error {
 public:
  explicit SimulationError(const std::string& message) : Error(ErrorClass::simulation, message) {}
};

class IoError : public Error {
 public:
  explicit IoError(const std::string& message) : Error(ErrorClass::io, message) {}
};

}  // namespace attnsim
