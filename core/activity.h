#pragma once
// What a unit reports at the end of a run: busy and stall cycles and its action counts
// (the energy events). Units keep plain integer counters on the hot path and convert
// them to this form once, when the run ends. Counters are named, never positional.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace attnsim {

struct ModuleActivity {
  std::string name;    // "qk_unit", "dram", ... (SEMANTICS §7 module names)
  uint64_t busy = 0;   // cycles doing work
  uint64_t stall = 0;  // cycles blocked on a full output (back-pressure)
  std::vector<std::pair<std::string, uint64_t>> counters;  // action -> count, fixed order

  uint64_t counter(const std::string& action) const {
    for (const auto& [name_, value] : counters)
      if (name_ == action) return value;
    return 0;
  }
  // Adds `count` to a counter the unit declares; an unknown action is a programming error.
  void add(const std::string& action, uint64_t count) {
    for (auto& [name_, value] : counters)
      if (name_ == action) {
        value += count;
        return;
      }
    throw std::logic_error(name + " has no counter '" + action + "'");
  }
};

}  // namespace attnsim
