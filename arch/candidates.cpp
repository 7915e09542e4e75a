#include "arch/candidates.h"

#include "arch/lsh_unit.h"
#include "arch/tree_engine.h"

#include <map>
#include <mutex>
#include <stdexcept>

namespace attnsim {

void visible_keys(int row, int m, bool causal, std::vector<int32_t>& out) {
  const int n = visible_key_count(row, m, causal);
  out.resize(n);
  for (int j = 0; j < n; ++j) out[j] = j;
}

namespace {

// "all": C_i = every key the query may see. No hardware of its own.
class AllHeadCandidates : public HeadCandidates {
 public:
  AllHeadCandidates(int m, bool causal) : m_(m), causal_(causal) {}
  void row(int i, std::vector<int32_t>& out) const override { visible_keys(i, m_, causal_, out); }

 private:
  int m_;
  bool causal_;
};

class AllCandidates : public CandidateGenerator {
 public:
  std::string name() const override { return "all"; }
  std::unique_ptr<HeadCandidates> for_head(const HeadWork& head) const override {
    return std::make_unique<AllHeadCandidates>(head.m(), head.layer->causal);
  }
};

// "none": C_i empty for every row (only with the low-rank unit: pure Performer attention).
class NoHeadCandidates : public HeadCandidates {
 public:
  void row(int, std::vector<int32_t>& out) const override { out.clear(); }
};

class NoCandidates : public CandidateGenerator {
 public:
  std::string name() const override { return "none"; }
  std::unique_ptr<HeadCandidates> for_head(const HeadWork&) const override {
    return std::make_unique<NoHeadCandidates>();
  }
};

struct Registry {
  std::mutex lock;
  std::vector<std::pair<std::string, CandidateFactory>> entries;
  Registry() {
    entries.emplace_back("all", [](const json&) { return std::make_unique<AllCandidates>(); });
    entries.emplace_back("tree", make_tree_generator);
    entries.emplace_back("lsh", make_lsh_generator);
    entries.emplace_back("none", [](const json&) { return std::make_unique<NoCandidates>(); });
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_candidate_generator(const std::string& name, CandidateFactory factory) {
  Registry& r = registry();
  std::lock_guard<std::mutex> guard(r.lock);
  for (auto& [n, f] : r.entries)
    if (n == name) {
      f = std::move(factory);
      return;
    }
  r.entries.emplace_back(name, std::move(factory));
}

std::vector<std::string> candidate_generator_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> guard(r.lock);
  std::vector<std::string> names;
  for (const auto& e : r.entries) names.push_back(e.first);
  return names;
}

std::unique_ptr<CandidateGenerator> make_candidate_generator(const std::string& name, const json& resolved_config) {
  Registry& r = registry();
  CandidateFactory factory;
  {
    std::lock_guard<std::mutex> guard(r.lock);
    for (const auto& e : r.entries)
      if (e.first == name) factory = e.second;
  }
  if (!factory) throw std::invalid_argument("unknown candidate generator '" + name + "'");
  return factory(resolved_config);
}

}  // namespace attnsim
