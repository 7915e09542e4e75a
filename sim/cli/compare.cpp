// `attnsim compare BASE.json OTHER.json ...`: side-by-side figures of several runs
// against the first (speedup, energy reduction, filtering, quality).
#include "sim/cli/commands.h"

#include "core/file_io.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
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

nlohmann::json read_stats(const std::string& path) {
  const std::string text = read_input_file(path, "stats file", kMaxStatsBytes);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw std::runtime_error(path + ": not valid JSON");
  }
  if (j.value("schema", "") != "attnsim.stats/1")
    throw std::runtime_error(path + ": schema: expected \"attnsim.stats/1\"");
  return j;
}

}  // namespace

int cmd_compare(int argc, char** argv) {
  if (argc < 3 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << "usage: attnsim compare BASE.json OTHER.json [MORE.json ...]\n\n"
                 "Prints cycles, energy, speedup and energy reduction over the first run, filtered\n"
                 "ratio, exact ratio and quality of each stats file side by side.\n";
    return argc < 3 ? 2 : 0;
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
    std::cerr << "attnsim: compare: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace attnsim
