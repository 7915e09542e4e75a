#pragma once
// "Did you mean ...?" for a name a user typed: config keys (sim/config.cpp), tensor names
// (attnsim trace dump).
#include <string>
#include <vector>

namespace attnsim {

// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions, so
// "lanse" is one edit from "lanes".
int edit_distance(const std::string& a, const std::string& b);

// The closest candidate within edit distance 2 or sharing a prefix; "" when none.
std::string did_you_mean(const std::string& key, const std::vector<std::string>& candidates);

}  // namespace attnsim
