#pragma once
// Bounds of the counts the command line takes, so that a typo (`-j -1`, `-j 100000`) is a
// usage error rather than a run that spawns threads until the machine gives out.
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

}  // namespace attnsim
