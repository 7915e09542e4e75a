// `attnsim trace dump`: one tensor as the simulator's reader decodes it, for the trace
// exporter's round-trip test. Values that round on the way into F16 and BF16 must come back
// as exactly the decoded float, whatever the dtype.
#include "tests/support/cli.h"
#include "workloads/safetensors.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using attnsim::DType;
using attnsim::test::CliResult;
using attnsim::test::count_lines;
using attnsim::test::run_attnsim;
using nlohmann::json;

namespace {

fs::path scratch() { return attnsim::test::scratch_dir("dump"); }

// Values that round in F16 or BF16 (0.1, 1/3, 1e-5 near the F16 subnormals, 65519 just
// below F16's overflow to Inf), exact ones, and one below half F16's smallest subnormal (2^-24), which rounds to 0.
const std::vector<float> kFloats = {0.1f, -1.0f / 3, 1e-5f, 65519.0f, 0.0f, -2.5f, 2.0e-8f, 1234.5678f};

std::string write_dump_trace() {
  attnsim::SafetensorsWriter w;
  w.add_float("x.f16", DType::F16, {2, 4}, kFloats);
  w.add_float("x.bf16", DType::BF16, {4, 2}, kFloats);
  w.add_float("x.f32", DType::F32, {8}, kFloats);
  w.add_float("x.i8", DType::I8, {1, 3}, {-128, 0, 127});
  w.add_float("x.u8", DType::U8, {3}, {0, 7, 255});
  w.add_float("layers.0.q", DType::F32, {1, 1, 2}, {1, 2});
  w.set_metadata("model", "dump");
  const std::string path = (scratch() / "dump.safetensors").string();
  w.write(path);
  return path;
}

json dump(const std::string& trace, const std::string& tensor) {
  const CliResult r = run_attnsim("trace dump " + trace + " " + tensor);
  INFO(r.out);
  REQUIRE(r.code == 0);
  return json::parse(r.out);
}

// The doubles the reader decodes: float -> dtype -> float, widened.
std::vector<double> decoded(DType dtype) {
  std::vector<double> out;
  for (const float x : kFloats) {
    float f = x;
    if (dtype == DType::F16) f = attnsim::half_to_float(attnsim::float_to_half(x));
    if (dtype == DType::BF16) f = attnsim::bf16_to_float(attnsim::float_to_bf16(x));
    out.push_back(f);
  }
  return out;
}

}  // namespace

TEST_CASE("trace dump prints each dtype's values exactly as the reader decodes them") {
  const std::string trace = write_dump_trace();
  const struct {
    const char* tensor;
    DType dtype;
    std::vector<int64_t> shape;
  } floats[] = {{"x.f16", DType::F16, {2, 4}}, {"x.bf16", DType::BF16, {4, 2}}, {"x.f32", DType::F32, {8}}};
  for (const auto& c : floats) {
    INFO(c.tensor);
    const json j = dump(trace, c.tensor);
    CHECK(j["trace"] == trace);
    CHECK(j["tensor"] == c.tensor);
    CHECK(j["dtype"] == attnsim::dtype_name(c.dtype));
    CHECK(j["shape"].get<std::vector<int64_t>>() == c.shape);
    CHECK(j["values"].get<std::vector<double>>() == decoded(c.dtype));  // exact, not approximate
  }
  // The rounding is real: F16 0.1 is 0.0999755859375, BF16 0.1 is 0.10009765625, F16 65519
  // is 65504, 2e-8 is below 2^-25 and rounds to 0 in F16, and F32 keeps the float.
  CHECK(dump(trace, "x.f16")["values"][0].get<double>() == 0.0999755859375);
  CHECK(dump(trace, "x.bf16")["values"][0].get<double>() == 0.10009765625);
  CHECK(dump(trace, "x.f16")["values"][3].get<double>() == 65504.0);
  CHECK(dump(trace, "x.f16")["values"][6].get<double>() == 0.0);
  CHECK(dump(trace, "x.f32")["values"][0].get<double>() == static_cast<double>(0.1f));
  // Shortest text that reads back to the double: "0.0999755859375", not 17 digits.
  const CliResult text = run_attnsim("trace dump " + trace + " x.f16");
  CHECK(text.out.find("[0.0999755859375,") != std::string::npos);

  const json i8 = dump(trace, "x.i8");
  CHECK(i8["dtype"] == "I8");
  CHECK(i8["values"] == json::array({-128, 0, 127}));
  CHECK(i8["values"][0].is_number_integer());
  const json u8 = dump(trace, "x.u8");
  CHECK(u8["dtype"] == "U8");
  CHECK(u8["shape"] == json::array({3}));
  CHECK(u8["values"] == json::array({0, 7, 255}));
}

TEST_CASE("trace dump --out writes the same JSON to a file") {
  const std::string trace = write_dump_trace();
  const fs::path out = scratch() / "sub" / "x.json";
  const CliResult r = run_attnsim("trace dump " + trace + " x.bf16 --out " + out.string());
  REQUIRE(r.code == 0);
  CHECK(r.out.empty());
  std::ifstream f(out);
  std::stringstream s;
  s << f.rdbuf();
  CHECK(json::parse(s.str()) == dump(trace, "x.bf16"));
}

TEST_CASE("trace dump errors: one line naming the file and the tensor, exit 2 (usage) or 6 (I/O)") {
  const std::string trace = write_dump_trace();
  CliResult r = run_attnsim("trace dump " + trace + " x.f61");
  CHECK(r.code == 2);
  CHECK(r.out == "attnsim: " + trace + ": x.f61: no such tensor (did you mean 'x.f16'?)\n");
  r = run_attnsim("trace dump " + trace + " embeddings");
  CHECK(r.code == 2);
  CHECK(r.out == "attnsim: " + trace + ": embeddings: no such tensor\n");
  r = run_attnsim("trace dump " + trace);
  CHECK(r.code == 2);
  CHECK(count_lines(r.out) == 1);
  r = run_attnsim("trace dump " + (scratch() / "absent.safetensors").string() + " x");
  CHECK(r.code == 6);
  CHECK(count_lines(r.out) == 1);
  CHECK(r.out.find("absent.safetensors") != std::string::npos);
  // An unwritable --out (its parent is a file) leaves nothing.
  r = run_attnsim("trace dump " + trace + " x.u8 --out " + trace + "/x.json");
  CHECK(r.code == 6);
  CHECK(count_lines(r.out) == 1);
  CHECK(r.out.find("--out") != std::string::npos);
  CHECK(run_attnsim("trace dump --help").code == 0);
  CHECK(run_attnsim("trace --help").out.find("dump") != std::string::npos);
}

TEST_CASE("trace dump refuses a tensor of more than 2^26 elements") {
  // A U8 tensor of 2^26 + 1 elements; the file is sparse, so it costs no disk.
  const uint64_t elements = (uint64_t{1} << 26) + 1;
  const std::string header = R"({"big":{"dtype":"U8","shape":[)" + std::to_string(elements) +
                             R"(],"data_offsets":[0,)" + std::to_string(elements) + "]}}";
  const std::string path = (scratch() / "big.safetensors").string();
  {
    std::ofstream f(path, std::ios::binary);
    const uint64_t len = header.size();
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>(len >> (8 * i)));
    f << header;
  }
  fs::resize_file(path, 8 + header.size() + elements);
  const CliResult r = run_attnsim("trace dump " + path + " big");
  CHECK(r.code == 2);
  CHECK(r.out == "attnsim: " + path + ": big: 67108865 elements, more than trace dump prints (2^26)\n");
}
