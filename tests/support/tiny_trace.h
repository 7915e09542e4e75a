#pragma once
// The hand-made trace of the whole-run tests: one layer, one head (or `heads` copies of
// it), N = M = 4, d = 4. Every
// tensor holds a value of magnitude 127, so the quantization scale is exactly 1 and the
// quantized values are the numbers below. `q_unit` scales the queries (and so scale_q)
// without changing their quantized values.
#include "workloads/safetensors.h"

#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

namespace attnsim::test {

inline std::string write_tiny_trace(bool causal = false, float q_unit = 1.0f, int heads = 1) {
  std::vector<float> q = {127, 0, -3, 5, 2, -127, 1, 0, 10, 20, 30, 40, -5, -6, 7, 8};
  for (float& x : q) x *= q_unit;
  const std::vector<float> k = {1, 2, 3, 127, -4, 5, -6, 7, 8, -9, 10, -11, 0, 0, 0, 1};
  const std::vector<float> v = {127, 1, 2, 3, 4, 5, 6, 7, -8, 9, -10, 11, 12, 13, 14, 15};
  // `heads` > 1: every head is a copy of the first.
  const auto copies = [heads](const std::vector<float>& x) {
    std::vector<float> all;
    for (int h = 0; h < heads; ++h) all.insert(all.end(), x.begin(), x.end());
    return all;
  };
  const int64_t H = heads;
  SafetensorsWriter w;
  w.add_float("layers.0.q", DType::F32, {H, 4, 4}, copies(q));
  w.add_float("layers.0.k", DType::F32, {H, 4, 4}, copies(k));
  w.add_float("layers.0.v", DType::F32, {H, 4, 4}, copies(v));
  w.set_metadata("model", "tiny");
  w.set_metadata("causal", causal ? "true" : "false");
  const auto dir = std::filesystem::temp_directory_path() / ("attnsim_tiny_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / (heads == 1 ? std::string("tiny.safetensors")
                                              : "tiny_h" + std::to_string(heads) + ".safetensors")).string();
  w.write(path);
  return path;
}

}  // namespace attnsim::test
