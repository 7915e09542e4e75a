// Hand-computed checks of the token-skim functional model (arch/skim_math.h,
// SEMANTICS §5, docs/skimming.md): Transkimmer masks and predictor, FCA scores, selection,
// pooling and composition, and skim_controller.keep.
#include "arch/skim_math.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <stdexcept>

using namespace attnsim::skim;

namespace {

TokenMap tokens(std::initializer_list<int> ids) {
  TokenMap map;
  for (int id : ids) map.push_back(fine_token(id));
  return map;
}

std::vector<uint8_t> u8(std::initializer_list<int> v) { return std::vector<uint8_t>(v.begin(), v.end()); }

// Checks a group's (index, weight) list against the expected one.
void check_group(const std::vector<std::pair<int, double>>& got,
                 const std::vector<std::pair<int, double>>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CHECK(got[i].first == want[i].first);
    CHECK(got[i].second == Approx(want[i].second).epsilon(1e-12));
  }
}

void check_mix(const TokenMix& got, const std::vector<std::pair<int32_t, double>>& want, int original) {
  CHECK(got.original == original);
  REQUIRE(got.parts.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CHECK(got.parts[i].first == want[i].first);
    CHECK(got.parts[i].second == Approx(want[i].second).epsilon(1e-12));
  }
}

// D = 2 predictor used below:
//   ln1: w = (1, 1), b = (0, 0)
//   fc1: W = [[2, 0], [0, 1]], b = (0, 0.5)
//   ln2: w = (1, 2), b = (0, -1)
//   fc2: W = [[1, 0], [0, 1]] (row 0 = skim, row 1 = keep), b = (0, 0.5)
PredictorWeights d2_predictor() {
  PredictorWeights w;
  w.d_model = 2;
  w.ln1_w = {1, 1};
  w.ln1_b = {0, 0};
  w.fc1_w = {2, 0, 0, 1};
  w.fc1_b = {0, 0.5f};
  w.ln2_w = {1, 2};
  w.ln2_b = {0, -1};
  w.fc2_w = {1, 0, 0, 1};
  w.fc2_b = {0, 0.5f};
  return w;
}

}  // namespace

// ---- token maps ---------------------------------------------------------------------

TEST_CASE("identity_map and is_identity") {
  const TokenMap id = identity_map(3);
  REQUIRE(id.size() == 3);
  CHECK(id[2].original == 2);
  CHECK(id[2].parts == std::vector<std::pair<int32_t, double>>{{2, 1.0}});
  CHECK(is_identity(id, 3));
  CHECK_FALSE(is_identity(id, 4));
  CHECK_FALSE(is_identity(tokens({0, 2, 1}), 3));
  TokenMap half = id;
  half[1].parts[0].second = 0.5;
  CHECK_FALSE(is_identity(half, 3));
  CHECK(is_identity(identity_map(0), 0));
}

// ---- Transkimmer masks --------------------------------------------------------------

TEST_CASE("cumulative_keep forces token 0 and reads the original's flag") {
  // N = 6; active tokens are originals 0, 2, 3, 5 (1 and 4 dropped earlier).
  const TokenMap active = tokens({0, 2, 3, 5});
  const std::vector<uint8_t> flags = u8({0, 1, 0, 1, 1, 0});
  // 0: flag 0 but [CLS] is never skimmed -> 1; 2: 0; 3: 1; 5: 0.
  CHECK(cumulative_keep(active, flags.data(), 6) == u8({1, 0, 1, 0}));
}

TEST_CASE("a dropped token never returns") {
  const std::vector<uint8_t> layer1 = u8({1, 0, 1, 1});
  const std::vector<uint8_t> layer2 = u8({1, 1, 1, 0});  // the trace says 1 again for token 1
  TokenMap active = identity_map(4);
  active = surviving_tokens(active, cumulative_keep(active, layer1.data(), 4));
  REQUIRE(active == tokens({0, 2, 3}));
  active = surviving_tokens(active, cumulative_keep(active, layer2.data(), 4));
  CHECK(active == tokens({0, 2}));  // 1 stays gone, 3 drops now
}

TEST_CASE("cumulative_keep_active forces the token of original 0") {
  const TokenMap active = tokens({0, 4, 7});
  CHECK(cumulative_keep_active(active, u8({0, 0, 1})) == u8({1, 0, 1}));
  CHECK_THROWS_AS(cumulative_keep_active(active, u8({1, 1})), std::invalid_argument);
}

