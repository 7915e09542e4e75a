// Trace validation (SEMANTICS §1), per-layer loading and quantization (SEMANTICS §2).
#include "workloads/trace.h"

#include "tests/workloads/trace_test_files.h"

#include <catch2/catch.hpp>

#include <cfenv>
#include <chrono>
#include <cmath>
#include <cstring>
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

// Distinct predictor values: part p (0..7 in kPredictorParts order), element e -> p + e/16.
std::vector<float> predictor_values(int part, size_t n) {
  std::vector<float> v(n);
  for (size_t e = 0; e < n; ++e) v[e] = static_cast<float>(part) + static_cast<float>(e) / 16;
  return v;
}

// All eight layers.{l}.skim_predictor.* tensors for hidden size D.
void add_predictor(SafetensorsWriter& w, int l, int d) {
  const char* names[] = {"ln1.weight", "ln1.bias", "fc1.weight", "fc1.bias",
                         "ln2.weight", "ln2.bias", "fc2.weight", "fc2.bias"};
  const std::vector<std::vector<int64_t>> shapes = {{d}, {d}, {d, d}, {d}, {d}, {d}, {2, d}, {2}};
  for (int p = 0; p < 8; ++p) {
    size_t n = 1;
    for (int64_t dim : shapes[p]) n *= static_cast<size_t>(dim);
    w.add_float(L(l, std::string("skim_predictor.") + names[p]), DType::F32, shapes[p],
                predictor_values(p, n));
  }
}

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
    add_predictor(w, 1, 2);  // all eight tensors (a lone one is rejected, see below)
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

// ---------------------------------------------------------------------------
// Token skimming: reduced layers (layer_mixed), hidden states, predictor weights
// (docs/skimming.md).

namespace {

// Two views equal byte for byte (float copies compared with memcmp: -0.0 counts).
void check_same_view(const LayerView& a, const LayerView& b) {
  CHECK(a.index == b.index);
  CHECK(a.heads == b.heads);
  CHECK(a.n == b.n);
  CHECK(a.m == b.m);
  CHECK(a.d == b.d);
  CHECK(a.skim_keep == b.skim_keep);
  CHECK(a.original == b.original);
  REQUIRE(a.head.size() == b.head.size());
  auto same_floats = [](const std::vector<float>& x, const std::vector<float>& y) {
    return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size() * 4) == 0);
  };
  for (size_t h = 0; h < a.head.size(); ++h) {
    const HeadData& x = a.head[h];
    const HeadData& y = b.head[h];
    CHECK(x.q == y.q);
    CHECK(x.k == y.k);
    CHECK(x.v == y.v);
    CHECK(std::memcmp(&x.scale_q, &y.scale_q, sizeof(double)) == 0);
    CHECK(std::memcmp(&x.scale_k, &y.scale_k, sizeof(double)) == 0);
    CHECK(std::memcmp(&x.scale_v, &y.scale_v, sizeof(double)) == 0);
    CHECK(same_floats(x.q_float, y.q_float));
    CHECK(same_floats(x.k_float, y.k_float));
    CHECK(same_floats(x.v_float, y.v_float));
  }
}

skim::TokenMix mix(std::initializer_list<std::pair<int32_t, double>> parts) {
  skim::TokenMix t;
  t.parts.assign(parts.begin(), parts.end());
  return t;
}

// H = 1, N = M = 3, d = 2; q = k = v = rows r0, r1, r2 (F32 or I8), plus skim_keep.
std::string write_three_tokens(const TempDir& dir, const std::string& name,
                               const std::vector<float>& rows, DType dtype) {
  SafetensorsWriter w;
  for (const char* which : {"q", "k", "v"}) w.add_float(L(0, which), dtype, {1, 3, 2}, rows);
  w.add_float(L(0, "skim_keep"), DType::U8, {3}, {1, 0, 1});
  if (dtype == DType::I8)
    for (const char* which : {"q", "k", "v"}) w.set_metadata(std::string("scale.0.") + which, "0.5");
  const std::string path = dir.file(name);
  w.write(path);
  return path;
}

}  // namespace

TEST_CASE("layer lists each token's original id") {
  TempDir dir;
  Trace t(write_trace(dir, "orig.safetensors"));
  CHECK(t.layer(0, 8).original == std::vector<int32_t>{0, 1, 2});
}

