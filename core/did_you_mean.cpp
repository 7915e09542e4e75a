#include "core/did_you_mean.h"

#include <algorithm>
#include <climits>

namespace attnsim {

namespace {

bool is_prefix(const std::string& p, const std::string& s) {
  return !p.empty() && p.size() <= s.size() && s.compare(0, p.size(), p) == 0;
}

}  // namespace

int edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = int(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = int(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::string did_you_mean(const std::string& key, const std::vector<std::string>& candidates) {
  std::string best;
  int best_distance = INT_MAX;
  for (const std::string& c : candidates) {
    const int d = edit_distance(key, c);
    const bool near = d <= 2 || is_prefix(key, c) || is_prefix(c, key);
    if (near && d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

}  // namespace attnsim
