// Trace validation (SEMANTICS §1), per-layer loading and quantization (SEMANTICS §2).
#include "workloads/trace.h"

#include "tests/workloads/trace_test_files.h"

#include <catch2/catch.hpp>

#include <cfenv>
#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>

using namespace attnsim;
using attnsim_test::f32_bytes;
using attnsim_test::TempDir;
using attnsim_test::write_raw_safetensors;
using Catch::Matchers::Contains;

namespace {

std::string L(int l, const std::string& what) { return "layers." + std::to_string(l) + "." + what; }

// Deterministic, distinct, exactly representable values (multiples of 1/8).
std::vector<float> ramp(size_t n, float offset) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = offset + 0.125f * static_cast<float>((i * 7) % 23) - 1.0f;
  return v;
}

// Adds q [H,N,d], k and v [H,M,d] of layer l.
void add_layer(SafetensorsWriter& w, int l, int heads, int n, int m, int d,
               DType dtype = DType::F32) {
  const size_t nq = static_cast<size_t>(heads) * n * d, nk = static_cast<size_t>(heads) * m * d;
  w.add_float(L(l, "q"), dtype, {heads, n, d}, ramp(nq, 0.5f));
  w.add_float(L(l, "k"), dtype, {heads, m, d}, ramp(nk, -0.25f));
  w.add_float(L(l, "v"), dtype, {heads, m, d}, ramp(nk, 0.0f));
}

// A valid two-layer trace with H=2, N=M=3, d=2, plus whatever `extra` adds.
template <typename Extra>
std::string write_trace(const TempDir& dir, const std::string& name, Extra extra) {
  SafetensorsWriter w;
  add_layer(w, 0, 2, 3, 3, 2);
  add_layer(w, 1, 2, 3, 3, 2);
  w.set_metadata("model", "unit");
  extra(w);
  const std::string path = dir.file(name);
  w.write(path);
  return path;
}

std::string write_trace(const TempDir& dir, const std::string& name) {
  return write_trace(dir, name, [](SafetensorsWriter&) {});
}

// An I8 layer-0 trace: H=2, N=M=1, d=4 with the given int8 values.
std::string write_i8_trace(const TempDir& dir, const std::string& name,
                           const std::vector<float>& q, bool with_scales = true) {
  SafetensorsWriter w;
  w.add_float(L(0, "q"), DType::I8, {2, 1, 4}, q);
  w.add_float(L(0, "k"), DType::I8, {2, 1, 4}, {1, 2, 3, 4, -1, -2, -3, -4});
  w.add_float(L(0, "v"), DType::I8, {2, 1, 4}, {5, 6, 7, 8, 9, 10, 11, 12});
  if (with_scales) {
    w.set_metadata("scale.0.q", "0.25");
    w.set_metadata("scale.0.k", "0.5");
    w.set_metadata("scale.0.v", "2e-3");
  }
  const std::string path = dir.file(name);
  w.write(path);
  return path;
}

std::vector<int16_t> i16(std::initializer_list<int> v) { return std::vector<int16_t>(v.begin(), v.end()); }

}  // namespace

// ---------------------------------------------------------------------------
// quantize()

TEST_CASE("quantize rounds ties to even, B = 8, scale 1") {
  // max|x| = 127, so scale = 127/127 = 1 and x/scale = x.
  const std::vector<float> x{0.5f, 1.5f, 2.5f, 3.5f, -0.5f, -1.5f, -2.5f, -3.5f, 127.0f, 0.49f, 2.51f};
  Quantized q = quantize(x.data(), x.size(), 8);
  CHECK(q.scale == 1.0);
  CHECK(q.values == i16({0, 2, 2, 4, 0, -2, -2, -4, 127, 0, 3}));
}

TEST_CASE("quantize rounds ties to even whatever the FP rounding mode") {
  const std::vector<float> x{0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 0.7f, -0.7f, 127.0f};
  for (int mode : {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO}) {
    REQUIRE(std::fesetround(mode) == 0);
    Quantized q = quantize(x.data(), x.size(), 8);
    std::fesetround(FE_TONEAREST);
    CHECK(q.values == i16({0, 2, 2, 0, -2, -2, 1, -1, 127}));
  }
}

