#pragma once
// A trace: one safetensors file of per-layer attention inputs (SEMANTICS §1). The Trace
// validates the whole header when opened and hands out one layer at a time, quantized
// per SEMANTICS §2, so at most one layer's tensors are in memory.
#include "workloads/safetensors.h"
#include "workloads/skim_types.h"

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
  std::vector<uint8_t> skim_keep;     // [N] 0/1 over the ORIGINAL tokens, empty when the trace has none
  // Per active token its original id (identity for layer()), -1 for a coarse token.
  std::vector<int32_t> original;
};

// A row-major matrix of doubles read from an F32 tensor of the trace.
struct Matrix {
  int rows = 0, cols = 0;
  std::vector<double> values;  // rows x cols
  const double* row(int r) const { return values.data() + static_cast<size_t>(r) * cols; }
};

// Treeformer split hyperplanes of one head (SEMANTICS §5): node n (heap order) sends x
// left iff w[n] . x + b[n] < 0.
struct TreeParams {
  int depth = 0;             // D: 2^D - 1 nodes
  Matrix w;                  // [2^D - 1, d]
  std::vector<double> b;     // [2^D - 1]
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
  // the metadata scales). Throws TraceError naming the tensor on NaN/Inf. Up to `threads`
  // threads load the heads' tensors; the result does not depend on it.
  LayerView layer(int l, int bits, int threads = 1) const;

  // A reduced layer (token skimming, docs/skimming.md): active token i has q, k and v rows
  // = sum over tokens[i].parts of weight x the original row, accumulated in double from
  // the trace's float values (rounded to float: q_float etc. hold the mixed rows), or for
  // I8 traces from the dequantized values; then quantized per SEMANTICS §2 over the
  // reduced tensors. I8 at bits 8 keeps the metadata scales: rows are
  // round_half_even(mix of the raw int8 values), so a fine token keeps its raw values.
  // n = m = tokens.size(); skim_keep stays over the original tokens. With
  // identity_map(N) the result equals layer(l, bits). Needs N = M unless the map is the
  // identity. Throws TraceError (bad map, NaN/Inf) or std::invalid_argument (bits).
  LayerView layer_mixed(int l, int bits, const skim::TokenMap& tokens, int threads = 1) const;

  // Optional layers.{l}.hidden [N, D]: the layer's input hidden states of the original
  // tokens (Transkimmer predictor input).
  bool has_hidden(int l) const;
  int hidden_size(int l) const;  // D of layers.{l}.hidden, 0 when absent
  // Rows original_ids of layers.{l}.hidden as floats, [ids.size()][D] row-major; reads
  // only those rows. Throws TraceError when absent or an id is outside 0..N-1.
  std::vector<float> hidden_rows(int l, const std::vector<int32_t>& original_ids) const;

  // Optional predictor weights layers.{l}.skim_predictor.{ln1,fc1,ln2,fc2}.{weight,bias}
  // (all eight or none, F32). Throws TraceError when absent.
  bool has_predictor(int l) const;
  skim::PredictorWeights predictor(int l) const;

  // Optional mechanism tensors of head h of layer l (SEMANTICS §1), F32 read as doubles.
  // Each throws TraceError naming the tensor when it is absent or holds NaN/Inf.
  bool has_tree(int l, int h) const;          // layers.{l}.tree.{h}.w and .b
  TreeParams tree(int l, int h) const;
  bool has_lsh(int l, int h) const;           // layers.{l}.lsh.{h}.proj [R, d]
  Matrix lsh_directions(int l, int h) const;
  bool has_performer(int l, int h) const;     // layers.{l}.performer.{h}.w [m/2, d]
  Matrix performer(int l, int h) const;

 private:
  std::unique_ptr<SafetensorsFile> file_;
  std::vector<LayerShape> shapes_;
  bool causal_ = false;
};

// Human description for `attnsim trace info`: layers, heads, shapes, dtypes, metadata.
std::string describe_trace(const Trace& trace);

}  // namespace attnsim
