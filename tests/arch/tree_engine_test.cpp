// The tree-lookup engine on a hand head (the worked example of docs/candidates.md): TF
// candidate sets, TC outputs, cycles and counters, through the head model.
#include "arch/candidates.h"
#include "arch/head_model.h"
#include "arch/tree_engine.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <vector>

using namespace attnsim;

namespace {

constexpr int kD = 16;

// Depth 2 over d = 16: the root splits on x0, both children on x1, all through 0.
TreeParams quadrant_tree() {
  TreeParams t;
  t.depth = 2;
  t.w.rows = 3;
  t.w.cols = kD;
  t.w.values.assign(3 * kD, 0.0);
  t.w.values[0] = 1, t.w.values[kD + 1] = 1, t.w.values[2 * kD + 1] = 1;
  t.b = {0, 0, 0};
  return t;
}

// A row of d = 16 with its first two elements set.
std::vector<int16_t> row(int x0, int x1) {
  std::vector<int16_t> r(kD, 0);
  r[0] = static_cast<int16_t>(x0), r[1] = static_cast<int16_t>(x1);
  return r;
}

void append(std::vector<int16_t>& m, const std::vector<int16_t>& r) { m.insert(m.end(), r.begin(), r.end()); }

// Keys k0 (-1,-1), k1 (1,1), k2 (-1,1), k3 (1,1); queries q0 (1,1), q1 (-1,-1), q2 (1,-1),
// q3 (-1,1); values v0 (1,0), v1 (0,1), v2 (2,0), v3 (0,2); scales 1.
std::shared_ptr<LayerContext> hand_layer(bool causal) {
  auto ctx = std::make_shared<LayerContext>();
  LayerView& v = ctx->view;
  v.heads = 1, v.n = 4, v.m = 4, v.d = kD;
  v.head.resize(1);
  HeadData& h = v.head[0];
  for (auto [a, b] : {std::pair{1, 1}, {-1, -1}, {1, -1}, {-1, 1}}) append(h.q, row(a, b));
  for (auto [a, b] : {std::pair{-1, -1}, {1, 1}, {-1, 1}, {1, 1}}) append(h.k, row(a, b));
  for (auto [a, b] : {std::pair{1, 0}, {0, 1}, {2, 0}, {0, 2}}) append(h.v, row(a, b));
  ctx->causal = causal;
  ctx->margin = {0};
  ctx->theta = {0};
  ctx->trees = {quadrant_tree()};
  return ctx;
}

std::unique_ptr<CandidateGenerator> tree_generator(const char* attention) {
  return make_tree_generator(json{{"tree_engine",
                                   {{"depth", 2}, {"attention", attention}, {"macs_per_stage", 8},
                                    {"sort_ops_per_cycle", 2}, {"seed", 1}}}});
}

// The generator's view of the head (routing needs its dequantized rows), with the head:
// HeadCandidates::row reads the head's rows, so the head must outlive it.
struct HeadAndCandidates {
  std::unique_ptr<HeadWork> head;
  std::unique_ptr<HeadCandidates> candidates;
  void row(int i, std::vector<int32_t>& out) const { candidates->row(i, out); }
};

HeadAndCandidates candidates_of(const CandidateGenerator& gen, std::shared_ptr<LayerContext> ctx) {
  auto w = std::make_unique<HeadWork>();
  w->layer = std::move(ctx);
  dequantize_rows(*w);
  std::unique_ptr<HeadCandidates> c = gen.for_head(*w);
  return {std::move(w), std::move(c)};
}

QkSetup dense_serial() {
  QkSetup s;
  s.qk = {QkType::bit_serial, QkMode::dense, 8, 4, 1, LaneSync::lockstep};
  s.reuse = {4096, 16, 32};
  return s;
}

}  // namespace