TEST_CASE("cumulative_keep rejects coarse tokens and ids outside the trace") {
  TokenMap active = tokens({0, 1});
  TokenMix coarse;
  coarse.parts = {{2, 0.5}, {3, 0.5}};
  active.push_back(coarse);
  const std::vector<uint8_t> flags = u8({1, 1, 1, 1});
  CHECK_THROWS_AS(cumulative_keep(active, flags.data(), 4), std::invalid_argument);
  CHECK_THROWS_AS(cumulative_keep(tokens({0, 4}), flags.data(), 4), std::invalid_argument);
}

// ---- Transkimmer predictor ----------------------------------------------------------

TEST_CASE("predictor logits on a D = 2 case by hand") {
  // Row A, x = (3, 1). eps = 1e-5, c = 1/sqrt(1 + eps) = 0.99999500003750.
  //   ln1: mean 2, var 1 -> y = (c, -c)
  //   fc1: h = (2c, -c + 0.5) = (1.99999000007500, -0.49999500003750)
  //   ln2: D = 2 gives (+-delta)/sqrt(delta^2 + eps), delta = (h0 - h1)/2 = 1.24999250005625
  //        -> (0.99999679997696, -0.99999679997696); x w + b = (0.99999679997696, -2.99999359995392)
  //   GELU (x Phi(x)): (0.84134127943532, -0.00404977054822)
  //   fc2: skim = 0.84134127943532, keep = -0.00404977054822 + 0.5 = 0.49595022945178 -> skim
  // Row B, x = (1, 3): y = (-c, c), h = (-2c, c + 0.5), delta = -1.74999750001875
  //   ln2 -> (-0.99999836733694, 0.99999836733694) -> z = (-0.99999836733694, 0.99999673467389)
  //   GELU: (-0.15865538995723, 0.84134120869154); skim = -0.15865538995723,
  //   keep = 1.34134120869154 -> keep
  // (independently recomputed with Python's math.erf.)
  const std::vector<float> hidden{3, 1, 1, 3};
  const std::vector<double> logits = predictor_logits(hidden.data(), 2, d2_predictor());
  REQUIRE(logits.size() == 4);
  CHECK(logits[0] == Approx(0.8413412794353167).epsilon(1e-12));
  CHECK(logits[1] == Approx(0.4959502294517818).epsilon(1e-12));
  CHECK(logits[2] == Approx(-0.15865538995722547).epsilon(1e-12));
  CHECK(logits[3] == Approx(1.3413412086915368).epsilon(1e-12));
  CHECK(predictor_keep(hidden.data(), 2, d2_predictor()) == u8({0, 1}));
}

TEST_CASE("predictor row 1 of fc2 is keep and a tie skims") {
  const std::vector<float> hidden{3, 1, 1, 3};
  // Swap fc2's rows and biases: skim and keep logits trade places, so do the decisions.
  PredictorWeights swapped = d2_predictor();
  swapped.fc2_w = {0, 1, 1, 0};
  swapped.fc2_b = {0.5f, 0};
  CHECK(predictor_keep(hidden.data(), 2, swapped) == u8({1, 0}));
  // Equal logits: keep needs logit_keep > logit_skim (torch.argmax takes the first).
  PredictorWeights tie = d2_predictor();
  tie.fc2_w = {0, 0, 0, 0};
  tie.fc2_b = {0.25f, 0.25f};
  CHECK(predictor_keep(hidden.data(), 2, tie) == u8({0, 0}));
}

TEST_CASE("predictor rejects weights of the wrong size") {
  PredictorWeights w = d2_predictor();
  w.fc1_w.pop_back();
  const std::vector<float> hidden{3, 1};
  CHECK_THROWS_AS(predictor_keep(hidden.data(), 1, w), std::invalid_argument);
  PredictorWeights none;
  CHECK_THROWS_AS(predictor_keep(hidden.data(), 1, none), std::invalid_argument);
}

TEST_CASE("predictor_macs is n x (D^2 + 2D)") {
  CHECK(predictor_macs(3, 2) == 3 * (4 + 4));
  CHECK(predictor_macs(512, 768) == 512ull * (768 * 768 + 2 * 768));  // 302 776 320
  CHECK(predictor_macs(0, 768) == 0);
}

// ---- FCA ------------------------------------------------------------------------------

