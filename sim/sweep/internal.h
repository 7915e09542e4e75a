#pragma once
// Small helpers shared by the sweep sources (sim/sweep/*.cpp); not part of their interface.
#include "core/params.h"

#include <string>

namespace attnsim::sweep_internal {

// A JSON value as error messages show it: compact, cut to 60 characters.
inline std::string shown(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

}  // namespace attnsim::sweep_internal
