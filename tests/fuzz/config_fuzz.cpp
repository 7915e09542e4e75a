// Fuzz target "config": the config file parser with --set overrides, as `attnsim run
// --config F --set ...` calls it (load_config). The input is the config file's text, then
// optionally a NUL byte before each --set argument (at most 8 are used):
//   {"schema": "attnsim.config/1"} \0 qk_unit.lanes=32 \0 comparator.gamma=0.05
// Documented errors: ConfigError, one line.
#include "sim/config.h"
#include "tests/fuzz/fuzz_common.h"

#include <string>
#include <vector>

namespace {

const char* const kTarget = "config";
constexpr size_t kMaxOverrides = 8;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t nul = input.find('\0', start);
    parts.push_back(input.substr(start, nul == std::string::npos ? std::string::npos : nul - start));
    if (nul == std::string::npos || parts.size() > kMaxOverrides) break;
    start = nul + 1;
  }
  const std::string path = attnsim::fuzz::write_temp("config.json", parts[0]);
  const std::vector<std::string> overrides(parts.begin() + 1, parts.end());
  try {
    const attnsim::Config c = attnsim::load_config(path, overrides);
    (void)c.resolved.dump();  // what the stats echo
  } catch (const attnsim::ConfigError& e) {
    attnsim::fuzz::check_one_line(kTarget, "load_config", e.what());
  } catch (...) {
    attnsim::fuzz::unexpected_exception(kTarget, "load_config");
  }
  return 0;
}
