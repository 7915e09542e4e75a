// Fuzz target "sweep": the sweep file parser (load_sweep) and the expansion into points
// (expand_sweep), as `attnsim sweep F --dry-run` runs them. The input is the sweep file's
// text; it lives in a private directory that also holds base.json (configs/latte.json's
// settings) and tiny.safetensors (a 1-layer trace), so relative names can refer to them.
// Documented errors: SweepError, one line.
//
// Kept out of the fuzzed surface, because they are not the parser: config paths with a '/'
// (they could name any file, /dev/zero included: issue 13 item 4), the traces (each is
// read whole for its SHA-256, so every trace path is replaced by tiny.safetensors), and
// sweeps of more than kMaxPoints points (expanding them is linear in their number).
#include "sim/sweep/points.h"
#include "sim/sweep/spec.h"
#include "tests/fuzz/fuzz_common.h"
#include "workloads/safetensors.h"

#include <nlohmann/json.hpp>

#include <string>

namespace {

const char* const kTarget = "sweep";
constexpr double kMaxPoints = 256;

void prepare_directory() {
  static bool done = false;
  if (done) return;
  done = true;
  attnsim::fuzz::write_temp(
      "base.json",
      std::string(R"({"schema": "attnsim.config/1", "qk_unit": {"type": "bit_serial", "mode": "latte"},)"
                  R"( "comparator": {"gamma": 0.02}, "reuse_buffer": {"entries": 4}})"));
  attnsim::SafetensorsWriter w;
  const std::vector<float> ones(8, 1.0f);
  for (const char* t : {"q", "k", "v"}) w.add_float(std::string("layers.0.") + t, attnsim::DType::F32, {1, 2, 4}, ones);
  w.write(attnsim::fuzz::temp_dir() + "/tiny.safetensors");
}

// True when the input names a config file with a '/' in base or baseline.
bool names_outside_file(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return false;
  for (const char* key : {"base", "baseline"}) {
    const auto it = j.find(key);
    if (it != j.end() && it->is_string() && it->get<std::string>().find('/') != std::string::npos) return true;
  }
  return false;
}

double point_count(const attnsim::SweepSpec& s) {
  double n = static_cast<double>(s.traces.size());
  for (const auto& kv : s.grid) n *= static_cast<double>(kv.second.size());
  if (!s.zip.empty()) n *= static_cast<double>(s.zip.front().second.size());
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  prepare_directory();
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (names_outside_file(text)) return -1;  // not added to the corpus
  const std::string path = attnsim::fuzz::write_temp("sweep.json", text);
  try {
    attnsim::SweepSpec spec = attnsim::load_sweep(path);
    if (point_count(spec) > kMaxPoints) return 0;
    for (std::string& t : spec.trace_paths) t = attnsim::fuzz::temp_dir() + "/tiny.safetensors";
    const std::vector<attnsim::SweepPoint> points = attnsim::expand_sweep(spec);
    (void)attnsim::unique_runnable(points);
    for (const attnsim::SweepPoint& p : points) (void)p.config.dump();
  } catch (const attnsim::SweepError& e) {
    attnsim::fuzz::check_one_line(kTarget, "load_sweep/expand_sweep", e.what());
  } catch (...) {
    attnsim::fuzz::unexpected_exception(kTarget, "load_sweep/expand_sweep");
  }
  return 0;
}
