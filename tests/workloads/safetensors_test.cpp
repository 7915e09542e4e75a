// SafetensorsFile / SafetensorsWriter, SHA-256 and half/bf16 conversions.
#include "workloads/safetensors.h"

#include "tests/workloads/trace_test_files.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

using namespace attnsim;
using attnsim_test::f32_bytes;
using attnsim_test::read_bytes;
using attnsim_test::TempDir;
using attnsim_test::write_bytes;
using attnsim_test::write_raw_safetensors;
using Catch::Matchers::Contains;

namespace {

std::string sha_of(const std::string& s) {
  return sha256_hex(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// A well-formed one-tensor file: "x" F32 [2] = {1, 2}, with `header` spliced in.
std::string one_tensor_header(const std::string& dtype, const std::string& shape,
                              const std::string& offsets) {
  return "{\"x\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}}";
}

}  // namespace

// ---------------------------------------------------------------------------
// SHA-256

TEST_CASE("sha256 matches the FIPS 180-4 example vectors") {
  CHECK(sha_of("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha_of("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnop"
               "qrlmnopqrsmnopqrstnopqrstu") ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  CHECK(sha_of(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256 pads correctly around block boundaries") {
  // 55 bytes is the longest message whose padding fits one block; 56 needs two.
  CHECK(sha_of(std::string(55, 'a')) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  CHECK(sha_of(std::string(56, 'a')) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  CHECK(sha_of(std::string(63, 'a')) == "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
  CHECK(sha_of(std::string(64, 'a')) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
  CHECK(sha_of(std::string(65, 'a')) == "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0");
  CHECK(sha_of(std::string(119, 'a')) == "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb");
  CHECK(sha_of(std::string(120, 'a')) == "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c");
}

TEST_CASE("SafetensorsFile::sha256 hashes the whole file") {
  TempDir dir;
  const std::string path = dir.file("h.safetensors");
  SafetensorsWriter w;
  w.add_float("x", DType::F32, {3}, {1, 2, 3});
  w.write(path);
  const std::vector<uint8_t> bytes = read_bytes(path);
  SafetensorsFile f(path);
  CHECK(f.sha256() == sha256_hex(bytes.data(), bytes.size()));
}

TEST_CASE("a file hashed in 16 MiB chunks whose pages are released hashes as a whole and reads the same after") {
  TempDir dir;
  const std::string path = dir.file("big.safetensors");
  // 4.5 M floats = 18 MiB of data: the hash crosses a chunk boundary and ends mid-chunk.
  std::vector<float> values(4'500'001);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 1000) - 500.5f;
  SafetensorsWriter w;
  w.add_float("x", DType::F32, {static_cast<int64_t>(values.size())}, values);
  w.write(path);
  const std::vector<uint8_t> bytes = read_bytes(path);
  SafetensorsFile f(path);
  CHECK(f.sha256() == sha256_hex(bytes.data(), bytes.size()));
  CHECK(f.sha256() == sha256_hex(bytes.data(), bytes.size()));  // again, from released pages
  const TensorInfo& t = f.info("x");
  f.release_pages(t, 1000, 3'000'000);
  CHECK(f.read_float("x") == values);
}

// ---------------------------------------------------------------------------
// half / bfloat16

TEST_CASE("half_to_float decodes exact values, subnormals, infinities and NaN") {
  CHECK(half_to_float(0x3c00) == 1.0f);
  CHECK(half_to_float(0xc000) == -2.0f);
  CHECK(half_to_float(0x7bff) == 65504.0f);              // largest half
  CHECK(half_to_float(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(half_to_float(0x03ff) == std::ldexp(1023.0f, -24));
  CHECK(half_to_float(0x8001) == -std::ldexp(1.0f, -24));
  CHECK(half_to_float(0x0000) == 0.0f);
  CHECK(std::signbit(half_to_float(0x8000)));
  CHECK(half_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(half_to_float(0xfc00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half_to_float(0x7e00)));
  CHECK(std::isnan(half_to_float(0x7c01)));
}

TEST_CASE("float_to_half rounds to nearest even") {
  CHECK(float_to_half(1.0f) == 0x3c00);
  CHECK(float_to_half(-2.0f) == 0xc000);
  CHECK(float_to_half(0.1f) == 0x2e66);
  CHECK(float_to_half(65504.0f) == 0x7bff);
  CHECK(float_to_half(65519.0f) == 0x7bff);  // below the midpoint to 65536
  CHECK(float_to_half(65520.0f) == 0x7c00);  // tie, 0x7bff is odd: rounds up to Inf
  CHECK(float_to_half(1e6f) == 0x7c00);
  CHECK(float_to_half(-1e6f) == 0xfc00);
  // Ties between normals: 1 + 2^-11 lies halfway between 0x3c00 (even) and 0x3c01.
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  CHECK(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3c01);
  // Subnormals: units of 2^-24.
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);      // tie to even (0)
  CHECK(float_to_half(3 * std::ldexp(1.0f, -25)) == 0x0002);  // tie to even (2)
  CHECK(float_to_half(std::ldexp(1.0f, -25) * 1.0001f) == 0x0001);
  CHECK(float_to_half(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)) == 0x0400);  // tie up to normal
  CHECK(float_to_half(std::ldexp(1023.0f, -24)) == 0x03ff);
  CHECK(float_to_half(1e-10f) == 0x0000);
  CHECK(float_to_half(-1e-10f) == 0x8000);
  CHECK(float_to_half(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(float_to_half(-std::numeric_limits<float>::infinity()) == 0xfc00);
  CHECK(std::isnan(half_to_float(float_to_half(std::nanf("")))));
}

TEST_CASE("every finite half survives float_to_half(half_to_float(h))") {
  int mismatches = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;  // Inf / NaN
    if (float_to_half(half_to_float(static_cast<uint16_t>(h))) != h) ++mismatches;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("bf16 conversions round to nearest even") {
  CHECK(bf16_to_float(0x3f80) == 1.0f);
  CHECK(bf16_to_float(0xc040) == -3.0f);
  CHECK(bf16_to_float(0x0001) == std::ldexp(1.0f, -133));  // smallest subnormal bf16
  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);      // tie, 0x3f80 even
  CHECK(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);  // tie, 0x3f81 odd
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3f81);
  CHECK(float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // above the last midpoint
  CHECK(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
  CHECK(bits_of(bf16_to_float(float_to_bf16(-0.0f))) == 0x80000000u);
}

// ---------------------------------------------------------------------------
// Writer and reader round trip

TEST_CASE("writer and reader round trip every dtype with metadata") {
  TempDir dir;
  const std::string path = dir.file("rt.safetensors");
  SafetensorsWriter w;
  w.add_float("b.f32", DType::F32, {2, 2}, {1.5f, -2.25f, 0.1f, 1e-30f});
  w.add_float("a.f16", DType::F16, {3}, {0.1f, -65504.0f, std::ldexp(1.0f, -24)});
  w.add_float("c.bf16", DType::BF16, {2}, {1.0f + 3 * std::ldexp(1.0f, -8), -3.0f});
  w.add_float("d.i8", DType::I8, {1, 3}, {-128, 0, 127});
  w.add_float("e.u8", DType::U8, {2}, {0, 255});
  w.add("f.empty", DType::F32, {0, 4}, {});
  w.set_metadata("model", "tiny");
  w.set_metadata("note", "x y");
  w.write(path);

  SafetensorsFile f(path);
  REQUIRE(f.tensors().size() == 6);
  CHECK(f.metadata().at("model") == "tiny");
  CHECK(f.metadata().at("note") == "x y");
  CHECK(f.info("b.f32").shape == std::vector<int64_t>{2, 2});
  CHECK(f.info("b.f32").dtype == DType::F32);
  CHECK(f.read_float("b.f32") == std::vector<float>{1.5f, -2.25f, 0.1f, 1e-30f});
  CHECK(f.read_float("a.f16") ==
        std::vector<float>{half_to_float(0x2e66), -65504.0f, std::ldexp(1.0f, -24)});
  CHECK(f.read_float("c.bf16") == std::vector<float>{bf16_to_float(0x3f82), -3.0f});
  CHECK(f.read_float("d.i8") == std::vector<float>{-128, 0, 127});
  CHECK(f.read_float("e.u8") == std::vector<float>{0, 255});
  CHECK(f.read_float("f.empty").empty());
  // Tensors are laid out contiguously in name order.
  CHECK(f.info("a.f16").begin == 0);
  CHECK(f.info("a.f16").end == 6);
  CHECK(f.info("b.f32").begin == 6);  // unaligned F32 data still reads correctly
  CHECK(f.info("c.bf16").begin == 22);
  CHECK(f.info("e.u8").end == 31);
  CHECK(f.has("d.i8"));
  CHECK_FALSE(f.has("zz"));
}

TEST_CASE("writer pads the header with spaces to a multiple of 8") {
  TempDir dir;
  const std::string path = dir.file("pad.safetensors");
  SafetensorsWriter w;
  w.add_float("x", DType::U8, {1}, {7});
  w.write(path);
  const std::vector<uint8_t> bytes = read_bytes(path);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  CHECK(header_len % 8 == 0);
  REQUIRE(bytes.size() == 8 + header_len + 1);
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + header_len);
  CHECK(header.find('{') == 0);
  const size_t close = header.rfind('}');
  CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);
  CHECK(bytes.back() == 7);
}

TEST_CASE("writer add_float rejects non-integral or out-of-range I8/U8 values") {
  SafetensorsWriter w;
  CHECK_THROWS_WITH(w.add_float("q8", DType::I8, {1}, {0.5f}), Contains("q8"));
  CHECK_THROWS_WITH(w.add_float("q8", DType::I8, {1}, {128.0f}), Contains("q8"));
  CHECK_THROWS_WITH(w.add_float("u", DType::U8, {1}, {-1.0f}), Contains("u"));
  CHECK_THROWS(w.add("bad", DType::F32, {2}, std::vector<uint8_t>(7)));
}

TEST_CASE("writer writes I32 little-endian, which the reader still rejects as before") {
  TempDir dir;
  const std::string path = dir.file("i32.safetensors");
  SafetensorsWriter w;
  w.add_i32("ids", {3}, {-1, 0, 16777217});  // 2^24 + 1: not a float, kept exactly
  w.add_float("f", DType::I32, {2}, {-2147483648.0f, 7});
  w.write(path);
  const std::vector<uint8_t> bytes = read_bytes(path);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + header_len);
  CHECK(header.find(R"("f":{"dtype":"I32","shape":[2],"data_offsets":[0,8]})") != std::string::npos);
  CHECK(header.find(R"("ids":{"dtype":"I32","shape":[3],"data_offsets":[8,20]})") != std::string::npos);
  const std::vector<uint8_t> data(bytes.begin() + 8 + header_len, bytes.end());
  CHECK(data == std::vector<uint8_t>{0, 0, 0, 0x80, 7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 0, 0, 1});
  // The reader's set of dtypes is unchanged: the same message as for any I32 tensor.
  CHECK_THROWS_WITH(SafetensorsFile(path), path + ": f: unsupported dtype I32 (supported: I8, U8, F16, BF16, F32)");
  CHECK_THROWS_WITH(w.add_float("big", DType::I32, {1}, {2147483648.0f}), Contains("big") && Contains("I32 range"));
  CHECK_THROWS_WITH(w.add_float("half", DType::I32, {1}, {0.5f}), Contains("half"));
}

TEST_CASE("writer failure throws naming the path and leaves no temporary file") {
  TempDir dir;
  // The target is an existing directory: the temp file is written, the rename fails.
  const std::string target = dir.file("occupied");
  std::filesystem::create_directory(target);
  SafetensorsWriter w;
  w.add_float("x", DType::F32, {1}, {1});
  CHECK_THROWS_WITH(w.write(target), Contains("occupied") && Contains("cannot write"));
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);  // only the directory itself
  CHECK_THROWS_WITH(w.write(dir.file("no/such/dir.safetensors")), Contains("dir.safetensors"));
}

TEST_CASE("writer replaces an existing file atomically") {
  TempDir dir;
  const std::string path = dir.file("same.safetensors");
  SafetensorsWriter a, b;
  a.add_float("x", DType::F32, {1}, {1});
  b.add_float("y", DType::F32, {2}, {2, 3});
  a.write(path);
  b.write(path);
  SafetensorsFile f(path);
  CHECK(f.has("y"));
  CHECK_FALSE(f.has("x"));
}

// ---------------------------------------------------------------------------
// Rejections (file level)

TEST_CASE("reject a file shorter than 8 bytes") {
  TempDir dir;
  const std::string path = dir.file("tiny.safetensors");
  write_bytes(path, {1, 2, 3});
  CHECK_THROWS_AS(SafetensorsFile(path), TraceError);
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("tiny.safetensors") && Contains("8-byte"));
}

TEST_CASE("reject a missing file") {
  TempDir dir;
  CHECK_THROWS_WITH(SafetensorsFile(dir.file("absent.safetensors")),
                    Contains("absent.safetensors") && Contains("cannot open"));
}

TEST_CASE("reject a header length past the end of the file") {
  TempDir dir;
  const std::string path = dir.file("hlen.safetensors");
  std::vector<uint8_t> bytes = attnsim_test::le64(1000);
  bytes.push_back('{');
  bytes.push_back('}');
  write_bytes(path, bytes);
  CHECK_THROWS_WITH(SafetensorsFile(path),
                    Contains("hlen.safetensors") && Contains("shorter than its header says"));
  // A length near 2^64 must not wrap around.
  write_bytes(path, attnsim_test::le64(~uint64_t{0}));
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("hlen.safetensors") && Contains("header length"));
}

TEST_CASE("reject a header that is not JSON") {
  TempDir dir;
  const std::string path = dir.file("nojson.safetensors");
  write_raw_safetensors(path, "{\"x\": [1, 2", {});
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("nojson.safetensors") && Contains("header is not JSON"));
}

TEST_CASE("reject a header that is JSON but not an object") {
  TempDir dir;
  const std::string path = dir.file("arr.safetensors");
  write_raw_safetensors(path, "[1, 2]  ", {});
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("arr.safetensors") && Contains("not a JSON object"));
}

TEST_CASE("reject unsupported dtypes naming the tensor") {
  TempDir dir;
  const std::string path = dir.file("dt.safetensors");
  write_raw_safetensors(path, one_tensor_header("I32", "[2]", "[0,8]"), f32_bytes({1, 2}));
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("dt.safetensors") && Contains("x") && Contains("I32"));
  write_raw_safetensors(path, one_tensor_header("F64", "[1]", "[0,8]"), f32_bytes({1, 2}));
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("dt.safetensors: x: unsupported dtype F64"));
}

TEST_CASE("reject shapes that are not lists of non-negative integers") {
  TempDir dir;
  const std::string path = dir.file("shape.safetensors");
  write_raw_safetensors(path, one_tensor_header("F32", "[-2]", "[0,8]"), f32_bytes({1, 2}));
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("shape.safetensors: x: shape"));
  write_raw_safetensors(path, one_tensor_header("F32", "[2.5]", "[0,8]"), f32_bytes({1, 2}));
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("shape.safetensors: x: shape"));
  write_raw_safetensors(path, "{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", f32_bytes({1, 2}));
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("shape.safetensors: x: missing field shape"));
}

