// Synthetic traces with per-head attention shapes (see docs/traces.md).
//
// Every head is built from two parts that add up in the logits
// q_i . k_j / sqrt(d):
//  - a content part: random vectors (peaked heads aim each query at a few keys' content),
//  - a position part (local and diagonal heads): rotary-style cos/sin features, so that
//    the position logit is A * K(i - j) with K(0) = 1 and K decaying with |i - j|.
// Everything is drawn from our own PRNG (splitmix64 + xoshiro256**, Box-Muller normals),
// so the same options give the same bytes with any standard library.
#include "workloads/synth.h"

#include "core/random.h"

#include "workloads/trace.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <utility>

namespace attnsim {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kMaxTokens = 1000000;
constexpr int kMaxHeads = 4096;
constexpr int kMaxHeadDim = 4096;
constexpr int64_t kMaxTensorElements = int64_t{1} << 28;  // one [H,N,d] tensor: 1 GiB of floats
constexpr int64_t kMaxPredictorDModel = 8192;              // fc1 [D, D]: 256 MiB of floats
constexpr int64_t kMaxPredictorWork = int64_t{1} << 34;    // tokens x D^2 MACs per layer

// ---------------------------------------------------------------------------------------
// Random numbers

Rng stream(uint64_t seed, int layer, int head, uint64_t purpose) { return rng_stream(seed, layer, head, purpose); }

enum Purpose : uint64_t {
  kLayerGains = 1, kShape = 2, kContent = 3, kValues = 4, kHidden = 5, kPredictor = 6,
  kTrees = 7, kLsh = 8, kPerformer = 9
};

// ---------------------------------------------------------------------------------------
// Formatting

// Shortest decimal that reads back as the same double.
std::string format_double(double x) {
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

std::string patterns_text(const std::vector<HeadPattern>& patterns) {
  std::string out;
  for (HeadPattern p : patterns) out += (out.empty() ? "" : ",") + std::string(head_pattern_name(p));
  return out;
}

// ---------------------------------------------------------------------------------------
// Options

std::vector<HeadPattern> effective_patterns(const SynthOptions& o) {
  if (!o.patterns.empty()) return o.patterns;
  return {HeadPattern::Peaked, HeadPattern::Local, HeadPattern::Diagonal, HeadPattern::Uniform};
}

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

void validate(const SynthOptions& o) {
  require(o.layers >= 1, "layers must be at least 1 (got " + std::to_string(o.layers) + ")");
  require(o.heads >= 1 && o.heads <= kMaxHeads,
          "heads must be in 1.." + std::to_string(kMaxHeads) + " (got " + std::to_string(o.heads) + ")");
  require(o.tokens >= 1 && o.tokens <= kMaxTokens, "tokens must be in 1.." +
                                                      std::to_string(kMaxTokens) + " (got " +
                                                      std::to_string(o.tokens) + ")");
  require(o.head_dim >= 1 && o.head_dim <= kMaxHeadDim,
          "head-dim must be in 1.." + std::to_string(kMaxHeadDim) + " (got " +
              std::to_string(o.head_dim) + ")");
  require(o.skim_keep >= 0.0 && o.skim_keep <= 1.0,
          "skim-keep must be in [0, 1] (0: no masks)");
  const int64_t elements = int64_t{o.heads} * o.tokens * o.head_dim;
  require(elements <= kMaxTensorElements,
          "heads x tokens x head-dim = " + std::to_string(elements) + " exceeds the limit of " +
              std::to_string(kMaxTensorElements) + " elements per tensor");
  require(o.dtype == DType::F32 || o.dtype == DType::F16 || o.dtype == DType::BF16 ||
              o.dtype == DType::I8,
          std::string("dtype must be F32, F16, BF16 or I8 (got ") + dtype_name(o.dtype) + ")");
  require(std::isfinite(o.predictor_keep) && o.predictor_keep >= 0 && o.predictor_keep <= 1,
          "predictor-keep must be in [0, 1] (got " + format_double(o.predictor_keep) + ")");
  require(o.tree_depth >= 0 && o.tree_depth <= 20, "trees must be a depth in 1..20 (0: none), got " +
                                                      std::to_string(o.tree_depth));
  require(o.lsh_rounds >= 0 && o.lsh_rounds <= 64, "lsh must be a number of rounds in 1..64 (0: none), got " +
                                                       std::to_string(o.lsh_rounds));
  require(o.performer_features >= 0 && o.performer_features <= 65536 && o.performer_features % 2 == 0,
          "performer must be an even number of features in 2..65536 (0: none), got " +
              std::to_string(o.performer_features));
  if (o.predictor) {
    const int64_t d_model = int64_t{o.heads} * o.head_dim;
    require(d_model >= 2 && d_model <= kMaxPredictorDModel,
            "--predictor needs D = heads x head-dim in 2.." + std::to_string(kMaxPredictorDModel) +
                " (got " + std::to_string(d_model) + ")");
    require(o.tokens * d_model * d_model <= kMaxPredictorWork,
            "--predictor: tokens x D^2 = " + std::to_string(o.tokens * d_model * d_model) +
                " exceeds the limit of " + std::to_string(kMaxPredictorWork) +
                " (the predictor's MACs per layer)");
  }
  require(std::isfinite(o.temperature) && o.temperature > 0,
          "temperature must be a finite number > 0 (got " + format_double(o.temperature) + ")");
  require(std::isfinite(o.entropy_target) && o.entropy_target >= 0 && o.entropy_target < 1,
          "entropy-target must be in (0, 1), or 0 for none (got " +
              format_double(o.entropy_target) + ")");
}

// ---------------------------------------------------------------------------------------
// One head

struct HeadShape {
  int n = 0, d = 0;
  bool causal = false;
};

struct HeadTensors {
  std::vector<float> q, k, v;  // [n, d] row-major each
};

// Layer-wide gains: keys are scaled by key_gain and queries by 1/key_gain (the logits do
// not change, the stored magnitudes do), values by value_gain. Distinct per layer.
struct LayerGains {
  double key_gain = 1, value_gain = 1;
};

LayerGains layer_gains(uint64_t seed, int layer) {
  Rng rng = stream(seed, layer, -1, kLayerGains);
  LayerGains g;
  g.key_gain = rng.uniform(0.7, 1.5);
  g.value_gain = rng.uniform(0.5, 1.2);
  return g;
}

// Number of (cos, sin) pairs given to position features: a quarter of the dimensions.
int position_pairs(int d) { return d >= 4 ? d / 4 : d / 2; }

// Inverse CDF of the half-normal distribution, by bisection on erf (p in (0, 1)).
double half_normal_quantile(double p) {
  double lo = 0, hi = 40;
  for (int it = 0; it < 100; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (std::erf(mid / std::sqrt(2.0)) < p) lo = mid; else hi = mid;
  }
  return 0.5 * (lo + hi);
}

// Rotary-style position part on the last 2F dimensions: q_i gets a*[cos(w_f (i-shift)),
// sin(...)], k_j gets b*[cos(w_f j), sin(w_f j)], so that the logit adds
// (a b / sqrt(d)) * sum_f cos(w_f (i - shift - j)) = amplitude * K(i - shift - j), K(0) = 1.
void add_position_part(const HeadShape& s, const std::vector<double>& freqs, double amplitude,
                       int shift, HeadTensors& t) {
  const int pairs = static_cast<int>(freqs.size());
  if (pairs == 0) return;
  const double ab = amplitude * std::sqrt(static_cast<double>(s.d)) / pairs;
  const double b = 0.8 * std::sqrt(ab);  // keys a little smaller than queries
  const double a = ab / b;
  const int base = s.d - 2 * pairs;
  for (int i = 0; i < s.n; ++i) {
    for (int f = 0; f < pairs; ++f) {
      const double qa = freqs[f] * (i - shift), ka = freqs[f] * i;
      t.q[size_t(i) * s.d + base + 2 * f] += static_cast<float>(a * std::cos(qa));
      t.q[size_t(i) * s.d + base + 2 * f + 1] += static_cast<float>(a * std::sin(qa));
      t.k[size_t(i) * s.d + base + 2 * f] += static_cast<float>(b * std::cos(ka));
      t.k[size_t(i) * s.d + base + 2 * f + 1] += static_cast<float>(b * std::sin(ka));
    }
  }
}

// Random content vectors on dimensions [0, dims): q ~ N(0, sq^2), k ~ N(0, sk^2).
void add_content_part(const HeadShape& s, int dims, double sq, double sk, Rng& rng, HeadTensors& t) {
  for (int i = 0; i < s.n; ++i)
    for (int c = 0; c < dims; ++c) {
      t.q[size_t(i) * s.d + c] += static_cast<float>(sq * rng.normal());
      t.k[size_t(i) * s.d + c] += static_cast<float>(sk * rng.normal());
    }
}

// Content logit noise of standard deviation `logit_sd` from `dims` random dimensions.
void add_content_noise(const HeadShape& s, int dims, double logit_sd, Rng& rng, HeadTensors& t) {
  if (dims == 0) return;
  const double product = logit_sd * std::sqrt(static_cast<double>(s.d) / dims);  // sq * sk
  const double sk = 1.0;
  add_content_part(s, dims, product / sk, sk, rng, t);
}

// Local: Gaussian kernel K(D) ~ exp(-D^2 / (2 W^2)) from stratified half-normal frequencies.
void build_local(const HeadShape& s, int window, Rng& shape_rng, Rng& content_rng, HeadTensors& t) {
  const int pairs = position_pairs(s.d);
  std::vector<double> freqs(pairs);
  for (int f = 0; f < pairs; ++f)
    freqs[f] = half_normal_quantile((f + shape_rng.uniform(0.05, 0.95)) / pairs) / window;
  add_position_part(s, freqs, shape_rng.uniform(6.0, 8.0), 0, t);
  add_content_noise(s, s.d - 2 * pairs, 0.6, content_rng, t);
}

// Diagonal: frequencies spread over (0, pi) make K a near-delta at D = 0 (its value at any
// other integer D is a small sum of cosines with random phases).
void build_diagonal(const HeadShape& s, int shift, Rng& shape_rng, Rng& content_rng, HeadTensors& t) {
  const int pairs = position_pairs(s.d);
  std::vector<double> freqs(pairs);
  for (int f = 0; f < pairs; ++f) freqs[f] = kPi * (f + shape_rng.uniform(0.05, 0.95)) / pairs;
  add_position_part(s, freqs, shape_rng.uniform(8.0, 10.0), shift, t);
  add_content_noise(s, s.d - 2 * pairs, 0.6, content_rng, t);
}

// Peaked: random keys; each query points at 1-3 target keys (half of the time one of a
// few "hub" keys shared by the head, the first being token 0, like an attention sink),
// with logit ~ A_t each, plus a little noise.
void build_peaked(const HeadShape& s, Rng& shape_rng, Rng& content_rng, HeadTensors& t) {
  const int d = s.d;
  const double key_sd = 1.0;
  for (size_t x = 0; x < t.k.size(); ++x) t.k[x] = static_cast<float>(key_sd * content_rng.normal());
  std::vector<int> hubs = {0};
  const int extra_hubs = shape_rng.below(3);
  for (int h = 0; h < extra_hubs; ++h) hubs.push_back(shape_rng.below(s.n));
  std::vector<double> norm2(s.n, 0.0);
  for (int j = 0; j < s.n; ++j)
    for (int c = 0; c < d; ++c) norm2[j] += double(t.k[size_t(j) * d + c]) * t.k[size_t(j) * d + c];

  const double noise_sd = 0.4 / key_sd;  // content logit noise ~0.4
  for (int i = 0; i < s.n; ++i) {
    const int visible = s.causal ? i + 1 : s.n;
    const int targets = 1 + shape_rng.below(3);
    std::vector<double> row(d, 0.0);
    for (int x = 0; x < targets; ++x) {
      int target = shape_rng.below(visible);
      if (shape_rng.uniform() < 0.5) {
        const int hub = hubs[shape_rng.below(static_cast<int>(hubs.size()))];
        if (hub < visible) target = hub;
      }
      if (norm2[target] == 0) continue;
      // q . k_target / sqrt(d) = amplitude.
      const double amplitude = shape_rng.uniform(4.5, 7.5);
      const double w = amplitude * std::sqrt(double(d)) / norm2[target];
      for (int c = 0; c < d; ++c) row[c] += w * t.k[size_t(target) * d + c];
    }
    for (int c = 0; c < d; ++c)
      t.q[size_t(i) * d + c] = static_cast<float>(row[c] + noise_sd * content_rng.normal());
  }
}

// Uniform: small random queries against keys of ordinary size: logits ~ N(0, 0.3^2).
void build_uniform(const HeadShape& s, Rng& content_rng, HeadTensors& t) {
  add_content_part(s, s.d, 0.3 / 1.2, 1.2, content_rng, t);
}

// A bias shared by all keys of the head: real keys have one, and it leaves every row's
// softmax unchanged (it adds the same q_i . mu to all logits of row i).
void add_key_bias(const HeadShape& s, Rng& rng, HeadTensors& t) {
  std::vector<double> mu(s.d);
  for (auto& m : mu) m = 0.5 * rng.normal();
  for (int j = 0; j < s.n; ++j)
    for (int c = 0; c < s.d; ++c) t.k[size_t(j) * s.d + c] += static_cast<float>(mu[c]);
}

// Values: normal, with a per-channel spread (a few channels larger, as in real models).
void build_values(const HeadShape& s, double gain, Rng& rng, HeadTensors& t) {
  std::vector<double> channel(s.d);
  for (auto& c : channel) c = gain * std::exp(0.3 * rng.normal());
  for (int j = 0; j < s.n; ++j)
    for (int c = 0; c < s.d; ++c)
      t.v[size_t(j) * s.d + c] = static_cast<float>(channel[c] * rng.normal());
}

// ---------------------------------------------------------------------------------------
// Entropy target

// Logits q_i . k_j / sqrt(d) for a sample of rows (all rows when small enough), in double.
struct RowLogits {
  std::vector<int> rows;
  std::vector<std::vector<double>> logits;  // per sampled row: its visible keys
};

RowLogits sample_logits(const HeadShape& s, const HeadTensors& t) {
  const int64_t budget = int64_t{1} << 22;  // logits kept in memory
  const int64_t max_rows = std::max<int64_t>(8, budget / s.n);
  RowLogits out;
  if (s.n <= max_rows) {
    for (int i = 0; i < s.n; ++i) out.rows.push_back(i);
  } else {
    for (int64_t r = 0; r < max_rows; ++r) out.rows.push_back(static_cast<int>(r * s.n / max_rows));
  }
  const double inv_sqrt_d = 1.0 / std::sqrt(double(s.d));
  for (int i : out.rows) {
    const int visible = s.causal ? i + 1 : s.n;
    std::vector<double> row(visible);
    for (int j = 0; j < visible; ++j) {
      double dot = 0;
      for (int c = 0; c < s.d; ++c) dot += double(t.q[size_t(i) * s.d + c]) * t.k[size_t(j) * s.d + c];
      row[j] = dot * inv_sqrt_d;
    }
    out.logits.push_back(std::move(row));
  }
  return out;
}

// Entropy in nats of softmax(scale * logits), averaged over the sampled rows.
double mean_row_entropy(const RowLogits& r, double scale) {
  double total = 0;
  for (const auto& row : r.logits) {
    double m = -INFINITY;
    for (double x : row) m = std::max(m, scale * x);
    double z = 0, zx = 0;
    for (double x : row) {
      const double y = scale * x - m;
      const double e = std::exp(y);
      z += e;
      zx += e * y;
    }
    total += std::log(z) - zx / z;
  }
  return total / r.logits.size();
}

// Highest achievable mean row entropy: log of the visible keys, averaged over the rows.
double max_mean_entropy(const RowLogits& r) {
  double total = 0;
  for (const auto& row : r.logits) total += std::log(double(row.size()));
  return total / r.logits.size();
}

// The factor on q that brings the mean row entropy to fraction * its maximum, within
// 0.5 % (relative); entropy falls monotonically as the factor grows.
double scale_for_entropy(const RowLogits& r, double fraction, int layer, int head) {
  const double target = fraction * max_mean_entropy(r);
  const std::string where = "layer " + std::to_string(layer) + " head " + std::to_string(head);
  if (target <= 0)
    throw std::invalid_argument("entropy target unreachable for " + where +
                                " (its rows have a single visible key)");
  const double tolerance = 0.005 * target;
  auto close = [&](double h) { return std::fabs(h - target) <= tolerance; };
  auto unreachable = [&]() {
    return std::invalid_argument("entropy target " + format_double(fraction) +
                                 " unreachable for " + where);
  };
  // Bracket: lo too flat (entropy above target), hi too sharp.
  double lo = 1, hi = 1;
  double h = mean_row_entropy(r, 1.0);
  if (close(h)) return 1.0;
  if (h > target) {
    for (;;) {
      lo = hi;
      hi *= 2;
      if (hi > 1e12) throw unreachable();
      h = mean_row_entropy(r, hi);
      if (close(h)) return hi;
      if (h < target) break;
    }
  } else {
    for (;;) {
      hi = lo;
      lo /= 2;
      if (lo < 1e-12) throw unreachable();
      h = mean_row_entropy(r, lo);
      if (close(h)) return lo;
      if (h > target) break;
    }
  }
  for (int it = 0; it < 200; ++it) {
    const double mid = std::sqrt(lo * hi);
    h = mean_row_entropy(r, mid);
    if (close(h)) return mid;
    (h > target ? lo : hi) = mid;
  }
  throw unreachable();
}

// ---------------------------------------------------------------------------------------

float round_to(DType dtype, float x) {
  if (dtype == DType::F16) return half_to_float(float_to_half(x));
  if (dtype == DType::BF16) return bf16_to_float(float_to_bf16(x));
  return x;
}

struct BuiltHead {
  HeadTensors t;
  double q_scale = 1;  // factor applied to q (1/temperature or the entropy search result)
};

BuiltHead build_head(const SynthOptions& o, int layer, int head, HeadPattern pattern,
                     int occurrence, const LayerGains& gains) {
  HeadShape s{o.tokens, o.head_dim, o.causal};
  BuiltHead out;
  HeadTensors& t = out.t;
  const size_t size = size_t(s.n) * s.d;
  t.q.assign(size, 0.f);
  t.k.assign(size, 0.f);
  t.v.assign(size, 0.f);
  Rng shape_rng = stream(o.seed, layer, head, kShape);
  Rng content_rng = stream(o.seed, layer, head, kContent);
  switch (pattern) {
    case HeadPattern::Peaked: build_peaked(s, shape_rng, content_rng, t); break;
    case HeadPattern::Local: build_local(s, 2 << ((occurrence + layer) % 4), shape_rng, content_rng, t); break;
    // Every other diagonal head looks at the previous token.
    case HeadPattern::Diagonal: build_diagonal(s, (occurrence + layer) % 2, shape_rng, content_rng, t); break;
    case HeadPattern::Uniform: build_uniform(s, content_rng, t); break;
  }
  add_key_bias(s, shape_rng, t);
  Rng value_rng = stream(o.seed, layer, head, kValues);
  build_values(s, gains.value_gain, value_rng, t);

  for (auto& x : t.k) x = round_to(o.dtype, static_cast<float>(x * gains.key_gain));
  for (auto& x : t.q) x = static_cast<float>(x / gains.key_gain);
  if (o.entropy_target > 0) {
    out.q_scale = scale_for_entropy(sample_logits(s, t), o.entropy_target, layer, head);
  } else {
    out.q_scale = 1.0 / o.temperature;
  }
  for (auto& x : t.q) x = static_cast<float>(x * out.q_scale);
  return out;
}

void check_finite_in(DType dtype, const std::vector<float>& x, const std::string& name) {
  const double limit = dtype == DType::F16 ? 65504.0 : 3.0e38;
  for (float v : x)
    if (!(std::fabs(v) <= limit))
      throw std::invalid_argument(name + ": value " + format_double(v) + " does not fit " +
                                  dtype_name(dtype) +
                                  " (temperature too low or entropy target too small?)");
}

void add_layer_tensor(SafetensorsWriter& w, const SynthOptions& o, int layer, const char* which,
                      const std::vector<float>& values) {
  const std::string name = "layers." + std::to_string(layer) + "." + which;
  const std::vector<int64_t> shape = {o.heads, o.tokens, o.head_dim};
  check_finite_in(o.dtype, values, name);
  if (o.dtype != DType::I8) {
    w.add_float(name, o.dtype, shape, values);
    return;
  }
  // One scale per layer and tensor (all heads), SEMANTICS §2 with B = 8.
  const Quantized qz = quantize(values.data(), values.size(), 8);
  std::vector<uint8_t> bytes(qz.values.size());
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<uint8_t>(static_cast<int8_t>(qz.values[i]));
  w.add(name, DType::I8, shape, std::move(bytes));
  w.set_metadata("scale." + std::to_string(layer) + "." + which, format_double(qz.scale));
}

// ---------------------------------------------------------------------------------------
// Transkimmer predictor (SynthOptions::predictor, docs/traces.md)

// Hidden states entering each layer, [N, D] with D = H x d. A residual stream of unit
// normals evolves from layer to layer (each layer keeps sqrt(0.8) of the previous one and
// adds sqrt(0.2) of fresh noise, so the variance stays 1); layer l stores
//   hidden[t][c] = token_gain[t] * (channel_scale[c] * stream[t][c] + channel_mean[c])
// with token_gain = exp(0.25 z) (a spread of token norms), channel_scale = exp(0.3 z) and
// channel_mean = 0.3 z per layer (unequal channels with an offset, as in real models).
class HiddenStates {
 public:
  explicit HiddenStates(const SynthOptions& o)
      : n_(o.tokens), d_(o.heads * o.head_dim), stream_(size_t(n_) * d_, 0.0f) {}

  // Layer `layer`'s hidden states as stored in `dtype` (layers must come in order).
  std::vector<float> next_layer(uint64_t seed, int layer, DType dtype) {
    Rng rng = stream(seed, layer, -1, kHidden);
    const double keep = layer == 0 ? 0.0 : std::sqrt(0.8);
    const double fresh = layer == 0 ? 1.0 : std::sqrt(0.2);
    for (float& x : stream_) x = static_cast<float>(keep * x + fresh * rng.normal());
    std::vector<double> scale(d_), mean(d_), gain(n_);
    for (double& c : scale) c = std::exp(0.3 * rng.normal());
    for (double& c : mean) c = 0.3 * rng.normal();
    for (double& g : gain) g = std::exp(0.25 * rng.normal());
    std::vector<float> hidden(stream_.size());
    for (int t = 0; t < n_; ++t)
      for (int c = 0; c < d_; ++c) {
        const size_t i = size_t(t) * d_ + c;
        hidden[i] = round_to(dtype, static_cast<float>(gain[t] * (scale[c] * stream_[i] + mean[c])));
      }
    return hidden;
  }

 private:
  int n_, d_;
  std::vector<float> stream_;
};

DType hidden_dtype(DType trace_dtype) { return trace_dtype == DType::I8 ? DType::F32 : trace_dtype; }

// Weights of layer l's predictor, built so that logit_keep - logit_skim follows one
// feature of the hidden state: f = r . LN1(h), r a random unit direction of the layer.
//  - LayerNorms: weight 1 + 0.1 z, bias 0.05 z (near the identity, as trained ones are);
//  - fc1: row 0 = 3 r, row 1 = -3 r, the other rows N(0, 1/D) (init-like), bias 0.02 z;
//    so fc1's outputs 0 and 1 are +-3 f plus small terms;
//  - fc2: N(0, 0.02^2) plus +-1/2 so that row 1 (keep) - row 0 (skim) is +1 on input 0 and
//    -1 on input 1: the logit difference is GELU(y0) - GELU(y1) + small terms, and since
//    GELU(a) - GELU(-a) = a this is about y0, increasing with f. The fc2 bias is set
//    afterwards by calibrate_fc2_bias.
skim::PredictorWeights predictor_weights(uint64_t seed, int layer, int d) {
  Rng rng = stream(seed, layer, -1, kPredictor);
  auto normals = [&](size_t count, double mean, double sd) {
    std::vector<float> v(count);
    for (float& x : v) x = static_cast<float>(mean + sd * rng.normal());
    return v;
  };
  skim::PredictorWeights w;
  w.d_model = d;
  w.ln1_w = normals(d, 1.0, 0.1);
  w.ln1_b = normals(d, 0.0, 0.05);
  std::vector<double> r(d);
  double norm2 = 0;
  for (double& x : r) {
    x = rng.normal();
    norm2 += x * x;
  }
  const double inv_norm = norm2 > 0 ? 1.0 / std::sqrt(norm2) : 0.0;
  w.fc1_w = normals(size_t(d) * d, 0.0, 1.0 / std::sqrt(double(d)));
  for (int i = 0; i < d; ++i) {
    w.fc1_w[i] = static_cast<float>(3.0 * r[i] * inv_norm);
    w.fc1_w[size_t(d) + i] = static_cast<float>(-3.0 * r[i] * inv_norm);
  }
  w.fc1_b = normals(d, 0.0, 0.02);
  w.ln2_w = normals(d, 1.0, 0.1);
  w.ln2_b = normals(d, 0.0, 0.05);
  w.fc2_w = normals(2 * size_t(d), 0.0, 0.02);
  w.fc2_w[0] -= 0.5f;                 // skim row, input 0
  w.fc2_w[1] += 0.5f;                 // skim row, input 1
  w.fc2_w[size_t(d)] += 0.5f;         // keep row, input 0
  w.fc2_w[size_t(d) + 1] -= 0.5f;     // keep row, input 1
  w.fc2_b = {0.0f, 0.0f};
  return w;
}

// The predictor's arithmetic, exactly as skim::predictor_logits (arch/skim_math.cpp) does
// it in double, which workloads/ does not link: LayerNorm with biased variance and
// eps = 1e-5, Linear accumulating from the bias, exact-erf GELU.
void predictor_layer_norm(std::vector<double>& x, const std::vector<float>& weight,
                          const std::vector<float>& bias) {
  const size_t d = x.size();
  double mean = 0;
  for (double v : x) mean += v;
  mean /= static_cast<double>(d);
  double var = 0;
  for (double v : x) var += (v - mean) * (v - mean);
  var /= static_cast<double>(d);
  const double inv = 1.0 / std::sqrt(var + 1e-5);
  for (size_t i = 0; i < d; ++i) x[i] = (x[i] - mean) * inv * weight[i] + bias[i];
}

double predictor_linear_row(const std::vector<double>& x, const float* row, float bias) {
  double acc = bias;
  for (size_t i = 0; i < x.size(); ++i) acc += static_cast<double>(row[i]) * x[i];
  return acc;
}

// fc2 outputs (skim, keep) of one token with the fc2 bias `w.fc2_b`.
std::pair<double, double> predictor_logits_of(const float* h, const skim::PredictorWeights& w) {
  const size_t d = static_cast<size_t>(w.d_model);
  std::vector<double> x(h, h + d), y(d);
  predictor_layer_norm(x, w.ln1_w, w.ln1_b);
  for (size_t o = 0; o < d; ++o) y[o] = predictor_linear_row(x, w.fc1_w.data() + o * d, w.fc1_b[o]);
  predictor_layer_norm(y, w.ln2_w, w.ln2_b);
  for (double& v : y) v = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
  return {predictor_linear_row(y, w.fc2_w.data(), w.fc2_b[0]),
          predictor_linear_row(y, w.fc2_w.data() + d, w.fc2_b[1])};
}

// Sets w.fc2_b so that, of the active tokens other than 0, the keep_count with the largest
// logit difference (bias 0) are kept: the threshold lies halfway between the keep_count-th
// and the next difference, and the bias is (-threshold/2, +threshold/2).
void calibrate_fc2_bias(const std::vector<double>& differences, int keep_count,
                        skim::PredictorWeights& w) {
  std::vector<double> sorted = differences;
  std::sort(sorted.rbegin(), sorted.rend());
  const int count = static_cast<int>(sorted.size());
  double threshold = 0;
  if (count > 0) {
    if (keep_count <= 0) threshold = sorted.front() + 1;
    else if (keep_count >= count) threshold = sorted.back() - 1;
    else threshold = 0.5 * (sorted[keep_count - 1] + sorted[keep_count]);
  }
  w.fc2_b = {static_cast<float>(threshold / 2), static_cast<float>(-threshold / 2)};
}

// Writes layer l's hidden states and predictor weights and applies the layer's decisions
// to `active` (cumulative flags over the original tokens; token 0 stays).
void add_predictor_layer(SafetensorsWriter& w, const SynthOptions& o, int layer,
                         HiddenStates& states, std::vector<uint8_t>& active) {
  const int n = o.tokens, d = o.heads * o.head_dim;
  const DType dtype = hidden_dtype(o.dtype);
  const std::vector<float> hidden = states.next_layer(o.seed, layer, dtype);
  skim::PredictorWeights p = predictor_weights(o.seed, layer, d);

  std::vector<double> differences;
  std::vector<int> candidates;  // active tokens other than 0
  for (int t = 1; t < n; ++t) {
    if (!active[t]) continue;
    const auto logits = predictor_logits_of(hidden.data() + size_t(t) * d, p);
    differences.push_back(logits.second - logits.first);
    candidates.push_back(t);
  }
  const int keep_count = static_cast<int>(std::lround(o.predictor_keep * candidates.size()));
  calibrate_fc2_bias(differences, keep_count, p);
  for (int t : candidates) {
    const auto logits = predictor_logits_of(hidden.data() + size_t(t) * d, p);
    active[t] = logits.second > logits.first;
  }

  const std::string prefix = "layers." + std::to_string(layer) + ".";
  check_finite_in(dtype, hidden, prefix + "hidden");
  w.add_float(prefix + "hidden", dtype, {n, d}, hidden);
  const int64_t dd = d;
  const std::pair<const char*, const std::vector<float>*> parts[] = {
      {"ln1.weight", &p.ln1_w}, {"ln1.bias", &p.ln1_b}, {"fc1.weight", &p.fc1_w},
      {"fc1.bias", &p.fc1_b},   {"ln2.weight", &p.ln2_w}, {"ln2.bias", &p.ln2_b},
      {"fc2.weight", &p.fc2_w}, {"fc2.bias", &p.fc2_b}};
  for (const auto& part : parts) {
    const std::string name = std::string(part.first);
    std::vector<int64_t> shape = {dd};
    if (name == "fc1.weight") shape = {dd, dd};
    if (name == "fc2.weight") shape = {2, dd};
    if (name == "fc2.bias") shape = {2};
    w.add_float(prefix + "skim_predictor." + name, DType::F32, shape, *part.second);
  }
}

}  // namespace

HeadPattern parse_head_pattern(const std::string& name) {
  if (name == "peaked") return HeadPattern::Peaked;
  if (name == "local") return HeadPattern::Local;
  if (name == "diagonal") return HeadPattern::Diagonal;
  if (name == "uniform") return HeadPattern::Uniform;
  throw std::invalid_argument("unknown head pattern '" + name +
                              "' (expected peaked, local, diagonal or uniform)");
}

const char* head_pattern_name(HeadPattern p) {
  switch (p) {
    case HeadPattern::Peaked: return "peaked";
    case HeadPattern::Local: return "local";
    case HeadPattern::Diagonal: return "diagonal";
    case HeadPattern::Uniform: return "uniform";
  }
  return "?";
}

// Mechanism tensors (SynthOptions::tree_depth, lsh_rounds, performer_features) of one head.
void split_node(const std::vector<float>& k, int d, int node, int levels, const std::vector<int>& ids, Rng& rng,
                std::vector<float>& w, std::vector<float>& b) {
  if (levels == 0) return;
  for (int t = 0; t < d; ++t) w[size_t(node) * d + t] = static_cast<float>(rng.normal());
  std::vector<double> proj;
  for (int j : ids) {
    double s = 0;
    for (int t = 0; t < d; ++t) s += double(w[size_t(node) * d + t]) * k[size_t(j) * d + t];
    proj.push_back(s);
  }
  double median = 0;
  if (!proj.empty()) {
    std::vector<double> sorted = proj;
    std::sort(sorted.begin(), sorted.end());
    median = (sorted[(sorted.size() - 1) / 2] + sorted[sorted.size() / 2]) / 2;
  }
  b[node] = static_cast<float>(-median);
  std::vector<int> left, right;
  for (size_t x = 0; x < ids.size(); ++x) (proj[x] - median < 0 ? left : right).push_back(ids[x]);
  split_node(k, d, 2 * node + 1, levels - 1, left, rng, w, b);
  split_node(k, d, 2 * node + 2, levels - 1, right, rng, w, b);
}

void add_mechanisms(SafetensorsWriter& w, const SynthOptions& o, int l, int h, const std::vector<float>& k) {
  const int d = o.head_dim;
  const std::string prefix = "layers." + std::to_string(l) + ".";
  const std::string head = "." + std::to_string(h) + ".";
  const auto gaussian = [&](uint64_t purpose, int rows) {
    Rng rng = stream(o.seed, l, h, purpose);
    std::vector<float> x(size_t(rows) * d);
    for (float& v : x) v = static_cast<float>(rng.normal());
    return x;
  };
  if (o.tree_depth > 0) {
    const int nodes = (1 << o.tree_depth) - 1;
    std::vector<float> tw(size_t(nodes) * d), tb(nodes);
    std::vector<int> all(o.tokens);
    for (int j = 0; j < o.tokens; ++j) all[j] = j;
    Rng rng = stream(o.seed, l, h, kTrees);
    split_node(k, d, 0, o.tree_depth, all, rng, tw, tb);
    w.add_float(prefix + "tree" + head + "w", DType::F32, {nodes, d}, tw);
    w.add_float(prefix + "tree" + head + "b", DType::F32, {nodes}, tb);
  }
  if (o.lsh_rounds > 0)
    w.add_float(prefix + "lsh" + head + "proj", DType::F32, {o.lsh_rounds, d}, gaussian(kLsh, o.lsh_rounds));
  if (o.performer_features > 0)
    w.add_float(prefix + "performer" + head + "w", DType::F32, {o.performer_features / 2, d},
                gaussian(kPerformer, o.performer_features / 2));
}

// Cumulative keep masks (SynthOptions::skim_keep): one uniform draw per token, kept at
// layer l while it stays below skim_keep^l.
void add_skim_masks(SafetensorsWriter& w, const SynthOptions& o) {
  Rng rng(o.seed ^ 0x5eedc0deULL);
  std::vector<double> u(o.tokens);
  for (double& x : u) x = rng.uniform();
  for (int l = 0; l < o.layers; ++l) {
    const double threshold = std::pow(o.skim_keep, l);
    std::vector<float> keep(o.tokens);
    for (int t = 0; t < o.tokens; ++t) keep[t] = (t == 0 || u[t] < threshold) ? 1.0f : 0.0f;
    w.add_float("layers." + std::to_string(l) + ".skim_keep", DType::U8, {o.tokens}, keep);
  }
  w.set_metadata("synth.skim_keep", format_double(o.skim_keep));
}

void write_synthetic_trace(const SynthOptions& o, const std::string& path) {
  validate(o);
  const std::vector<HeadPattern> patterns = effective_patterns(o);
  SafetensorsWriter w;
  const size_t per_head = size_t(o.tokens) * o.head_dim;
  const bool predictor = o.predictor;
  std::unique_ptr<HiddenStates> hidden = predictor ? std::make_unique<HiddenStates>(o) : nullptr;
  std::vector<uint8_t> active(predictor ? o.tokens : 0, 1);  // after the predictors so far
  for (int l = 0; l < o.layers; ++l) {
    const LayerGains gains = layer_gains(o.seed, l);
    std::vector<float> q(per_head * o.heads), k(q.size()), v(q.size());
    std::string q_scales;
    for (int h = 0; h < o.heads; ++h) {
      const HeadPattern p = patterns[h % patterns.size()];
      const int occurrence = h / static_cast<int>(patterns.size());
      const BuiltHead b = build_head(o, l, h, p, occurrence, gains);
      std::copy(b.t.q.begin(), b.t.q.end(), q.begin() + h * per_head);
      std::copy(b.t.k.begin(), b.t.k.end(), k.begin() + h * per_head);
      std::copy(b.t.v.begin(), b.t.v.end(), v.begin() + h * per_head);
      q_scales += (h ? "," : "") + format_double(b.q_scale);
      add_mechanisms(w, o, l, h, b.t.k);
    }
    add_layer_tensor(w, o, l, "q", q);
    add_layer_tensor(w, o, l, "k", k);
    add_layer_tensor(w, o, l, "v", v);
    w.set_metadata("synth.q_scale." + std::to_string(l), q_scales);
    if (predictor) add_predictor_layer(w, o, l, *hidden, active);
  }
  if (o.skim_keep > 0.0) add_skim_masks(w, o);
  if (o.predictor) w.set_metadata("synth.predictor_keep", format_double(o.predictor_keep));
  if (o.tree_depth > 0) w.set_metadata("synth.tree_depth", std::to_string(o.tree_depth));
  if (o.lsh_rounds > 0) w.set_metadata("synth.lsh_rounds", std::to_string(o.lsh_rounds));
  if (o.performer_features > 0) w.set_metadata("synth.performer_features", std::to_string(o.performer_features));
  w.set_metadata("model", o.model);
  w.set_metadata("source", "attnsim trace synth");
  w.set_metadata("causal", o.causal ? "true" : "false");
  w.set_metadata("synth.seed", std::to_string(o.seed));
  w.set_metadata("synth.patterns", patterns_text(patterns));
  w.set_metadata("synth.temperature", format_double(o.temperature));
  w.set_metadata("synth.entropy_target", format_double(o.entropy_target));
  w.write(path);
}

}  // namespace attnsim
