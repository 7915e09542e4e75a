#pragma once
// A trace: one safetensors file of per-layer attention inputs (SEMANTICS §1). The Trace
// validates the whole header when opened and hands out one layer at a time, quantized
// per SEMANTICS §2, so at most one layer's tensors are in memory.
#include "workloads/safetensors.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace attnsim {

// Symmetric per-tensor quantization (SEMANTICS §2):
// scale = max|x| / (2^(B-1)-1) (1 if max|x| = 0),
// x_q = clamp(round_half_even(x / scale), -(2^(B-1)-1), 2^(B-1)-1).
struct Quantized {
  std::vector<int16_t> values;
  double scale = 1.0;
};
Quantized quantize(const float* x, size_t n, int bits);

struct HeadData {
  // Row-major quantized matrices: q [N x d], k and v [M x d].
  std::vector<int16_t> q, k, v;
  double scale_q = 1.0, scale_k = 1.0, scale_v = 1.0;
  // The trace's own float values (row-major), for quant_error; empty for I8 traces.
  std::vector<float> q_float, k_float, v_float;
};

struct LayerView {
  int index = 0;
  int heads = 0, n = 0, m = 0, d = 0;
  std::vector<HeadData> head;         // [heads]
  std::vector<uint8_t> skim_keep;     // [n] 0/1, empty when the trace has none
};

struct LayerShape {
  int heads = 0, n = 0, m = 0, d = 0;
  DType dtype = DType::F32;
};

class Trace {
 public:
  // Opens and validates the file: layers 0..L-1 without gaps, q/k/v present with rank 3,
  // same dtype (I8/F16/F32/BF16) and H, d within a layer, N = M for self-attention
  // when causal (otherwise N and M may differ: cross-attention), at least one token, I8 scales in the metadata,
  // optional tensors of the right shape and dtype. Throws TraceError.
  explicit Trace(const std::string& path);

  const std::string& path() const;
  int layers() const { return static_cast<int>(shapes_.size()); }
  const LayerShape& shape(int layer) const { return shapes_.at(layer); }
  bool causal() const { return causal_; }
  std::string model() const;  // metadata "model", "" if absent
  const std::map<std::string, std::string>& metadata() const;
  std::string sha256() const;
  const SafetensorsFile& file() const { return *file_; }

  // Loads layer `l` quantized to `bits` (I8 tensors used as they are when bits = 8, with
  // the metadata scales). Throws TraceError naming the tensor on NaN/Inf.
  LayerView layer(int l, int bits) const;

 private:
  std::unique_ptr<SafetensorsFile> file_;
  std::vector<LayerShape> shapes_;
  bool causal_ = false;
};

// Human description for `attnsim trace info`: layers, heads, shapes, dtypes, metadata.
std::string describe_trace(const Trace& trace);

}  // namespace attnsim