TEST_CASE("layer_mixed with the identity map equals layer byte for byte") {
  TempDir dir;
  SECTION("F32 with skim_keep and a negative zero") {
    const std::string path = write_trace(dir, "id.safetensors", [](SafetensorsWriter& w) {
      w.add_float(L(1, "skim_keep"), DType::U8, {3}, {1, 0, 1});
      w.add_float(L(1, "q"), DType::F32, {2, 3, 2}, {-0.0f, 1, 2, 3, 4, 5, -6, 7, 8, 9, 10, 11});
    });
    Trace t(path);
    for (int l : {0, 1})
      for (int bits : {8, 4, 12}) check_same_view(t.layer_mixed(l, bits, skim::identity_map(3)), t.layer(l, bits));
    uint32_t bits0;
    const float first = t.layer_mixed(1, 8, skim::identity_map(3)).head[0].q_float[0];
    std::memcpy(&bits0, &first, 4);
    CHECK(bits0 == 0x80000000u);  // still -0.0
  }
  SECTION("F16 and cross-attention") {
    SafetensorsWriter w;
    add_layer(w, 0, 2, 2, 5, 2, DType::F16);  // N = 2 queries, M = 5 keys
    const std::string path = dir.file("idh.safetensors");
    w.write(path);
    Trace t(path);
    check_same_view(t.layer_mixed(0, 8, skim::identity_map(2)), t.layer(0, 8));
  }
  SECTION("I8 at bits 8 (raw values, -128 included) and at bits 4") {
    Trace t(write_i8_trace(dir, "idi8.safetensors", {28, -6, 2, 14, -128, 4, 12, 0}));
    check_same_view(t.layer_mixed(0, 8, skim::identity_map(1)), t.layer(0, 8));
    check_same_view(t.layer_mixed(0, 4, skim::identity_map(1)), t.layer(0, 4));
    Trace t3(write_three_tokens(dir, "idi83.safetensors", {100, -128, 3, -5, 4, 0}, DType::I8));
    for (int bits : {8, 4, 16}) check_same_view(t3.layer_mixed(0, bits, skim::identity_map(3)), t3.layer(0, bits));
  }
}

TEST_CASE("layer_mixed averages two rows then quantizes the reduced tensor") {
  TempDir dir;
  // r0 = (127/64, -1), r1 = (1/64, 3/64), r2 = (0, 0).
  const std::vector<float> rows{127.0f / 64, -1, 1.0f / 64, 3.0f / 64, 0, 0};
  Trace t(write_three_tokens(dir, "mix.safetensors", rows, DType::F32));
  // Tokens: original 0, and the average of 1 and 2 = (1/128, 3/128).
  const skim::TokenMap map{skim::fine_token(0), mix({{1, 0.5}, {2, 0.5}})};
  const LayerView v = t.layer_mixed(0, 8, map);
  CHECK(v.n == 2);
  CHECK(v.m == 2);
  CHECK(v.original == std::vector<int32_t>{0, -1});
  CHECK(v.skim_keep == std::vector<uint8_t>{1, 0, 1});  // still over the original tokens
  const std::vector<float> mixed{127.0f / 64, -1, 1.0f / 128, 3.0f / 128};
  // max|x| = 127/64 -> scale 1/64; x/scale = 127, -64, 0.5 -> 0 (tie to even), 1.5 -> 2.
  for (const HeadData* h : {&v.head[0]}) {
    CHECK(h->q_float == mixed);
    CHECK(h->k_float == mixed);
    CHECK(h->v_float == mixed);
    CHECK(h->scale_q == 1.0 / 64);
    CHECK(h->q == i16({127, -64, 0, 2}));
    CHECK(h->k == i16({127, -64, 0, 2}));
    CHECK(h->v == i16({127, -64, 0, 2}));
  }
  // A subset (Transkimmer: tokens 1 and 2 only) gets its own scale: max|x| = 3/64,
  // scale = 3/(64*127); 1/64 / scale = 127/3 = 42.33 -> 42.
  const LayerView s = t.layer_mixed(0, 8, {skim::fine_token(1), skim::fine_token(2)});
  CHECK(s.original == std::vector<int32_t>{1, 2});
  CHECK(s.head[0].scale_q == Approx(3.0 / 64 / 127).epsilon(1e-15));
  CHECK(s.head[0].q == i16({42, 127, 0, 0}));
}

