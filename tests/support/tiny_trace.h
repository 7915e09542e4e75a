#pragma once
// The hand-made trace of the whole-run tests: one layer, one head, N = M = 4, d = 4. Every
// tensor holds a value of magnitude 127, so the quantization scale is exactly 1 and the
// quantized values are the numbers below. `q_unit` scales the queries (and so scale_q)
// without changing their quantized values.
#include "workloads/safetensors.h"

#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

namespace attnsim::test {

inline std::string write_tiny_trace(bool causal = false, float q_unit = 1.0f) {
  std::vector<float> q = {127, 0, -3, 5, 2, -127, 1, 0, 10, 20, 30, 40, -5, -6, 7, 8};
  for (float& x : q) x *= q_unit;
  const std::vector<float> k = {1, 2, 3, 127, -4, 5, -6, 7, 8, -9, 10, -11, 0, 0, 0, 1};
  const std::vector<float> v = {127, 1, 2, 3, 4, 5, 6, 7, -8, 9, -10, 11, 12, 13, 14, 15};
  SafetensorsWriter w;
  w.add_float("layers.0.q", DType::F32, {1, 4, 4}, q);
  w.add_float("layers.0.k", DType::F32, {1, 4, 4}, k);
  w.add_float("layers.0.v", DType::F32, {1, 4, 4}, v);
  w.set_metadata("model", "tiny");
  w.set_metadata("causal", causal ? "true" : "false");
  const auto dir = std::filesystem::temp_directory_path() / ("attnsim_tiny_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "tiny.safetensors").string();
  w.write(path);
  return path;
}

}  // namespace attnsim::test