TEST_CASE("fca_scores are column sums minus the diagonal") {
  // Abar = [[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]
  // column sums 0.8, 1.05, 1.15; minus diagonal 0.5, 0.6, 0.6 -> 0.3, 0.45, 0.55
  const double abar[9] = {0.5, 0.25, 0.25, 0.1, 0.6, 0.3, 0.2, 0.2, 0.6};
  const std::vector<double> s = fca_scores(abar, 3);
  REQUIRE(s.size() == 3);
  CHECK(s[0] == Approx(0.3).epsilon(1e-12));
  CHECK(s[1] == Approx(0.45).epsilon(1e-12));
  CHECK(s[2] == Approx(0.55).epsilon(1e-12));
}

TEST_CASE("fca_select keeps 0 and the best R-1 and softmax-pools the tail") {
  // scores: 0, ln 3, 0, 2, 3, 1. Ranking of 1..5: 4 (3), 3 (2), 1 (1.0986), 5 (1), 2 (0).
  const std::vector<double> s{0, std::log(3.0), 0, 2, 3, 1};
  // R = 3: fine {0, 3, 4}; tail (position order) 1, 2, 5.
  const FcaSelection one = fca_select(s, 3, 1);
  CHECK(one.fine == std::vector<int>{0, 3, 4});
  REQUIRE(one.groups.size() == 1);
  // One group: softmax(ln 3, 0, 1) = (3, 1, e) / (4 + e).
  const double z = 4 + std::exp(1.0);
  check_group(one.groups[0], {{1, 3 / z}, {2, 1 / z}, {5, std::exp(1.0) / z}});

  // C = 2, tail of 3: sizes 2 and 1 (larger first). Group {1, 2}: the tail softmax
  // renormalized inside the group: 3/(3+1), 1/(3+1); group {5}: weight 1.
  const FcaSelection two = fca_select(s, 3, 2);
  CHECK(two.fine == std::vector<int>{0, 3, 4});
  REQUIRE(two.groups.size() == 2);
  check_group(two.groups[0], {{1, 0.75}, {2, 0.25}});
  check_group(two.groups[1], {{5, 1.0}});
}

TEST_CASE("fca_select breaks score ties toward the lower index") {
  // 1 and 3 tie at 0.2; with R = 4 the last fine slot goes to 1.
  const std::vector<double> s{0.9, 0.2, 0.7, 0.2, 0.5, 0.1};
  const FcaSelection sel = fca_select(s, 4, 5);
  CHECK(sel.fine == std::vector<int>{0, 1, 2, 4});
  // Tail 3, 5 shorter than C = 5: one group per tail token.
  REQUIRE(sel.groups.size() == 2);
  check_group(sel.groups[0], {{3, 1.0}});
  check_group(sel.groups[1], {{5, 1.0}});
  // Equal scores inside a group share the weight equally.
  const FcaSelection pair = fca_select(s, 3, 1);
  CHECK(pair.fine == std::vector<int>{0, 2, 4});
  const double z = 2 * std::exp(0.2) + std::exp(0.1);
  check_group(pair.groups[0], {{1, std::exp(0.2) / z}, {3, std::exp(0.2) / z}, {5, std::exp(0.1) / z}});
}

TEST_CASE("fca_select edge cases: R >= n and R < 1 and C < 1") {
  const std::vector<double> s{0.9, 0.2, 0.7, 0.2, 0.5, 0.1};
  for (int r : {6, 10}) {
    const FcaSelection all = fca_select(s, r, 5);
    CHECK(all.fine == std::vector<int>{0, 1, 2, 3, 4, 5});
    CHECK(all.groups.empty());
  }
  // R = 0 counts as 1: only token 0 stays fine; tail 1..5 in 2 groups of 3 and 2.
  const FcaSelection cls = fca_select(s, 0, 2);
  CHECK(cls.fine == std::vector<int>{0});
  REQUIRE(cls.groups.size() == 2);
  CHECK(cls.groups[0].size() == 3);
  CHECK(cls.groups[0][0].first == 1);
  CHECK(cls.groups[1].size() == 2);
  CHECK(cls.groups[1][1].first == 5);
  // Tail of 7 in C = 3 groups: sizes 3, 2, 2.
  const FcaSelection seven = fca_select(std::vector<double>(8, 0.0), 1, 3);
  REQUIRE(seven.groups.size() == 3);
  CHECK(seven.groups[0].size() == 3);
  CHECK(seven.groups[1].size() == 2);
  CHECK(seven.groups[2].size() == 2);
  CHECK(seven.groups[2][0].first == 6);
  CHECK(seven.groups[0][0].second == Approx(1.0 / 3).epsilon(1e-12));
  CHECK_THROWS_AS(fca_select(s, 3, 0), std::invalid_argument);
  CHECK_THROWS_AS(fca_select({0, NAN, 1}, 1, 1), std::invalid_argument);
  CHECK(fca_select({}, 3, 5).fine.empty());
}