TEST_CASE("reject data offsets with begin after end") {
  TempDir dir;
  const std::string path = dir.file("order.safetensors");
  write_raw_safetensors(path, one_tensor_header("F32", "[0]", "[8,4]"), f32_bytes({1, 2}));
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("order.safetensors: x:") && Contains("begin > end"));
}

TEST_CASE("reject data offsets past the end of the file") {
  TempDir dir;
  const std::string path = dir.file("past.safetensors");
  write_raw_safetensors(path, one_tensor_header("F32", "[3]", "[0,12]"), f32_bytes({1, 2}));
  CHECK_THROWS_WITH(SafetensorsFile(path),
                    Contains("past.safetensors: x:") && Contains("shorter than its header says"));
}

TEST_CASE("reject a size that does not match shape times dtype") {
  TempDir dir;
  const std::string path = dir.file("size.safetensors");
  write_raw_safetensors(path, one_tensor_header("F32", "[3]", "[0,8]"), f32_bytes({1, 2}));
  CHECK_THROWS_WITH(SafetensorsFile(path),
                    Contains("size.safetensors: x:") && Contains("needs 12"));
  // Overflowing element counts are caught, not wrapped.
  write_raw_safetensors(path, one_tensor_header("F32", "[4294967296, 4294967296]", "[0,8]"),
                        f32_bytes({1, 2}));
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("size.safetensors: x:"));
}

