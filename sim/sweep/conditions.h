#pragma once
// The skip_if condition language of sweep files (docs/sweeps.md): conditions on config key
// paths, each compared with literals or with other keys, tested on a point's config tree.
#include "core/params.h"

#include <string>

namespace attnsim {

// The reason `tree` (a config tree, defaults filled in) is skipped by `skip_if`, or ""
// when no condition holds. Throws SweepError for a malformed condition.
std::string skip_reason(const json& skip_if, const json& tree, const std::string& origin = "skip_if");

// The value at a key path ("qk_unit.bits", "clock_ghz") of a config tree; null if absent.
json value_at(const json& tree, const std::string& key_path);
// True when `key_path` names a config key (top-level key or section.key).
bool is_config_key(const std::string& key_path);

}  // namespace attnsim