TEST_CASE("fca_next_map composes two FCA layers into original tokens") {
  // Layer 1 on 6 tokens (scores as above, R = 3, C = 2): fine 0, 3, 4; groups
  // {1: 0.75, 2: 0.25} and {5: 1}.
  const std::vector<double> s1{0, std::log(3.0), 0, 2, 3, 1};
  const TokenMap l2 = fca_next_map(identity_map(6), fca_select(s1, 3, 2));
  REQUIRE(l2.size() == 5);
  CHECK(l2[0] == fine_token(0));
  CHECK(l2[1] == fine_token(3));
  CHECK(l2[2] == fine_token(4));
  check_mix(l2[3], {{1, 0.75}, {2, 0.25}}, -1);
  CHECK(l2[4] == fine_token(5));  // a one-token group is the token itself

  // Layer 2 on those 5 tokens: scores 9, 0, 2, ln 3, 0 with R = 2, C = 1. Fine: 0 and
  // index 2 (original 4); tail: index 1 (orig 3), 3 (coarse), 4 (orig 5) with softmax
  // (0, ln 3, 0) = (1/5, 3/5, 1/5). Composed: orig 1: 3/5 * 0.75 = 0.45, orig 2:
  // 3/5 * 0.25 = 0.15, orig 3: 0.2, orig 5: 0.2.
  const std::vector<double> s2{9, 0, 2, std::log(3.0), 0};
  const TokenMap l3 = fca_next_map(l2, fca_select(s2, 2, 1));
  REQUIRE(l3.size() == 3);
  CHECK(l3[0] == fine_token(0));
  CHECK(l3[1] == fine_token(4));
  check_mix(l3[2], {{1, 0.45}, {2, 0.15}, {3, 0.2}, {5, 0.2}}, -1);
  double total = 0;
  for (const auto& p : l3[2].parts) total += p.second;
  CHECK(total == Approx(1.0).epsilon(1e-12));

  FcaSelection bad;
  bad.fine = {0, 5};
  CHECK_THROWS_AS(fca_next_map(l3, bad), std::invalid_argument);
}

// ---- skim_controller.keep -------------------------------------------------------------

TEST_CASE("fca_keep_count from a fraction is ceil of f times n") {
  KeepRule half;  // fraction 0.5
  CHECK(fca_keep_count(half, 0, 5) == 3);   // ceil(2.5)
  CHECK(fca_keep_count(half, 7, 6) == 3);
  CHECK(fca_keep_count(half, 0, 1) == 1);
  KeepRule r;
  r.fraction = 0.3;
  CHECK(fca_keep_count(r, 0, 10) == 3);  // 0.3 * 10 = 3.0000000000000004 in double
  r.fraction = 0.01;
  CHECK(fca_keep_count(r, 0, 5) == 1);   // ceil(0.05)
  r.fraction = 1.0;
  CHECK(fca_keep_count(r, 0, 7) == 7);
  CHECK(fca_keep_count(r, 0, 0) == 0);
  for (double bad : {0.0, -0.5, 1.5}) {
    r.fraction = bad;
    CHECK_THROWS_AS(fca_keep_count(r, 0, 5), std::invalid_argument);
  }
}

TEST_CASE("fca_keep_count from a per-layer list is clamped to 1..n") {
  KeepRule list;
  list.per_layer = true;
  list.counts = {34, 33, 32, 0, 100};  // FCA's CoLA retention starts 34, 33, 32
  CHECK(fca_keep_count(list, 0, 64) == 34);
  CHECK(fca_keep_count(list, 1, 64) == 33);
  CHECK(fca_keep_count(list, 2, 20) == 20);  // more than the active tokens
  CHECK(fca_keep_count(list, 3, 20) == 1);   // 0 -> 1
  CHECK(fca_keep_count(list, 4, 37) == 37);
  CHECK_THROWS_AS(fca_keep_count(list, 5, 64), std::invalid_argument);
}