TEST_CASE("reject metadata that is not a string map") {
  TempDir dir;
  const std::string path = dir.file("meta.safetensors");
  write_raw_safetensors(path, "{\"__metadata__\":{\"model\":3}}", {});
  CHECK_THROWS_WITH(SafetensorsFile(path), Contains("meta.safetensors") && Contains("model"));
}

TEST_CASE("read_float rejects NaN and Inf naming the tensor and the element") {
  TempDir dir;
  const std::string path = dir.file("nan.safetensors");
  SafetensorsWriter w;
  w.add_float("n32", DType::F32, {2, 2}, {1, 2, 3, std::nanf("")});
  w.add_float("i16", DType::F16, {2}, {std::numeric_limits<float>::infinity(), 1});
  w.add_float("ib16", DType::BF16, {1}, {-std::numeric_limits<float>::infinity()});
  w.write(path);
  SafetensorsFile f(path);  // values are checked when read, not on open
  CHECK_THROWS_WITH(f.read_float("n32"), Contains("nan.safetensors: n32: NaN at index [1, 1]"));
  CHECK_THROWS_WITH(f.read_float("i16"), Contains("nan.safetensors: i16: Inf at index [0]"));
  CHECK_THROWS_WITH(f.read_float("ib16"), Contains("nan.safetensors: ib16: Inf"));
  CHECK_THROWS_WITH(f.info("missing"), Contains("nan.safetensors: missing"));
}
