// `attnsim config`: print the config reference (--doc) or a resolved config (--resolve).
#include "sim/cli/commands.h"
#include "sim/cli/errors.h"
#include "sim/config.h"
#include "sim/config_doc.h"

#include <boost/program_options.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace attnsim {

namespace po = boost::program_options;

namespace {

// The resolved tree in schema order (Config::resolved sorts keys): reads like the docs.
nlohmann::ordered_json in_schema_order(const json& resolved) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const SectionSpec& s : config_schema()) {
    if (s.name.empty()) {
      for (const ParamSpec& p : s.params)
        if (resolved.contains(p.name)) out[p.name] = resolved.at(p.name);
      continue;
    }
    nlohmann::ordered_json section = nlohmann::ordered_json::object();
    for (const ParamSpec& p : s.params)
      if (resolved.at(s.name).contains(p.name)) section[p.name] = resolved.at(s.name).at(p.name);
    out[s.name] = section;
  }
  return out;
}

}  // namespace

int cmd_config(int argc, char** argv) {
  po::options_description options(
      "usage: attnsim config --doc\n"
      "       attnsim config --resolve C.json [--set section.key=value ...]\n\noptions");
  options.add_options()
      ("help,h", "print this help")
      ("doc", "print the config reference (docs/config.md) generated from the unit declarations")
      ("resolve", po::value<std::string>()->value_name("C.json"),
       "validate C.json and print it with every default filled in")
      ("set", po::value<std::vector<std::string>>()->value_name("KEY=VALUE")->composing()->multitoken(),
       "override one key before validation, e.g. --set qk_unit.lanes=32 (repeatable)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(std::string("config: ") + e.what());
  }
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  const bool doc = vm.count("doc") > 0;
  const bool resolve = vm.count("resolve") > 0;
  if (doc == resolve) return usage_error("config: give either --doc or --resolve C.json (see attnsim config --help)");
  if (doc && vm.count("set")) return usage_error("config: --set applies only to --resolve");
  if (doc) {
    std::cout << config_reference_markdown();
    return 0;
  }
  const std::vector<std::string> overrides =
      vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  try {
    const Config config = load_config(vm["resolve"].as<std::string>(), overrides);
    std::cout << in_schema_order(config.resolved).dump(2) << "\n";
  } catch (const std::exception& e) {
    return report_error(e);
  }
  return kExitOk;
}

}  // namespace attnsim