TEST_CASE("TF: each query's candidates are the keys of its leaf; the worked example's 24 cycles") {
  const auto gen = tree_generator("tf");
  CHECK(gen->unit() == "tree_engine");
  const auto w = HeadModel(dense_serial(), *gen, nullptr, nullptr, 1).compute(hand_layer(false), 0);
  // Leaves: k0 -> 0, k2 -> 1, k1 and k3 -> 3. q0 -> 3: {1, 3}; q1 -> 0: {0}; q2 -> 2: none;
  // q3 -> 1: {2}.
  std::vector<int32_t> c;
  const std::vector<std::vector<int32_t>> expected = {{1, 3}, {0}, {}, {2}};
  const auto rows = candidates_of(*gen, hand_layer(false));
  for (int i = 0; i < 4; ++i) {
    rows.row(i, c);
    CHECK(c == expected[i]);
    CHECK(w->rows[i].candidates == expected[i].size());
    CHECK(w->rows[i].qk.busy == 8 * expected[i].size());  // dense bit-serial, one lane
  }
  // Routing (4 + 4 + 2 - 1) x ceil(16 / 8) = 18, bucketing 2 + 2 + 2 = 6.
  CHECK(w->candidates->cycles() == 24);
  ModuleActivity a = gen->activity_template();
  w->candidates->count(a);
  CHECK(a.counter("split_macs") == 8 * 2 * 16);
  CHECK(a.counter("node_reads") == 8 * 2 * 17);
  CHECK(a.counter("node_writes") == 3 * 17);
  CHECK(a.counter("sort_ops") == 2 * 4 + 4);
  CHECK(w->param_bytes == 3 * 17 * 4);  // the tree, loaded by the DMA with the head
}

TEST_CASE("TF, causal: a leaf's keys after the query are not its candidates") {
  const auto gen = tree_generator("tf");
  const auto rows = candidates_of(*gen, hand_layer(true));
  std::vector<int32_t> c;
  rows.row(0, c);
  CHECK(c.empty());  // leaf 3 holds keys 1 and 3, both after query 0
  rows.row(3, c);
  CHECK(c == std::vector<int32_t>{2});
}

TEST_CASE("TC: a query attends to the mean keys and values of its path's nodes") {
  const auto gen = tree_generator("tc");
  const auto w = HeadModel(dense_serial(), *gen, nullptr, nullptr, 1).compute(hand_layer(false), 0);
  // Node means (x0, x1): root kbar (0, 0.5) vbar (0.75, 0.75); node 2 (x0 >= 0: k1, k3)
  // kbar (1, 1) vbar (0, 1.5); leaf node 5 (x0 >= 0, x1 < 0) has no key.
  // q2 (1, -1) routes 0 -> 2 -> 5 and attends to two nodes: logits (0 - 0.5) / 4 and 0 / 4.
  CHECK(w->rows[2].candidates == 2);
  CHECK(w->rows[2].survivors == 2);
  CHECK(w->rows[2].exact_scored == 0);
  CHECK(w->rows[2].value_rows == 0);  // node sums come from the tree engine, not the SRAM
  CHECK_FALSE(w->rows[2].has_mass);
  CHECK(w->rows[2].qk.busy == 0);
  std::vector<double> out(kD);
  CHECK(w->candidates->attend(2, out.data()) == 2);
  const double p0 = std::exp(-0.125) / (std::exp(-0.125) + 1), p2 = 1 - p0;
  CHECK(out[0] == Approx(p0 * 0.75).epsilon(1e-15));
  CHECK(out[1] == Approx(p0 * 0.75 + p2 * 1.5).epsilon(1e-15));
  CHECK(out[2] == 0.0);
  // q0 (1, 1) routes 0 -> 2 -> 6 (k1, k3): three nodes; q1 and q3 three each too.
  CHECK(w->rows[0].candidates == 3);
  CHECK(w->rows[1].candidates == 3);
  CHECK(w->rows[3].candidates == 3);
  // D + 1 = 3 stages: keys ceil(48 / 8) = 6, queries ceil(32 / 8) = 4 cycles per stage:
  // 4 x 6 + 4 x 4 + 2 x 6 = 52.
  CHECK(w->candidates->cycles() == 52);
  ModuleActivity a = gen->activity_template();
  w->candidates->count(a);
  CHECK(a.counter("accumulate_adds") == 4 * 3 * 32);
  CHECK(a.counter("score_macs") == 11 * 16);  // 3 + 3 + 2 + 3 nodes attended
  CHECK(a.counter("divides") == 2 * 11);
  CHECK(a.counter("node_sum_reads") == 11 * 16);
}

TEST_CASE("TC, causal: a node stands for the keys up to the query") {
  const auto gen = tree_generator("tc");
  const auto w = HeadModel(dense_serial(), *gen, nullptr, nullptr, 1).compute(hand_layer(true), 0);
  // Query 0 sees key 0 alone: its path 0 -> 2 -> 6 meets key 0 only at the root, whose
  // mean is then k0 and v0: the output is v0.
  std::vector<double> out(kD);
  CHECK(w->candidates->attend(0, out.data()) == 1);
  CHECK(out[0] == 1.0);
  CHECK(out[1] == 0.0);
}
