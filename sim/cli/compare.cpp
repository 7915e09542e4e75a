// `attnsim compare BASE.json OTHER.json ...`: side-by-side figures of several runs
// against the first (speedup, energy reduction, filtering, quality).
#include "sim/cli/commands.h"

#include "core/file_io.h"
#include "core/json_input.h"
#include "core/json_text.h"
#include "sim/cli/errors.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace attnsim {

namespace {

// A metric of the stats, NaN when absent or null (a Treeformer TC run has no mass_recall).
double number_or_nan(const nlohmann::json& section, const char* key) {
  const auto it = section.find(key);
  return it != section.end() && it->is_number() ? it->get<double>() : std::nan("");
}

}  // namespace


namespace {

// The member `key` of `section` in "a.b" form, or null when absent.
const nlohmann::json* member(const nlohmann::json& j, const char* section, const char* key) {
  if (!j.contains(section) || !j.at(section).is_object() || !j.at(section).contains(key)) return nullptr;
  return &j.at(section).at(key);
}

// A stats file as compare reads it: the schema and every number the table needs are
// checked, so that a damaged or hand-made file is one line naming the file and the key
// (class trace: an input data file), not an exception of the JSON library.
nlohmann::json read_stats(const std::string& path) {
  const std::string text = read_input_file(path, "stats file", kMaxStatsBytes);  // IoError when it cannot
  nlohmann::json j;
  try {
    j = parse_json(text);
  } catch (const JsonInputError& e) {
    throw Error(ErrorClass::trace, json_error_text(path, e));
  }
  if (!j.is_object() || !j.contains("schema") || j.at("schema") != "attnsim.stats/1")
    throw Error(ErrorClass::trace, path + ": schema: expected \"attnsim.stats/1\"");
  for (const auto& [section, key] : {std::pair{"cycles", "total"}, {"energy_pj", "total"},
                                     {"filter", "filtered_ratio"}, {"filter", "exact_ratio"}}) {
    const nlohmann::json* v = member(j, section, key);
    if (!v || !v->is_number())
      throw Error(ErrorClass::trace, path + ": " + section + "." + key + ": must be a number, got " +
                                         (v ? shown(*v) : std::string("nothing")));
  }
  if (!j.contains("quality") || !j.at("quality").is_object()) j["quality"] = nlohmann::json::object();
  return j;
}

}  // namespace

int cmd_compare(int argc, char** argv) {
  if (argc < 3 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << "usage: attnsim compare BASE.json OTHER.json [MORE.json ...]\n\n"
                 "Prints cycles, energy, speedup and energy reduction over the first run, filtered\n"
                 "ratio, exact ratio and quality of each stats file side by side.\n";
    return argc < 3 ? exit_code(ErrorClass::usage) : kExitOk;
  }
  try {
    std::vector<nlohmann::json> runs;
    for (int i = 1; i < argc; ++i) runs.push_back(read_stats(argv[i]));
    const double base_cycles = runs[0]["cycles"]["total"].get<double>();
    const double base_energy = runs[0]["energy_pj"]["total"].get<double>();
    std::printf("%-28s %12s %9s %14s %9s %9s %9s %11s %9s\n", "run", "cycles", "speedup", "energy (nJ)",
                "en. red.", "filtered", "exact", "rel_error", "mass_rec");
    for (size_t i = 0; i < runs.size(); ++i) {
      const nlohmann::json& s = runs[i];
      std::string name = argv[i + 1];
      if (name.size() > 28) name = "..." + name.substr(name.size() - 25);
      const double cycles = s["cycles"]["total"].get<double>();
      const double energy = s["energy_pj"]["total"].get<double>();
      const auto& q = s["quality"];
      std::printf("%-28s %12.0f %8.2fx %14.1f %8.2fx %8.2f%% %9.4f %11.3g %9.4f\n", name.c_str(), cycles,
                  base_cycles / cycles, energy / 1000.0, base_energy / energy,
                  100.0 * s["filter"]["filtered_ratio"].get<double>(), s["filter"]["exact_ratio"].get<double>(),
                  number_or_nan(q, "rel_error"), number_or_nan(q, "mass_recall"));
    }
  } catch (const std::exception& e) {
    return report_error(e, "compare: ");
  }
  return kExitOk;
}

}  // namespace attnsim