TEST_CASE("quantize with B = 4 on hand values") {
  // max|x| = 3.5, scale = 3.5/7 = 0.5: x/scale = 7, 0.5, 1.5, -2.5, 2, -0.25.
  const std::vector<float> x{3.5f, 0.25f, 0.75f, -1.25f, 1.0f, -0.125f};
  Quantized q = quantize(x.data(), x.size(), 4);
  CHECK(q.scale == 0.5);
  CHECK(q.values == i16({7, 0, 2, -2, 2, 0}));
}

TEST_CASE("quantize maps the extreme value to exactly +-(2^(B-1)-1) and clamps") {
  // scale = 3.7/7 is inexact; -3.7/scale must still land on -7, never beyond.
  const std::vector<float> x{-3.7f, 1.0f, 3.69f};
  Quantized q = quantize(x.data(), x.size(), 4);
  CHECK(q.scale == Approx(static_cast<double>(3.7f) / 7).epsilon(1e-15));
  CHECK(q.values == i16({-7, 2, 7}));  // 1/0.52857 = 1.89 -> 2; 3.69/0.52857 = 6.98 -> 7
  for (int bits : {2, 3, 8, 12, 16}) {
    const int qmax = (1 << (bits - 1)) - 1;
    const std::vector<float> y{0.3f, -0.7f, 0.6999f};
    Quantized r = quantize(y.data(), y.size(), bits);
    CHECK(r.scale == Approx(static_cast<double>(0.7f) / qmax).epsilon(1e-15));
    CHECK(r.values[1] == -qmax);
    CHECK(r.values[2] <= qmax);
  }
}

TEST_CASE("quantize of an all-zero tensor has scale 1") {
  const std::vector<float> x{0.0f, -0.0f, 0.0f};
  Quantized q = quantize(x.data(), x.size(), 8);
  CHECK(q.scale == 1.0);
  CHECK(q.values == i16({0, 0, 0}));
}

TEST_CASE("quantize computes in double") {
  // 1/3 and 2/3 of max|x| = 127 * 2^-20 with B = 8: exact in double, so x/scale is
  // exactly representable and no float rounding slips in.
  const float unit = std::ldexp(1.0f, -20);
  const std::vector<float> x{127 * unit, 42.5f * unit, -63.5f * unit, 64.5f * unit};
  Quantized q = quantize(x.data(), x.size(), 8);
  CHECK(q.scale == static_cast<double>(unit));
  CHECK(q.values == i16({127, 42, -64, 64}));
}

TEST_CASE("quantize rejects bit widths outside 2..16") {
  const float x = 1;
  CHECK_THROWS_AS(quantize(&x, 1, 1), std::invalid_argument);
  CHECK_THROWS_AS(quantize(&x, 1, 17), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// Good traces

TEST_CASE("a good F32 trace opens and loads quantized per head") {
  TempDir dir;
  const std::string path = write_trace(dir, "good.safetensors");
  Trace t(path);
  CHECK(t.path() == path);
  CHECK(t.layers() == 2);
  CHECK_FALSE(t.causal());
  CHECK(t.model() == "unit");
  const LayerShape& s = t.shape(1);
  CHECK(s.heads == 2);
  CHECK(s.n == 3);
  CHECK(s.m == 3);
  CHECK(s.d == 2);
  CHECK(s.dtype == DType::F32);

  LayerView v = t.layer(1, 8);
  CHECK(v.index == 1);
  REQUIRE(v.head.size() == 2);
  CHECK(v.skim_keep.empty());
  // Head h of q holds ramp elements [6h, 6h+6).
  const std::vector<float> q_all = ramp(12, 0.5f);
  for (int h = 0; h < 2; ++h) {
    const std::vector<float> expect(q_all.begin() + 6 * h, q_all.begin() + 6 * h + 6);
    CHECK(v.head[h].q_float == expect);
    Quantized ref = quantize(expect.data(), expect.size(), 8);
    CHECK(v.head[h].q == ref.values);
    CHECK(v.head[h].scale_q == ref.scale);
    CHECK(v.head[h].k.size() == 6);
    CHECK(v.head[h].v_float.size() == 6);
  }
  // Hand check of head 0 of q: ramp(i) = 0.125 * ((7i) mod 23) - 0.5 for i = 0..5.
  CHECK(v.head[0].q_float == std::vector<float>{-0.5f, 0.375f, 1.25f, 2.125f, 0.125f, 1.0f});
  // max|x| = 2.125, scale = 2.125/127; x/scale = x * 59.76: -29.9, 22.4, 74.7, 127, 7.5-, 59.8.
  CHECK(v.head[0].scale_q == 2.125 / 127);
  CHECK(v.head[0].q == i16({-30, 22, 75, 127, 7, 60}));
}

TEST_CASE("an F16 trace loads the half values") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 2, 2, DType::F16);
  const std::string path = dir.file("half.safetensors");
  w.write(path);
  Trace t(path);
  CHECK(t.shape(0).dtype == DType::F16);
  LayerView v = t.layer(0, 8);
  CHECK(v.head[0].q_float == ramp(4, 0.5f));  // multiples of 1/8 are exact in half
  CHECK(v.head[0].k_float == ramp(4, -0.25f));
}

