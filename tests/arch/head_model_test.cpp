// RowChunks and HeadSource (arch/head_model.h): rows handed out once each, in ascending
// chunks on query-block boundaries; heads computed ahead by a producer thread equal the
// heads computed on demand, and a head asked out of order is refused rather than computed
// twice (FCA's probabilities would add up twice).
#include "arch/candidates.h"
#include "arch/head_model.h"
#include "tests/support/head_fixtures.h"

#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <vector>

using namespace attnsim;

namespace {

// Layer 0 of `heads` heads of N = M = 40 rows (enough for two row threads: N / 16 >= 2),
// d = 3, each head's values shifted by its index so heads differ.
std::shared_ptr<const LayerContext> layer(int heads) {
  auto ctx = std::make_shared<LayerContext>();
  LayerView& v = ctx->view;
  v.index = 0, v.heads = heads, v.n = 40, v.m = 40, v.d = 3;
  for (int h = 0; h < heads; ++h) {
    HeadData data;
    for (int i = 0; i < 40 * 3; ++i) {
      data.q.push_back(static_cast<int16_t>((i * 7 + h) % 15 - 7));
      data.k.push_back(static_cast<int16_t>((i * 5 + 3 * h) % 13 - 6));
      data.v.push_back(static_cast<int16_t>((i * 3 + h) % 11 - 5));
    }
    v.head.push_back(data);
    ctx->margin.push_back(0);
    ctx->theta.push_back(0);
  }
  return ctx;
}

void check_same(const HeadWork& a, const HeadWork& b) {
  REQUIRE(a.rows.size() == b.rows.size());
  for (size_t i = 0; i < a.rows.size(); ++i) {
    CHECK(a.rows[i].candidates == b.rows[i].candidates);
    CHECK(a.rows[i].survivors == b.rows[i].survivors);
    CHECK(a.rows[i].qk.busy == b.rows[i].qk.busy);
    CHECK(a.rows[i].qk.int8_macs == b.rows[i].qk.int8_macs);
  }
}

}  // namespace

TEST_CASE("row chunks hand out every row once, ascending, in whole query blocks") {
  // 512 rows, blocks of 1, 2 threads: 512 / (16 * 2) = 16 blocks a chunk.
  RowChunks chunks(512, 1, 2);
  int begin = 0, end = 0, expected = 0;
  while (chunks.next(begin, end)) {
    CHECK(begin == expected);
    CHECK(end - begin == 16);
    expected = end;
  }
  CHECK(expected == 512);
  // 10 rows in blocks of 4: a chunk is at least 16 rows, so 4 blocks; the last block is short.
  RowChunks blocks(10, 4, 2);
  REQUIRE(blocks.next(begin, end));
  CHECK((begin == 0 && end == 10));
  CHECK_FALSE(blocks.next(begin, end));
}

TEST_CASE("heads computed ahead by the producer equal heads computed on demand") {
  const std::unique_ptr<CandidateGenerator> all = make_candidate_generator("all", nlohmann::json::object());
  const HeadModel one(test::dense_qk_setup(5), *all, nullptr, nullptr, 1);
  const HeadModel two(test::dense_qk_setup(5), *all, nullptr, nullptr, 2);
  HeadSource source(two);
  for (int l = 0; l < 2; ++l) {  // two layers: the producer moves on to the second
    const std::shared_ptr<const LayerContext> ctx = layer(5);
    for (int h = 0; h < 5; ++h) {
      const std::shared_ptr<HeadWork> ahead = source.take(ctx, h);
      CHECK(ahead->head == h);
      check_same(*ahead, *one.compute(ctx, h));
    }
    // Its last head handed out, the source lets the layer go: only the test holds it now.
    CHECK(ctx.use_count() == 1);
  }
}

TEST_CASE("a head asked out of order, or a new layer mid-layer, is a logic error, not a second computation") {
  const std::unique_ptr<CandidateGenerator> all = make_candidate_generator("all", nlohmann::json::object());
  const HeadModel two(test::dense_qk_setup(5), *all, nullptr, nullptr, 2);
  const std::shared_ptr<const LayerContext> ctx = layer(4);
  {
    HeadSource source(two);
    source.take(ctx, 0);
    CHECK_THROWS_AS(source.take(ctx, 2), std::logic_error);
    CHECK_THROWS_AS(source.take(ctx, 0), std::logic_error);
  }
  HeadSource source(two);
  source.take(ctx, 0);
  CHECK_THROWS_AS(source.take(layer(4), 0), std::logic_error);
}

TEST_CASE("an error in a head computed ahead is thrown by the take() that asks for that head") {
  // LATTE scoring; head 2's margin is negative, which its filter refuses.
  QkSetup latte = test::dense_qk_setup(5);
  latte.qk.type = QkType::bit_serial;
  latte.qk.mode = QkMode::latte;
  latte.qk.estimate_bits = 2;
  const std::unique_ptr<CandidateGenerator> all = make_candidate_generator("all", nlohmann::json::object());
  const HeadModel two(latte, *all, nullptr, nullptr, 2);
  auto ctx = std::make_shared<LayerContext>(*layer(4));
  ctx->margin[2] = -1;
  HeadSource source(two);
  CHECK(source.take(ctx, 0)->head == 0);
  CHECK(source.take(ctx, 1)->head == 1);  // the producer may have failed on head 2 already
  CHECK_THROWS_WITH(source.take(ctx, 2), "qk_math: latte_filter: margin must be >= 0, got -1");
}