TEST_CASE("layer_mixed on I8 mixes raw values at bits 8 and dequantized values otherwise") {
  TempDir dir;
  // Raw rows (100, -128), (3, -5), (4, 0), scale 0.5.
  Trace t(write_three_tokens(dir, "mixi8.safetensors", {100, -128, 3, -5, 4, 0}, DType::I8));
  const skim::TokenMap map{skim::fine_token(0), mix({{1, 0.5}, {2, 0.5}})};
  // Bits 8: metadata scale kept; (3 + 4)/2 = 3.5 -> 4, (-5 + 0)/2 = -2.5 -> -2 (ties to even).
  const LayerView v8 = t.layer_mixed(0, 8, map);
  CHECK(v8.head[0].q == i16({100, -128, 4, -2}));
  CHECK(v8.head[0].scale_q == 0.5);
  CHECK(v8.head[0].q_float.empty());
  // Bits 4: dequantized rows (50, -64), (1.75, -1.25); scale 64/7;
  // x/scale = 5.47 -> 5, -7, 0.19 -> 0, -0.14 -> 0.
  const LayerView v4 = t.layer_mixed(0, 4, map);
  CHECK(v4.head[0].scale_q == Approx(64.0 / 7).epsilon(1e-15));
  CHECK(v4.head[0].q == i16({5, -7, 0, 0}));
}

TEST_CASE("reject a bad token map naming the file and tensor") {
  TempDir dir;
  Trace t(write_trace(dir, "badmap.safetensors"));
  CHECK_THROWS_WITH(t.layer_mixed(0, 8, {skim::fine_token(0), skim::fine_token(3)}),
                    Contains("badmap.safetensors: layers.0.q: token map entry 1: original id 3 outside 0..2"));
  CHECK_THROWS_WITH(t.layer_mixed(0, 8, {}), Contains("badmap.safetensors: layers.0.q: token map is empty"));
  CHECK_THROWS_WITH(t.layer_mixed(0, 8, {mix({})}), Contains("layers.0.q: token map entry 0 has no parts"));
  CHECK_THROWS_WITH(t.layer_mixed(0, 8, {mix({{0, NAN}})}), Contains("weight is not finite"));
  CHECK_THROWS_WITH(t.layer_mixed(2, 8, skim::identity_map(3)), Contains("layer 2 out of range"));
  CHECK_THROWS_AS(t.layer_mixed(0, 1, skim::identity_map(3)), std::invalid_argument);

  SafetensorsWriter w;
  add_layer(w, 0, 1, 2, 5, 2);
  const std::string cross = dir.file("crossmap.safetensors");
  w.write(cross);
  CHECK_THROWS_WITH(Trace(cross).layer_mixed(0, 8, {skim::fine_token(0)}),
                    Contains("crossmap.safetensors: layers.0.k: token skimming needs self-attention"));
}

TEST_CASE("hidden states load only the rows asked for") {
  TempDir dir;
  // layers.0.hidden [3, 4] F16: row r = (r, r + 0.5, -r, 0.25).
  const std::vector<float> hidden{0, 0.5f, 0, 0.25f, 1, 1.5f, -1, 0.25f, 2, 2.5f, -2, 0.25f};
  Trace t(write_trace(dir, "hidden.safetensors", [&](SafetensorsWriter& w) {
    w.add_float(L(0, "hidden"), DType::F16, {3, 4}, hidden);
  }));
  CHECK(t.has_hidden(0));
  CHECK_FALSE(t.has_hidden(1));
  CHECK(t.hidden_size(0) == 4);
  CHECK(t.hidden_size(1) == 0);
  CHECK(t.hidden_rows(0, {2, 0}) == std::vector<float>{2, 2.5f, -2, 0.25f, 0, 0.5f, 0, 0.25f});
  CHECK(t.hidden_rows(0, {}).empty());
  CHECK_THROWS_WITH(t.hidden_rows(0, {3}), Contains("hidden.safetensors: layers.0.hidden: row 3 out of range (N = 3)"));
  CHECK_THROWS_WITH(t.hidden_rows(1, {0}), Contains("hidden.safetensors: layers.1.hidden: missing"));
}

TEST_CASE("predictor weights load with their shapes") {
  TempDir dir;
  Trace t(write_trace(dir, "pred.safetensors", [](SafetensorsWriter& w) {
    add_predictor(w, 0, 2);
    w.add_float(L(0, "hidden"), DType::BF16, {3, 2}, {1, 2, 3, 4, 5, 6});
  }));
  CHECK(t.has_predictor(0));
  CHECK_FALSE(t.has_predictor(1));
  const skim::PredictorWeights p = t.predictor(0);
  CHECK(p.d_model == 2);
  CHECK(p.ln1_w == predictor_values(0, 2));
  CHECK(p.ln1_b == predictor_values(1, 2));
  CHECK(p.fc1_w == predictor_values(2, 4));
  CHECK(p.fc1_b == predictor_values(3, 2));
  CHECK(p.ln2_w == predictor_values(4, 2));
  CHECK(p.ln2_b == predictor_values(5, 2));
  CHECK(p.fc2_w == predictor_values(6, 4));
  CHECK(p.fc2_b == predictor_values(7, 2));
  CHECK_THROWS_WITH(t.predictor(1), Contains("pred.safetensors: layers.1.skim_predictor.ln1.weight: missing"));
  CHECK_THAT(describe_trace(t), Contains("layer 0: heads 2, N 3, M 3, d 2, F32, hidden, skim_predictor\n"));
}