TEST_CASE("an I8 trace with bits 8 uses the raw values and the metadata scales") {
  TempDir dir;
  const std::string path = write_i8_trace(dir, "i8.safetensors", {28, -6, 2, 14, -128, 4, 12, 0});
  Trace t(path);
  CHECK(t.shape(0).dtype == DType::I8);
  LayerView v = t.layer(0, 8);
  CHECK(v.head[0].q == i16({28, -6, 2, 14}));
  CHECK(v.head[1].q == i16({-128, 4, 12, 0}));  // -128 kept: a valid 8-bit value
  CHECK(v.head[1].k == i16({-1, -2, -3, -4}));
  for (int h = 0; h < 2; ++h) {
    CHECK(v.head[h].scale_q == 0.25);
    CHECK(v.head[h].scale_k == 0.5);
    CHECK(v.head[h].scale_v == 2e-3);
    CHECK(v.head[h].q_float.empty());
  }
}

TEST_CASE("an I8 trace with bits 4 is dequantized then quantized per head") {
  TempDir dir;
  const std::string path = write_i8_trace(dir, "i8b4.safetensors", {28, -6, 2, 14, -56, 4, 12, 0});
  Trace t(path);
  LayerView v = t.layer(0, 4);
  // Head 0: x = 0.25*{28,-6,2,14} = {7,-1.5,0.5,3.5}; scale 7/7 = 1; ties to even.
  CHECK(v.head[0].scale_q == 1.0);
  CHECK(v.head[0].q == i16({7, -2, 0, 4}));
  // Head 1: x = {-14, 1, 3, 0}; scale 14/7 = 2; x/scale = {-7, 0.5, 1.5, 0}.
  CHECK(v.head[1].scale_q == 2.0);
  CHECK(v.head[1].q == i16({-7, 0, 2, 0}));
  // k head 1: x = 0.5*{-1,-2,-3,-4}; scale = 2/7; x/scale = {-1.75,-3.5,-5.25,-7}.
  CHECK(v.head[1].scale_k == Approx(2.0 / 7).epsilon(1e-15));
  CHECK(v.head[1].k == i16({-2, -4, -5, -7}));
}

TEST_CASE("causal metadata and cross-attention shapes") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 5, 2);  // N = 2 queries, M = 5 keys: allowed when not causal
  const std::string cross = dir.file("cross.safetensors");
  w.write(cross);
  Trace t(cross);
  CHECK(t.shape(0).n == 2);
  CHECK(t.shape(0).m == 5);
  LayerView v = t.layer(0, 8);
  CHECK(v.head[0].q.size() == 4);
  CHECK(v.head[0].k.size() == 10);

  SafetensorsWriter c;
  add_layer(c, 0, 1, 3, 3, 2);
  c.set_metadata("causal", "true");
  const std::string causal = dir.file("causal.safetensors");
  c.write(causal);
  CHECK(Trace(causal).causal());
}

