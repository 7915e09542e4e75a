#pragma once
// A small reader of the VCD files `attnsim run --vcd` writes (vector values only), for tests.
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace attnsim::test {

struct Vcd {
  std::set<std::string> vars;  // "scope.name", e.g. "unit.qk_unit"
  // name -> [(time, value)] in file order; the $dumpvars values come at time 0
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> changes;
  uint64_t end = 0;  // the last timestamp
};

inline Vcd parse_vcd(const std::string& text) {
  Vcd vcd;
  std::map<std::string, std::string> names;  // id -> scope.name
  std::vector<std::string> scope;
  std::istringstream in(text);
  std::string line;
  uint64_t now = 0;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string w;
    if (!(words >> w)) continue;
    if (w == "$scope") {
      std::string kind, name;
      words >> kind >> name;
      scope.push_back(name);
    } else if (w == "$upscope") {
      scope.pop_back();
    } else if (w == "$var") {
      std::string kind, width, id, name;
      words >> kind >> width >> id >> name;
      names[id] = scope.back() + "." + name;
      vcd.vars.insert(names[id]);
    } else if (w[0] == '#') {
      const uint64_t t = std::stoull(w.substr(1));
      REQUIRE(t >= now);
      now = t;
    } else if (w[0] == 'b') {
      std::string id;
      words >> id;
      vcd.changes[names.at(id)].emplace_back(now, std::stoull(w.substr(1), nullptr, 2));
    }
  }
  vcd.end = now;
  return vcd;
}

// Cycles a variable spends at each value from time 0 to vcd.end (0 before its first change).
inline std::map<uint64_t, uint64_t> time_at_values(const Vcd& vcd, const std::string& name) {
  std::map<uint64_t, uint64_t> at;
  uint64_t t = 0, v = 0;
  const auto it = vcd.changes.find(name);
  if (it != vcd.changes.end())
    for (const auto& [time, value] : it->second) {
      at[v] += time - t;
      t = time, v = value;
    }
  at[v] += vcd.end - t;
  for (auto i = at.begin(); i != at.end();) i = i->second == 0 ? at.erase(i) : std::next(i);
  return at;
}

}  // namespace attnsim::test