TEST_CASE("reject hidden states of the wrong shape or dtype") {
  TempDir dir;
  const std::string n4 = write_trace(dir, "hn.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(0, "hidden"), DType::F32, {4, 2}, std::vector<float>(8, 1));
  });
  CHECK_THROWS_WITH(Trace(n4), Contains("hn.safetensors: layers.0.hidden: expected shape [N, D] = [3, D], got [4, 2]"));
  const std::string u8 = write_trace(dir, "hu8.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(0, "hidden"), DType::U8, {3, 2}, std::vector<float>(6, 1));
  });
  CHECK_THROWS_WITH(Trace(u8), Contains("hu8.safetensors: layers.0.hidden: expected dtype F32, F16 or BF16, got U8"));
  const std::string rank1 = write_trace(dir, "hr.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(1, "hidden"), DType::F32, {3}, {1, 2, 3});
  });
  CHECK_THROWS_WITH(Trace(rank1), Contains("hr.safetensors: layers.1.hidden: expected shape [N, D] with D >= 1, got [3]"));
}

TEST_CASE("reject incomplete or misshapen predictor weights") {
  TempDir dir;
  const std::string lone = write_trace(dir, "plone.safetensors", [](SafetensorsWriter& w) {
    w.add_float(L(1, "skim_predictor.ln1.weight"), DType::F32, {2}, {1, 1});
  });
  CHECK_THROWS_WITH(Trace(lone), Contains("plone.safetensors: layers.1.skim_predictor.ln1.bias: missing") &&
                                     Contains("layers.1.skim_predictor.ln1.weight is present"));
  const std::string fc1 = write_trace(dir, "pfc1.safetensors", [](SafetensorsWriter& w) {
    add_predictor(w, 0, 2);
    w.add_float(L(0, "skim_predictor.fc1.weight"), DType::F32, {2, 3}, std::vector<float>(6, 1));
  });
  CHECK_THROWS_WITH(Trace(fc1), Contains("pfc1.safetensors: layers.0.skim_predictor.fc1.weight: expected shape [D, D]") &&
                                    Contains("= [2, 2], got [2, 3]"));
  const std::string fc2 = write_trace(dir, "pfc2.safetensors", [](SafetensorsWriter& w) {
    add_predictor(w, 0, 2);
    w.add_float(L(0, "skim_predictor.fc2.bias"), DType::F32, {3}, {1, 1, 1});
  });
  CHECK_THROWS_WITH(Trace(fc2), Contains("pfc2.safetensors: layers.0.skim_predictor.fc2.bias: expected shape [2]"));
  const std::string f16 = write_trace(dir, "pf16.safetensors", [](SafetensorsWriter& w) {
    add_predictor(w, 0, 2);
    w.add_float(L(0, "skim_predictor.ln2.bias"), DType::F16, {2}, {1, 1});
  });
  CHECK_THROWS_WITH(Trace(f16), Contains("pf16.safetensors: layers.0.skim_predictor.ln2.bias: expected dtype F32, got F16"));
  const std::string dmis = write_trace(dir, "pd.safetensors", [](SafetensorsWriter& w) {
    add_predictor(w, 0, 2);
    w.add_float(L(0, "hidden"), DType::F32, {3, 4}, std::vector<float>(12, 1));
  });
  CHECK_THROWS_WITH(Trace(dmis), Contains("pd.safetensors: layers.0.skim_predictor.ln1.weight: D = 2 differs from layers.0.hidden (D = 4)"));
  const std::string unknown = write_trace(dir, "pu.safetensors", [](SafetensorsWriter& w) {
    add_predictor(w, 0, 2);
    w.add_float(L(0, "skim_predictor.fc3.weight"), DType::F32, {2}, {1, 1});
  });
  CHECK_THROWS_WITH(Trace(unknown), Contains("pu.safetensors: layers.0.skim_predictor.fc3.weight: unknown tensor") &&
                                        Contains("skim_predictor.{ln1,fc1,ln2,fc2}.{weight,bias}"));
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