TEST_CASE("optional tensors, reserved predictor tensors and outside tensors are accepted") {
  TempDir dir;
  const std::string path = write_trace(dir, "opt.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(0, "skim_keep"), DType::U8, {3}, {1, 0, 1});
    w.add_float(L(0, "tree.1.w"), DType::F32, {3, 2}, std::vector<float>(6, 0.5f));
    w.add_float(L(0, "tree.1.b"), DType::F32, {3}, {0, 1, 2});
    w.add_float(L(1, "lsh.0.proj"), DType::F32, {4, 2}, std::vector<float>(8, 1));
    w.add_float(L(1, "performer.1.w"), DType::F32, {8, 2}, std::vector<float>(16, 1));
    w.add_float(L(1, "skim_predictor.ln1.weight"), DType::F32, {2}, {1, 1});
    w.add_float("embeddings.position", DType::F32, {2}, {0, 0});
  });
  Trace t(path);
  LayerView v0 = t.layer(0, 8);
  CHECK(v0.skim_keep == std::vector<uint8_t>{1, 0, 1});
  CHECK(t.layer(1, 8).skim_keep.empty());
}

TEST_CASE("describe_trace lists layers, optional tensors, other tensors and metadata") {
  TempDir dir;
  const std::string path = write_trace(dir, "desc.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(1, "skim_keep"), DType::U8, {3}, {1, 1, 0});
    w.add_float(L(0, "lsh.1.proj"), DType::F32, {4, 2}, std::vector<float>(8, 1));
    w.add_float("extra", DType::F32, {2}, {0, 0});
    w.set_metadata("source", "pytest");
  });
  Trace t(path);
  const std::string text = describe_trace(t);
  CHECK_THAT(text, Contains(path));
  CHECK_THAT(text, Contains(t.sha256()));
  CHECK_THAT(text, Contains("model:   unit"));
  CHECK_THAT(text, Contains("causal:  false"));
  CHECK_THAT(text, Contains("layers:  2"));
  CHECK_THAT(text, Contains("layer 0: heads 2, N 3, M 3, d 2, F32, lsh (heads 1)\n"));
  CHECK_THAT(text, Contains("layer 1: heads 2, N 3, M 3, d 2, F32, skim_keep\n"));
  CHECK_THAT(text, Contains("  extra F32 [2]\n"));
  CHECK_THAT(text, Contains("  source = pytest\n"));
}

// ---------------------------------------------------------------------------
// Rejections: every message names the file and the tensor at fault.

TEST_CASE("reject a truncated trace file") {
  TempDir dir;
  const std::string path = write_trace(dir, "trunc.safetensors");
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 3);
  // The last tensor in name order is layers.1.v.
  CHECK_THROWS_WITH(Trace(path), Contains("trunc.safetensors: layers.1.v:") &&
                                     Contains("shorter than its header says"));
}

TEST_CASE("reject a trace whose header length is past the end") {
  TempDir dir;
  const std::string path = dir.file("hlen.safetensors");
  write_raw_safetensors(path, "{}", {});
  std::filesystem::resize_file(path, 9);
  CHECK_THROWS_WITH(Trace(path), Contains("hlen.safetensors") && Contains("header length 2"));
}

TEST_CASE("reject a trace whose header is not JSON") {
  TempDir dir;
  const std::string path = dir.file("nojson.safetensors");
  write_raw_safetensors(path, "{layers.0.q}", {});
  CHECK_THROWS_WITH(Trace(path), Contains("nojson.safetensors: header is not JSON"));
}

TEST_CASE("reject trace offsets past the end of the data") {
  TempDir dir;
  const std::string path = dir.file("past.safetensors");
  write_raw_safetensors(
      path, "{\"layers.0.q\":{\"dtype\":\"F32\",\"shape\":[1,1,1],\"data_offsets\":[4,8]}}",
      f32_bytes({1}));
  CHECK_THROWS_WITH(Trace(path), Contains("past.safetensors: layers.0.q:") && Contains("past the end"));
}

