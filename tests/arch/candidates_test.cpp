// The candidate-generator interface (arch/candidates.h): the visible keys, the registry,
// and the built-in "all".
#include "arch/candidates.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

using namespace attnsim;

TEST_CASE("a query sees every key, or keys 0..i when causal") {
  std::vector<int32_t> keys;
  visible_keys(2, 5, false, keys);
  CHECK(keys == std::vector<int32_t>{0, 1, 2, 3, 4});
  visible_keys(2, 5, true, keys);
  CHECK(keys == std::vector<int32_t>{0, 1, 2});
  visible_keys(9, 5, true, keys);  // a query past the keys (N > M) sees them all
  CHECK(keys == std::vector<int32_t>{0, 1, 2, 3, 4});
  CHECK(visible_key_count(0, 5, true) == 1);
  CHECK(visible_key_count(0, 5, false) == 5);
}

TEST_CASE("\"all\" is registered, has no unit, and gives each row its visible keys") {
  const std::vector<std::string> names = candidate_generator_names();
  CHECK(names.front() == "all");
  const auto all = make_candidate_generator("all", json::object());
  CHECK(all->name() == "all");
  CHECK(all->unit().empty());

  auto ctx = std::make_shared<LayerContext>();
  ctx->view.heads = 1, ctx->view.n = 3, ctx->view.m = 3, ctx->view.d = 1;
  ctx->causal = true;
  HeadWork w;
  w.layer = ctx;
  const auto rows = all->for_head(w);
  std::vector<int32_t> c;
  rows->row(1, c);
  CHECK(c == std::vector<int32_t>{0, 1});
  CHECK(rows->cycles() == 0);
}

namespace {

class Nothing : public CandidateGenerator {
 public:
  std::string name() const override { return "nothing"; }
  std::unique_ptr<HeadCandidates> for_head(const HeadWork&) const override { return nullptr; }
};

}  // namespace

TEST_CASE("registering a name adds a generator; an unknown name is an error") {
  CHECK_THROWS_AS(make_candidate_generator("nothing", json::object()), std::invalid_argument);
  register_candidate_generator("nothing", [](const json&) { return std::make_unique<Nothing>(); });
  const std::vector<std::string> names = candidate_generator_names();
  CHECK(std::find(names.begin(), names.end(), "nothing") != names.end());
  CHECK(make_candidate_generator("nothing", json::object())->name() == "nothing");
  CHECK_THROWS_WITH(make_candidate_generator("tre", json::object()), "unknown candidate generator 'tre'");
}
