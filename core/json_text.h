#pragma once
// JSON values as one-line error messages show them.
#include <nlohmann/json.hpp>

#include <string>

namespace attnsim {

// Compact, one line, cut to 60 characters ("..." at the end when cut).
inline std::string shown(const nlohmann::json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

}  // namespace attnsim