TEST_CASE("reject a trace tensor whose size does not match its shape") {
  TempDir dir;
  const std::string path = dir.file("size.safetensors");
  write_raw_safetensors(
      path, "{\"layers.0.q\":{\"dtype\":\"F32\",\"shape\":[1,2,1],\"data_offsets\":[0,4]}}",
      f32_bytes({1, 2}));
  CHECK_THROWS_WITH(Trace(path), Contains("size.safetensors: layers.0.q:") && Contains("needs 8"));
}

TEST_CASE("reject NaN in a layer tensor when the layer is loaded") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 2, 2);
  std::vector<float> k = ramp(4, 0);
  k[3] = std::nanf("");
  w.add_float(L(0, "k"), DType::F32, {1, 2, 2}, k);
  const std::string path = dir.file("nan.safetensors");
  w.write(path);
  Trace t(path);
  CHECK_THROWS_WITH(t.layer(0, 8), Contains("nan.safetensors: layers.0.k: NaN at index [0, 1, 1]"));
}

TEST_CASE("reject Inf in an F16 layer tensor") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 2, 2, DType::F16);
  w.add_float(L(0, "v"), DType::F16, {1, 2, 2}, {1, 2, 1e6f, 3});  // 1e6 overflows half
  const std::string path = dir.file("inf.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path).layer(0, 8), Contains("inf.safetensors: layers.0.v: Inf"));
}

TEST_CASE("reject a q tensor of the wrong rank") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 2, 2);
  w.add_float(L(0, "q"), DType::F32, {2, 2}, {1, 2, 3, 4});
  const std::string path = dir.file("rank.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("rank.safetensors: layers.0.q: expected rank 3") &&
                                     Contains("got rank 2"));
}

TEST_CASE("reject unsupported dtypes I32 and F64 in a trace") {
  TempDir dir;
  const std::string path = dir.file("dtype.safetensors");
  for (const char* dt : {"I32", "F64"}) {
    write_raw_safetensors(path,
                          std::string("{\"layers.0.k\":{\"dtype\":\"") + dt +
                              "\",\"shape\":[1,1,2],\"data_offsets\":[0,8]}}",
                          f32_bytes({1, 2}));
    CHECK_THROWS_WITH(Trace(path), Contains("dtype.safetensors: layers.0.k:") && Contains(dt));
  }
}

TEST_CASE("reject U8 q/k/v tensors") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 1, 1, 2);
  w.add_float(L(0, "q"), DType::U8, {1, 1, 2}, {1, 2});
  const std::string path = dir.file("u8.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("u8.safetensors: layers.0.q:") && Contains("U8"));
}

TEST_CASE("reject a gap in the layer numbering") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 2, 2);
  add_layer(w, 2, 1, 2, 2, 2);
  const std::string path = dir.file("gap.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("gap.safetensors: layers.1.q: missing"));
}

TEST_CASE("reject a trace without layers") {
  TempDir dir;
  SafetensorsWriter w;
  w.add_float("other", DType::F32, {1}, {1});
  const std::string path = dir.file("empty.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("empty.safetensors: no layers") && Contains("layers.0.q"));
}

TEST_CASE("reject a layer without k") {
  TempDir dir;
  SafetensorsWriter w;
  w.add_float(L(0, "q"), DType::F32, {1, 1, 2}, {1, 2});
  w.add_float(L(0, "v"), DType::F32, {1, 1, 2}, {1, 2});
  const std::string path = dir.file("nok.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("nok.safetensors: layers.0.k: missing"));
}

TEST_CASE("reject q and k of different dtypes") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 2, 2);
  w.add_float(L(0, "k"), DType::F16, {1, 2, 2}, ramp(4, 0));
  const std::string path = dir.file("mixed.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("mixed.safetensors: layers.0.k: dtype F16 differs from layers.0.q (F32)"));
}

TEST_CASE("reject different head counts in q and v") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 2, 2, 2, 2);
  w.add_float(L(0, "v"), DType::F32, {1, 2, 2}, ramp(4, 0));
  const std::string path = dir.file("heads.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("heads.safetensors: layers.0.v: H = 1 differs from layers.0.q (H = 2)"));
}

