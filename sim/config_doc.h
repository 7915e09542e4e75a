#pragma once
// The configuration reference (docs/config.md) from the units' parameter tables.
#include <string>

namespace attnsim {

// docs/config.md, generated (`attnsim config --doc`).
std::string config_reference_markdown();

}  // namespace attnsim
