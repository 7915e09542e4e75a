#pragma once
// Bounds of the counts the command line takes, so that a typo (`-j -1`, `-j 100000`) is a
// usage error rather than a run that spawns threads until the machine gives out.
#include "core/errors.h"
#include "sim/memory_estimate.h"
#include "sim/run.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace attnsim {

// Threads of the functional model (`run`, `calibrate`: 0 = one per core) and sweep points
// run at a time: more than any machine attnsim runs on has cores, and beyond that more
// threads only add contention (the results never depend on them).
inline constexpr int kMaxThreads = 1024;

// "" when `value` is in min..kMaxThreads, else the message
// "<flag>: must be in <min>..1024[ (0: one per core)], got <value>".
inline std::string count_problem(const std::string& flag, int value, int min) {
  if (value >= min && value <= kMaxThreads) return "";
  return flag + ": must be in " + std::to_string(min) + ".." + std::to_string(kMaxThreads) +
         (min == 0 ? " (0: one per core)" : "") + ", got " + std::to_string(value);
}

// The memory cap of a run (sim/memory_estimate.h): `--max-memory` when given, else the
// environment's ATTNSIM_MAX_MEMORY (which reaches the points of a sweep), else half the
// machine's memory. A size that does not parse is a usage error naming where it came from.
inline MemoryCap resolve_memory_cap(const std::string& option) {
  const auto parsed = [](const std::string& where, const std::string& text) {
    try {
      return parse_memory_size(text);
    } catch (const std::invalid_argument& e) {
      throw UsageError(where + ": " + e.what());
    }
  };
  if (!option.empty()) return {parsed("--max-memory", option), "--max-memory"};
  if (const char* env = std::getenv("ATTNSIM_MAX_MEMORY"); env && *env)
    return {parsed("ATTNSIM_MAX_MEMORY", env), "ATTNSIM_MAX_MEMORY"};
  return {default_memory_cap(), "half the machine's memory; --max-memory or ATTNSIM_MAX_MEMORY to change"};
}

}  // namespace attnsim