TEST_CASE("reject different head dimensions in q and k") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 2, 2);
  w.add_float(L(0, "k"), DType::F32, {1, 2, 3}, ramp(6, 0));
  const std::string path = dir.file("dim.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("dim.safetensors: layers.0.k: d = 3"));
}

TEST_CASE("reject k and v with different token counts") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 2, 2);
  w.add_float(L(0, "v"), DType::F32, {1, 3, 2}, ramp(6, 0));
  const std::string path = dir.file("kv.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("kv.safetensors: layers.0.v: M = 3 differs from layers.0.k (M = 2)"));
}

TEST_CASE("reject a causal trace with N != M") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 3, 2);
  w.set_metadata("causal", "true");
  const std::string path = dir.file("causal.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("causal.safetensors: layers.0.k: causal trace needs N = M, got N = 2, M = 3"));
}

TEST_CASE("reject a causal value other than true or false") {
  TempDir dir;
  const std::string path = write_trace(dir, "cv.safetensors", [](SafetensorsWriter& w) {
    w.set_metadata("causal", "yes");
  });
  CHECK_THROWS_WITH(Trace(path), Contains("cv.safetensors: metadata causal = 'yes'"));
}

TEST_CASE("reject a layer with no tokens") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 2, 2);
  add_layer(w, 1, 1, 0, 0, 2);
  const std::string path = dir.file("notok.safetensors");
  w.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("notok.safetensors: layers.1.q: layer has no tokens"));

  SafetensorsWriter x;
  add_layer(x, 0, 1, 2, 0, 2);  // queries but no keys
  x.write(path);
  CHECK_THROWS_WITH(Trace(path), Contains("notok.safetensors: layers.0.k: layer has no tokens"));
}

TEST_CASE("reject an I8 trace without scales") {
  TempDir dir;
  const std::string path = write_i8_trace(dir, "noscale.safetensors", {1, 2, 3, 4, 5, 6, 7, 8}, false);
  CHECK_THROWS_WITH(Trace(path), Contains("noscale.safetensors: layers.0.q:") && Contains("scale.0.q"));
}

TEST_CASE("reject I8 scales that are not positive finite numbers") {
  TempDir dir;
  for (const char* bad : {"0", "-1", "abc", "inf", "nan", "0.5x", ""}) {
    SafetensorsWriter w;
    w.add_float(L(0, "q"), DType::I8, {1, 1, 1}, {1});
    w.add_float(L(0, "k"), DType::I8, {1, 1, 1}, {1});
    w.add_float(L(0, "v"), DType::I8, {1, 1, 1}, {1});
    w.set_metadata("scale.0.q", "1");
    w.set_metadata("scale.0.k", bad);
    w.set_metadata("scale.0.v", "1");
    const std::string path = dir.file("badscale.safetensors");
    w.write(path);
    CHECK_THROWS_WITH(Trace(path), Contains("badscale.safetensors: layers.0.k: metadata scale.0.k"));
  }
}

TEST_CASE("reject an unknown layers.* tensor listing the known names") {
  TempDir dir;
  const std::string path = write_trace(dir, "unknown.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(0, "attn_mask"), DType::F32, {1}, {1});
  });
  CHECK_THROWS_WITH(Trace(path), Contains("unknown.safetensors: layers.0.attn_mask: unknown tensor") &&
                                     Contains("skim_keep") && Contains("tree.{h}.w"));
  const std::string path2 = write_trace(dir, "unknown2.safetensors", [](SafetensorsWriter& w) {
    w.add_float("layers.01.q", DType::F32, {1}, {1});  // non-canonical layer number
  });
  CHECK_THROWS_WITH(Trace(path2), Contains("unknown2.safetensors: layers.01.q: unknown tensor"));
}

TEST_CASE("reject skim_keep values other than 0 and 1 when the layer is loaded") {
  TempDir dir;
  const std::string path = write_trace(dir, "skim.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(1, "skim_keep"), DType::U8, {3}, {1, 2, 0});
  });
  Trace t(path);
  CHECK_NOTHROW(t.layer(0, 8));
  CHECK_THROWS_WITH(t.layer(1, 8), Contains("skim.safetensors: layers.1.skim_keep: value 2 at index 1"));
}

TEST_CASE("reject skim_keep of the wrong shape or dtype") {
  TempDir dir;
  const std::string path = write_trace(dir, "skimshape.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(0, "skim_keep"), DType::U8, {4}, {1, 1, 1, 1});
  });
  CHECK_THROWS_WITH(Trace(path), Contains("skimshape.safetensors: layers.0.skim_keep: expected shape [N] = [3]"));
  const std::string path2 = write_trace(dir, "skimdtype.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(0, "skim_keep"), DType::F32, {3}, {1, 1, 1});
  });
  CHECK_THROWS_WITH(Trace(path2), Contains("skimdtype.safetensors: layers.0.skim_keep: expected dtype U8"));
}

TEST_CASE("reject a tree with w but no b, or a row count that is not 2^D-1") {
  TempDir dir;
  const std::string path = write_trace(dir, "tree.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(0, "tree.0.w"), DType::F32, {3, 2}, std::vector<float>(6, 1));
  });
  CHECK_THROWS_WITH(Trace(path), Contains("tree.safetensors: layers.0.tree.0.b: missing"));
  const std::string path2 = write_trace(dir, "tree2.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(0, "tree.0.w"), DType::F32, {4, 2}, std::vector<float>(8, 1));
    w.add_float(L(0, "tree.0.b"), DType::F32, {4}, std::vector<float>(4, 1));
  });
  CHECK_THROWS_WITH(Trace(path2), Contains("tree2.safetensors: layers.0.tree.0.w: expected shape [2^D-1, d]"));
  const std::string path3 = write_trace(dir, "tree3.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(0, "tree.0.w"), DType::F32, {3, 2}, std::vector<float>(6, 1));
    w.add_float(L(0, "tree.0.b"), DType::F32, {1}, {1});
  });
  CHECK_THROWS_WITH(Trace(path3), Contains("tree3.safetensors: layers.0.tree.0.b: expected shape"));
}

TEST_CASE("reject optional per-head tensors with a head index >= H or a wrong d") {
  TempDir dir;
  const std::string path = write_trace(dir, "lsh.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(1, "lsh.2.proj"), DType::F32, {4, 2}, std::vector<float>(8, 1));
  });
  CHECK_THROWS_WITH(Trace(path), Contains("lsh.safetensors: layers.1.lsh.2.proj: head 2 out of range"));
  const std::string path2 = write_trace(dir, "perf.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(0, "performer.0.w"), DType::F32, {4, 3}, std::vector<float>(12, 1));
  });
  CHECK_THROWS_WITH(Trace(path2), Contains("perf.safetensors: layers.0.performer.0.w: expected shape [m/2, d] = [4, 2]"));
}

TEST_CASE("layer index out of range is an error naming the file") {
  TempDir dir;
  Trace t(write_trace(dir, "range.safetensors"));
  CHECK_THROWS_WITH(t.layer(2, 8), Contains("range.safetensors") && Contains("layer 2 out of range"));
}

// Hidden (run with "[.perf]"): BERT-base layer load time.
TEST_CASE("BERT-base F16 layer load time", "[.perf]") {
  TempDir dir;
  SafetensorsWriter w;
  add_layer(w, 0, 12, 512, 512, 64, DType::F16);
  const std::string path = dir.file("bert.safetensors");
  w.write(path);
  Trace t(path);
  t.layer(0, 8);  // warm the page cache
  const int reps = 20;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) t.layer(0, 8);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / reps;
  std::cout << "BERT-base F16 layer (12 x 512 x 64, q/k/v): " << ms << " ms per load\n";
  CHECK(ms < 50);
}
