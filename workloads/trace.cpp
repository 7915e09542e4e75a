#include "workloads/trace.h"

#include "core/parallel.h"

#include <algorithm>
#include <cerrno>
#include <cfenv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>
#include <numeric>
#include <stdexcept>

namespace attnsim {

namespace {

const char* const kKnownLayerTensors =
    "known per-layer tensors: q, k, v, skim_keep, tree.{h}.w, tree.{h}.b, lsh.{h}.proj, "
    "performer.{h}.w, hidden, skim_predictor.{ln1,fc1,ln2,fc2}.{weight,bias}";

// The predictor's eight tensors, all or none per layer (docs/skimming.md).
const char* const kPredictorParts[] = {"ln1.weight", "ln1.bias", "fc1.weight", "fc1.bias",
                                       "ln2.weight", "ln2.bias", "fc2.weight", "fc2.bias"};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw TraceError(path + ": " + what);
}

[[noreturn]] void fail(const std::string& path, const std::string& tensor,
                       const std::string& what) {
  throw TraceError(path + ": " + tensor + ": " + what);
}

// Canonical non-negative decimal ("0", "12"; not "01", "+1", "") that fits an int.
bool parse_index(const std::string& s, int* out) {
  if (s.empty() || s.size() > 9) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    parts.push_back(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string layer_tensor(int l, const std::string& what) {
  return "layers." + std::to_string(l) + "." + what;
}

// A positive finite number written in full (the whole string must parse).
bool parse_positive_scale(const std::string& s, double* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE) return false;
  if (!std::isfinite(v) || !(v > 0)) return false;
  *out = v;
  return true;
}

// One per-layer tensor name taken apart: layers.{layer}.{kind}[.{head}.{part}].
struct LayerTensorName {
  int layer = -1;
  std::string kind;   // q, k, v, skim_keep, hidden, tree, lsh, performer, skim_predictor
  int head = -1;      // for tree / lsh / performer
  std::string part;   // w, b, proj; for skim_predictor e.g. "fc1.weight"
};

// Returns false for names under `layers.` that match nothing we know.
bool parse_layer_tensor_name(const std::string& name, LayerTensorName* out) {
  std::vector<std::string> p = split_dots(name);
  if (p.size() < 3 || p[0] != "layers" || !parse_index(p[1], &out->layer)) return false;
  out->kind = p[2];
  if (p.size() == 3)
    return p[2] == "q" || p[2] == "k" || p[2] == "v" || p[2] == "skim_keep" || p[2] == "hidden";
  if (p[2] == "skim_predictor") {
    if (p.size() != 5) return false;
    out->part = p[3] + "." + p[4];
    for (const char* known : kPredictorParts)
      if (out->part == known) return true;
    return false;
  }
  if (p.size() != 5 || !parse_index(p[3], &out->head)) return false;
  out->part = p[4];
  if (p[2] == "tree") return p[4] == "w" || p[4] == "b";
  if (p[2] == "lsh") return p[4] == "proj";
  if (p[2] == "performer") return p[4] == "w";
  return false;
}

bool is_power_of_two_minus_one(int64_t x) { return x >= 1 && ((x + 1) & x) == 0; }

class TraceValidator {
 public:
  explicit TraceValidator(const SafetensorsFile& f) : f_(f), path_(f.path()) {}

  bool parse_causal() const {
    auto it = f_.metadata().find("causal");
    if (it == f_.metadata().end() || it->second == "false") return false;
    if (it->second == "true") return true;
    fail(path_, "metadata causal = '" + it->second + "': expected \"true\" or \"false\"");
  }

  std::vector<LayerShape> run(bool causal) {
    int max_layer = collect_layer_tensors();
    if (max_layer < 0)
      fail(path_, "no layers (a trace needs at least layers.0.q, layers.0.k, layers.0.v)");
    std::vector<LayerShape> shapes;
    for (int l = 0; l <= max_layer; ++l) shapes.push_back(check_qkv(l, causal));
    for (const auto& opt : optional_) check_optional(opt.first, opt.second, shapes);
    for (int l : predictor_layers_) check_predictor(l);
    return shapes;
  }

 private:
  // Classifies every `layers.*` tensor; returns the largest layer index seen (-1: none).
  int collect_layer_tensors() {
    int max_layer = -1;
    for (const auto& kv : f_.tensors()) {
      const std::string& name = kv.first;
      if (name.compare(0, 7, "layers.") != 0) continue;
      LayerTensorName parsed;
      if (!parse_layer_tensor_name(name, &parsed))
        fail(path_, name, std::string("unknown tensor (") + kKnownLayerTensors + ")");
      max_layer = std::max(max_layer, parsed.layer);
      if (parsed.kind == "skim_predictor")
        predictor_layers_.insert(parsed.layer);
      else if (parsed.kind != "q" && parsed.kind != "k" && parsed.kind != "v")
        optional_.emplace_back(name, parsed);
    }
    return max_layer;
  }

  const TensorInfo& require(int l, const char* which) const {
    const std::string name = layer_tensor(l, which);
    if (!f_.has(name))
      fail(path_, name, "missing (layers must be numbered 0..L-1 without gaps, each with q, k, v)");
    return f_.info(name);
  }

  LayerShape check_qkv(int l, bool causal) const {
    const TensorInfo& q = require(l, "q");
    const TensorInfo& k = require(l, "k");
    const TensorInfo& v = require(l, "v");
    for (const TensorInfo* t : {&q, &k, &v}) {
      if (t->shape.size() != 3)
        fail(path_, t->name, "expected rank 3 [H, tokens, d], got rank " +
                                 std::to_string(t->shape.size()) + " " + shape_text(t->shape));
      if (t->dtype == DType::U8)
        fail(path_, t->name, "dtype U8 not allowed for q/k/v (expected I8, F16, BF16 or F32)");
      for (int64_t dim : t->shape)
        if (dim > INT_MAX) fail(path_, t->name, "dimension too large in " + shape_text(t->shape));
    }
    for (const TensorInfo* t : {&k, &v}) {
      if (t->dtype != q.dtype)
        fail(path_, t->name, std::string("dtype ") + dtype_name(t->dtype) + " differs from " +
                                 q.name + " (" + dtype_name(q.dtype) + ")");
      if (t->shape[0] != q.shape[0])
        fail(path_, t->name, "H = " + std::to_string(t->shape[0]) + " differs from " + q.name +
                                 " (H = " + std::to_string(q.shape[0]) + ")");
      if (t->shape[2] != q.shape[2])
        fail(path_, t->name, "d = " + std::to_string(t->shape[2]) + " differs from " + q.name +
                                 " (d = " + std::to_string(q.shape[2]) + ")");
    }
    if (v.shape[1] != k.shape[1])
      fail(path_, v.name, "M = " + std::to_string(v.shape[1]) + " differs from " + k.name +
                              " (M = " + std::to_string(k.shape[1]) + ")");
    if (q.shape[0] < 1) fail(path_, q.name, "layer has no heads (H = 0)");
    if (q.shape[2] < 1) fail(path_, q.name, "head dimension d = 0");
    if (q.shape[1] < 1) fail(path_, q.name, "layer has no tokens (N = 0)");
    if (k.shape[1] < 1) fail(path_, k.name, "layer has no tokens (M = 0)");
    if (causal && q.shape[1] != k.shape[1])
      fail(path_, k.name, "causal trace needs N = M, got N = " + std::to_string(q.shape[1]) +
                              ", M = " + std::to_string(k.shape[1]));
    if (q.dtype == DType::I8) check_i8_scales(l);

    LayerShape s;
    s.heads = static_cast<int>(q.shape[0]);
    s.n = static_cast<int>(q.shape[1]);
    s.m = static_cast<int>(k.shape[1]);
    s.d = static_cast<int>(q.shape[2]);
    s.dtype = q.dtype;
    return s;
  }

  void check_i8_scales(int l) const {
    for (const char* which : {"q", "k", "v"}) {
      const std::string key = "scale." + std::to_string(l) + "." + which;
      auto it = f_.metadata().find(key);
      double scale = 0;
      if (it == f_.metadata().end())
        fail(path_, layer_tensor(l, which), "I8 tensor needs metadata " + key +
                                                 " (its dequantization scale)");
      if (!parse_positive_scale(it->second, &scale))
        fail(path_, layer_tensor(l, which), "metadata " + key + " = '" + it->second +
                                                 "' is not a positive finite number");
    }
  }

  void expect(const TensorInfo& t, DType dtype, const std::vector<int64_t>& shape,
              const std::string& shape_doc) const {
    if (t.dtype != dtype)
      fail(path_, t.name, std::string("expected dtype ") + dtype_name(dtype) + ", got " +
                              dtype_name(t.dtype));
    if (t.shape != shape)
      fail(path_, t.name, "expected shape " + shape_doc + " = " + shape_text(shape) + ", got " +
                              shape_text(t.shape));
  }

  void check_optional(const std::string& name, const LayerTensorName& p,
                      const std::vector<LayerShape>& shapes) const {
    const TensorInfo& t = f_.info(name);
    const LayerShape& s = shapes.at(p.layer);
    if (p.kind == "skim_keep") {
      expect(t, DType::U8, {s.n}, "[N]");
      return;
    }
    if (p.kind == "hidden") {
      check_hidden(t, s);
      return;
    }
    if (p.head >= s.heads)
      fail(path_, name, "head " + std::to_string(p.head) + " out of range (layer has " +
                            std::to_string(s.heads) + " heads)");
    if (p.kind == "lsh") {
      if (t.shape.size() != 2 || t.shape[0] < 1)
        fail(path_, name, "expected shape [R, d] with R >= 1, got " + shape_text(t.shape));
      expect(t, DType::F32, {t.shape[0], s.d}, "[R, d]");
    } else if (p.kind == "performer") {
      if (t.shape.size() != 2 || t.shape[0] < 1)
        fail(path_, name, "expected shape [m/2, d] with m/2 >= 1, got " + shape_text(t.shape));
      expect(t, DType::F32, {t.shape[0], s.d}, "[m/2, d]");
    } else if (p.kind == "tree") {
      check_tree(p, s);
    }
  }

  // tree.{h}.w [2^D-1, d] and tree.{h}.b [2^D-1], both F32, both or neither.
  void check_tree(const LayerTensorName& p, const LayerShape& s) const {
    const std::string prefix = layer_tensor(p.layer, "tree." + std::to_string(p.head) + ".");
    const std::string w_name = prefix + "w", b_name = prefix + "b";
    if (!f_.has(w_name)) fail(path_, w_name, "missing (" + b_name + " is present; give both or neither)");
    if (!f_.has(b_name)) fail(path_, b_name, "missing (" + w_name + " is present; give both or neither)");
    const TensorInfo& w = f_.info(w_name);
    if (w.shape.size() != 2 || !is_power_of_two_minus_one(w.shape[0]))
      fail(path_, w_name, "expected shape [2^D-1, d] (D >= 1), got " + shape_text(w.shape));
    expect(w, DType::F32, {w.shape[0], s.d}, "[2^D-1, d]");
    expect(f_.info(b_name), DType::F32, {w.shape[0]}, "[2^D-1] (rows of " + w_name + ")");
  }

  // hidden [N, D], D >= 1, F32 / F16 / BF16.
  void check_hidden(const TensorInfo& t, const LayerShape& s) const {
    if (t.shape.size() != 2 || t.shape[1] < 1 || t.shape[1] > INT_MAX)
      fail(path_, t.name, "expected shape [N, D] with D >= 1, got " + shape_text(t.shape));
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
      fail(path_, t.name, std::string("expected dtype F32, F16 or BF16, got ") + dtype_name(t.dtype));
    if (t.shape[0] != s.n)
      fail(path_, t.name, "expected shape [N, D] = [" + std::to_string(s.n) + ", D], got " +
                              shape_text(t.shape));
  }

  // All eight predictor tensors, F32, shapes [D] [D] [D,D] [D] [D] [D] [2,D] [2]; D from
  // ln1.weight, equal to hidden's D when the layer has hidden states.
  void check_predictor(int l) const {
    const std::string prefix = layer_tensor(l, "skim_predictor.");
    std::string present;
    for (const char* part : kPredictorParts)
      if (f_.has(prefix + part)) present = prefix + part;
    for (const char* part : kPredictorParts)
      if (!f_.has(prefix + part))
        fail(path_, prefix + part, "missing (" + present + " is present; the skim predictor "
                                   "needs all eight tensors " + prefix +
                                   "{ln1,fc1,ln2,fc2}.{weight,bias})");
    const TensorInfo& ln1 = f_.info(prefix + "ln1.weight");
    if (ln1.shape.size() != 1 || ln1.shape[0] < 1 || ln1.shape[0] > INT_MAX)
      fail(path_, ln1.name, "expected shape [D] with D >= 1, got " + shape_text(ln1.shape));
    const int64_t d = ln1.shape[0];
    const std::vector<std::vector<int64_t>> shapes = {{d}, {d}, {d, d}, {d}, {d}, {d}, {2, d}, {2}};
    const char* const docs[] = {"[D]", "[D]", "[D, D]", "[D]", "[D]", "[D]", "[2, D]", "[2]"};
    for (size_t i = 0; i < shapes.size(); ++i)
      expect(f_.info(prefix + kPredictorParts[i]), DType::F32, shapes[i],
             std::string(docs[i]) + " (D from " + ln1.name + ")");
    const std::string hidden = layer_tensor(l, "hidden");
    if (f_.has(hidden) && f_.info(hidden).shape[1] != d)
      fail(path_, ln1.name, "D = " + std::to_string(d) + " differs from " + hidden + " (D = " +
                                std::to_string(f_.info(hidden).shape[1]) + ")");
  }

  const SafetensorsFile& f_;
  const std::string& path_;
  std::vector<std::pair<std::string, LayerTensorName>> optional_;
  std::set<int> predictor_layers_;
};

// round_half_even(clamp(r, -qmax, qmax)) equals clamp(round_half_even(r)) because the
// bounds are integers. Clamping first keeps |r| <= 32767, which both roundings need;
// NaN (possible only through the public quantize()) maps to -qmax.
inline double clamp_to(double r, double qmax) {
  r = r >= -qmax ? r : -qmax;
  return r <= qmax ? r : qmax;
}

// Round half to even without relying on the FP rounding mode (slow path).
inline int16_t round_half_even_exact(double r) {
  int32_t t = static_cast<int32_t>(r);  // toward zero
  const double frac = r - t;            // exact, in (-1, 1)
  const int32_t odd = t & 1;
  t += static_cast<int32_t>(frac > 0.5) - static_cast<int32_t>(frac < -0.5) +
       (static_cast<int32_t>(frac == 0.5) & odd) - (static_cast<int32_t>(frac == -0.5) & odd);
  return static_cast<int16_t>(t);
}

// dst[i] = clamp(round_half_even(x[i] / scale)).
template <typename T, typename ToDouble>
void quantize_values(const T* x, size_t n, double scale, double qmax, ToDouble to_double,
                     int16_t* dst) {
  if (std::fegetround() == FE_TONEAREST) {
    // Adding and removing 1.5 * 2^52 rounds |r| < 2^51 to an integer in the current
    // mode, i.e. half to even; unlike a branchy rounding this loop vectorizes.
    const double magic = 6755399441055744.0;
    for (size_t i = 0; i < n; ++i) {
      const double r = clamp_to(to_double(x[i]) / scale, qmax);
      dst[i] = static_cast<int16_t>(static_cast<int32_t>((r + magic) - magic));
    }
  } else {
    for (size_t i = 0; i < n; ++i)
      dst[i] = round_half_even_exact(clamp_to(to_double(x[i]) / scale, qmax));
  }
}

double max_abs_of(const float* x, size_t n) {
  // For finite floats, |x| orders like its bit pattern with the sign cleared.
  uint32_t max_bits = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, 4);
    b &= 0x7fffffff;
    max_bits = b > max_bits ? b : max_bits;
  }
  float m;
  std::memcpy(&m, &max_bits, 4);
  return m;
}

double max_abs_of(const double* x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

double max_abs_of(const int8_t* x, size_t n) {
  int m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(static_cast<int>(x[i])));
  return m;
}

// SEMANTICS §2; to_double gives an element's value (for I8, dequantized), and
// value_scale the factor from raw max|x| to the value's max|x|.
template <typename T, typename ToDouble>
Quantized quantize_impl(const T* x, size_t n, int bits, double value_scale, ToDouble to_double) {
  if (bits < 2 || bits > 16)
    throw std::invalid_argument("quantize: bits must be in 2..16, got " + std::to_string(bits));
  const double qmax = static_cast<double>((1 << (bits - 1)) - 1);
  const double max_abs = max_abs_of(x, n) * value_scale;
  Quantized out;
  out.scale = max_abs > 0 ? max_abs / qmax : 1.0;
  out.values.resize(n);
  quantize_values(x, n, out.scale, qmax, to_double, out.values.data());
  return out;
}

double metadata_scale(const SafetensorsFile& f, int l, const char* which) {
  double s = 1;
  parse_positive_scale(f.metadata().at("scale." + std::to_string(l) + "." + which), &s);
  return s;  // validated when the trace was opened
}

// Row i of the result = sum over map[i].parts of weight x row id of `value` (value(e)
// gives element e of the source [rows x d] as a double), accumulated in double. The
// accumulator starts from the first product, so a weight-1 fine token reproduces its
// row bit for bit (-0.0 included).
template <typename Value>
std::vector<double> mix_rows(const skim::TokenMap& map, size_t d, Value value) {
  std::vector<double> out(map.size() * d);
  for (size_t i = 0; i < map.size(); ++i) {
    double* dst = out.data() + i * d;
    const auto& parts = map[i].parts;
    for (size_t t = 0; t < d; ++t) {
      double acc = parts[0].second * value(static_cast<size_t>(parts[0].first) * d + t);
      for (size_t p = 1; p < parts.size(); ++p)
        acc += parts[p].second * value(static_cast<size_t>(parts[p].first) * d + t);
      dst[t] = acc;
    }
  }
  return out;
}

// Where one tensor (q, k or v) of a head goes: its values, their scale, its float copy.
struct TensorSlots {
  std::vector<int16_t>* values;
  double* scale;
  std::vector<float>* floats;
};

TensorSlots tensor_slots(HeadData& h, const char* which) {
  if (*which == 'q') return {&h.q, &h.scale_q, &h.q_float};
  if (*which == 'k') return {&h.k, &h.scale_k, &h.k_float};
  return {&h.v, &h.scale_v, &h.v_float};
}

// Fills the tensor `which` (q, k or v) of head h from [H, rows, d], quantized over the
// whole head (SEMANTICS §2). Without a `map` the rows are taken as they are; with
// one, row i is the mix of the rows map[i] names (token skimming), computed in double.
void load_tensor(const SafetensorsFile& f, int l, const char* which, int bits,
                 const LayerShape& s, const skim::TokenMap* map, int h, HeadData& head) {
  const TensorInfo& t = f.info(layer_tensor(l, which));
  const size_t d = static_cast<size_t>(s.d);
  const size_t per_head = static_cast<size_t>(t.shape[1]) * d;
  const size_t out_size = map ? map->size() * d : per_head;
  const TensorSlots dst = tensor_slots(head, which);

  if (t.dtype == DType::I8) {
    const int8_t* src = reinterpret_cast<const int8_t*>(f.raw(t)) + h * per_head;
    const double meta_scale = metadata_scale(f, l, which);
    if (bits == 8) {
      // Used as they are (SEMANTICS §2), -128 included: it is a valid 8-bit value. Mixed
      // rows are mixed in the raw integer domain (= dequantized / meta_scale) and rounded
      // half to even; the int8 range bounds a convex mix, and a fine token keeps its raw
      // value. Either way the metadata scale is kept.
      if (!map) {
        dst.values->assign(src, src + per_head);
      } else {
        const std::vector<double> mixed =
            mix_rows(*map, d, [src](size_t e) { return static_cast<double>(src[e]); });
        dst.values->resize(out_size);
        for (size_t e = 0; e < out_size; ++e)
          (*dst.values)[e] = round_half_even_exact(std::min(127.0, std::max(-128.0, mixed[e])));
      }
      *dst.scale = meta_scale;
    } else {
      const auto dequantized = [src, meta_scale](size_t e) { return src[e] * meta_scale; };
      Quantized qz =
          map ? quantize_impl(mix_rows(*map, d, dequantized).data(), out_size, bits, 1.0,
                              [](double v) { return v; })
              : quantize_impl(src, per_head, bits, meta_scale,
                              [meta_scale](int8_t v) { return v * meta_scale; });
      *dst.values = std::move(qz.values);
      *dst.scale = qz.scale;
    }
    f.release_pages(t, h * per_head, per_head);
    return;
  }

  // Float traces: the head read (this rejects NaN / Inf) straight into its
  // q_float/k_float/v_float, or mixed and rounded to float there; then quantized from it.
  std::vector<float>& floats = *dst.floats;
  if (!map) {
    floats.resize(per_head);
    f.read_float_into(t, h * per_head, per_head, floats.data());
  } else {
    std::vector<float> source(per_head);
    f.read_float_into(t, h * per_head, per_head, source.data());
    const std::vector<double> mixed =
        mix_rows(*map, d, [&source](size_t e) { return static_cast<double>(source[e]); });
    floats.assign(mixed.begin(), mixed.end());
  }
  f.release_pages(t, h * per_head, per_head);  // read once: the run keeps its own copy
  Quantized qz = quantize(floats.data(), out_size, bits);
  *dst.values = std::move(qz.values);
  *dst.scale = qz.scale;
}

// q, k and v of every head, one (tensor, head) pair per task on up to `threads` threads;
// the query rows mixed by `queries`, the key and value rows by `keys` (both null: as they
// are). Each task fills its own head's tensor, so the result does not depend on
// `threads`; an error is the one the serial loop (q, k, v; heads in order) meets first.
void load_tensors(const SafetensorsFile& f, int l, int bits, const LayerShape& s, const skim::TokenMap* queries,
                  const skim::TokenMap* keys, int threads, std::vector<HeadData>& heads) {
  static const char* const kWhich[3] = {"q", "k", "v"};
  parallel_for(3 * s.heads, threads, [&](int task) {
    const int which = task / s.heads, h = task % s.heads;
    load_tensor(f, l, kWhich[which], bits, s, which == 0 ? queries : keys, h, heads[h]);
  });
}

}  // namespace

Quantized quantize(const float* x, size_t n, int bits) {
  return quantize_impl(x, n, bits, 1.0, [](float v) { return static_cast<double>(v); });
}

Trace::Trace(const std::string& path) : file_(new SafetensorsFile(path)) {
  TraceValidator validator(*file_);
  causal_ = validator.parse_causal();
  shapes_ = validator.run(causal_);
}

const std::string& Trace::path() const { return file_->path(); }

std::string Trace::model() const {
  auto it = file_->metadata().find("model");
  return it == file_->metadata().end() ? std::string() : it->second;
}

const std::map<std::string, std::string>& Trace::metadata() const { return file_->metadata(); }

std::string Trace::sha256() const { return file_->sha256(); }

namespace {

void check_layer_args(const Trace& trace, int l, int bits) {
  if (l < 0 || l >= trace.layers())
    fail(trace.path(), "layer " + std::to_string(l) + " out of range (the trace has " +
                           std::to_string(trace.layers()) + " layers)");
  if (bits < 2 || bits > 16)
    throw std::invalid_argument("quantization bits must be in 2..16, got " + std::to_string(bits));
}

LayerView empty_view(int l, const LayerShape& s) {
  LayerView view;
  view.index = l;
  view.heads = s.heads;
  view.n = s.n;
  view.m = s.m;
  view.d = s.d;
  view.head.resize(s.heads);
  return view;
}

// skim_keep [N] of layer l (0/1 checked), empty when absent.
std::vector<uint8_t> load_skim_keep(const SafetensorsFile& f, int l, int n) {
  const std::string keep = layer_tensor(l, "skim_keep");
  if (!f.has(keep)) return {};
  const uint8_t* raw = f.raw(f.info(keep));
  for (int i = 0; i < n; ++i)
    if (raw[i] > 1)
      fail(f.path(), keep, "value " + std::to_string(raw[i]) + " at index " + std::to_string(i) +
                               " (expected 0 or 1)");
  return std::vector<uint8_t>(raw, raw + n);
}

// Every token has at least one part, ids in 0..n-1, finite weights.
void check_token_map(const std::string& path, int l, const skim::TokenMap& tokens, int n) {
  const std::string q = layer_tensor(l, "q");
  if (tokens.empty()) fail(path, q, "token map is empty (a layer needs at least one token)");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].parts.empty()) fail(path, q, "token map entry " + std::to_string(i) + " has no parts");
    for (const auto& part : tokens[i].parts) {
      if (part.first < 0 || part.first >= n)
        fail(path, q, "token map entry " + std::to_string(i) + ": original id " +
                          std::to_string(part.first) + " outside 0.." + std::to_string(n - 1));
      if (!std::isfinite(part.second))
        fail(path, q, "token map entry " + std::to_string(i) + ": weight is not finite");
    }
  }
}

}  // namespace

LayerView Trace::layer(int l, int bits, int threads) const {
  check_layer_args(*this, l, bits);
  const LayerShape& s = shapes_[l];
  LayerView view = empty_view(l, s);
  load_tensors(*file_, l, bits, s, nullptr, nullptr, threads, view.head);
  view.skim_keep = load_skim_keep(*file_, l, s.n);
  view.original.resize(s.n);
  std::iota(view.original.begin(), view.original.end(), 0);
  return view;
}

LayerView Trace::layer_mixed(int l, int bits, const skim::TokenMap& tokens, int threads) const {
  check_layer_args(*this, l, bits);
  const LayerShape& s = shapes_[l];
  check_token_map(path(), l, tokens, s.n);
  // Keys are the same tokens as queries (self-attention); a cross-attention layer can
  // only take the identity (its M keys stay as they are).
  const bool identity = skim::is_identity(tokens, s.n);
  if (s.n != s.m && !identity)
    fail(path(), layer_tensor(l, "k"), "token skimming needs self-attention (N = M), got N = " +
                                           std::to_string(s.n) + ", M = " + std::to_string(s.m));
  const skim::TokenMap key_map = s.n == s.m ? tokens : skim::identity_map(s.m);
  LayerView view = empty_view(l, s);
  view.n = static_cast<int>(tokens.size());
  view.m = static_cast<int>(key_map.size());
  load_tensors(*file_, l, bits, s, &tokens, &key_map, threads, view.head);
  view.skim_keep = load_skim_keep(*file_, l, s.n);
  view.original.reserve(tokens.size());
  for (const auto& t : tokens) view.original.push_back(t.original);
  return view;
}

bool Trace::has_hidden(int l) const { return file_->has(layer_tensor(l, "hidden")); }

int Trace::hidden_size(int l) const {
  const std::string name = layer_tensor(l, "hidden");
  return file_->has(name) ? static_cast<int>(file_->info(name).shape[1]) : 0;
}

std::vector<float> Trace::hidden_rows(int l, const std::vector<int32_t>& original_ids) const {
  const std::string name = layer_tensor(l, "hidden");
  if (!file_->has(name))
    fail(path(), name, "missing (skim_controller.source = \"predictor\" needs the layer's hidden states)");
  const TensorInfo& t = file_->info(name);
  const int64_t n = t.shape[0];
  const size_t d = static_cast<size_t>(t.shape[1]);
  std::vector<float> rows(original_ids.size() * d);
  for (size_t i = 0; i < original_ids.size(); ++i) {
    const int32_t id = original_ids[i];
    if (id < 0 || id >= n)
      fail(path(), name, "row " + std::to_string(id) + " out of range (N = " + std::to_string(n) + ")");
    file_->read_float_into(t, static_cast<uint64_t>(id) * d, d, rows.data() + i * d);
  }
  return rows;
}

bool Trace::has_predictor(int l) const {
  return file_->has(layer_tensor(l, "skim_predictor.ln1.weight"));  // all eight or none
}

skim::PredictorWeights Trace::predictor(int l) const {
  const std::string prefix = layer_tensor(l, "skim_predictor.");
  if (!has_predictor(l))
    fail(path(), prefix + "ln1.weight",
         "missing (skim_controller.source = \"predictor\" needs the predictor weights " + prefix +
             "{ln1,fc1,ln2,fc2}.{weight,bias})");
  skim::PredictorWeights w;
  w.d_model = static_cast<int>(file_->info(prefix + "ln1.weight").shape[0]);
  std::vector<float>* slots[] = {&w.ln1_w, &w.ln1_b, &w.fc1_w, &w.fc1_b,
                                 &w.ln2_w, &w.ln2_b, &w.fc2_w, &w.fc2_b};
  for (size_t i = 0; i < 8; ++i) *slots[i] = file_->read_float(prefix + kPredictorParts[i]);
  return w;
}

namespace {

std::string head_tensor(int l, const char* kind, int h, const char* part) {
  return layer_tensor(l, std::string(kind) + "." + std::to_string(h) + "." + part);
}

// A rank-2 F32 tensor (validated when the trace was opened) as doubles; NaN/Inf rejected.
Matrix read_matrix(const SafetensorsFile& f, const std::string& name) {
  if (!f.has(name)) fail(f.path(), name, "missing");
  const TensorInfo& t = f.info(name);
  Matrix m;
  m.rows = static_cast<int>(t.shape[0]);
  m.cols = t.shape.size() > 1 ? static_cast<int>(t.shape[1]) : 1;
  std::vector<float> floats(static_cast<size_t>(m.rows) * m.cols);
  f.read_float_into(t, 0, floats.size(), floats.data());
  m.values.assign(floats.begin(), floats.end());
  return m;
}

}  // namespace

bool Trace::has_tree(int l, int h) const { return file_->has(head_tensor(l, "tree", h, "w")); }

TreeParams Trace::tree(int l, int h) const {
  TreeParams t;
  t.w = read_matrix(*file_, head_tensor(l, "tree", h, "w"));
  t.b = read_matrix(*file_, head_tensor(l, "tree", h, "b")).values;
  int depth = 0;
  while ((1 << depth) - 1 < t.w.rows) ++depth;
  t.depth = depth;  // rows = 2^D - 1, checked when the trace was opened
  return t;
}

bool Trace::has_lsh(int l, int h) const { return file_->has(head_tensor(l, "lsh", h, "proj")); }
Matrix Trace::lsh_directions(int l, int h) const { return read_matrix(*file_, head_tensor(l, "lsh", h, "proj")); }

bool Trace::has_performer(int l, int h) const { return file_->has(head_tensor(l, "performer", h, "w")); }
Matrix Trace::performer(int l, int h) const { return read_matrix(*file_, head_tensor(l, "performer", h, "w")); }

std::string describe_trace(const Trace& trace) {
  std::ostringstream out;
  const SafetensorsFile& f = trace.file();
  out << "trace:   " << trace.path() << "\n";
  out << "sha256:  " << trace.sha256() << "\n";
  out << "model:   " << (trace.model().empty() ? "(none)" : trace.model()) << "\n";
  out << "causal:  " << (trace.causal() ? "true" : "false") << "\n";
  out << "layers:  " << trace.layers() << "\n";

  // Optional per-layer tensors, grouped by layer and kind ("tree (heads 0, 1)").
  std::vector<std::map<std::string, std::set<int>>> extras(trace.layers());
  std::vector<std::string> others;
  for (const auto& kv : f.tensors()) {
    LayerTensorName p;
    if (!parse_layer_tensor_name(kv.first, &p)) {
      others.push_back(kv.first + " " + dtype_name(kv.second.dtype) + " " +
                       shape_text(kv.second.shape));
      continue;
    }
    if (p.kind == "q" || p.kind == "k" || p.kind == "v") continue;
    extras[p.layer][p.kind].insert(p.head);
  }
  for (int l = 0; l < trace.layers(); ++l) {
    const LayerShape& s = trace.shape(l);
    out << "  layer " << l << ": heads " << s.heads << ", N " << s.n << ", M " << s.m << ", d "
        << s.d << ", " << dtype_name(s.dtype);
    for (const auto& kind : extras[l]) {
      out << ", " << kind.first;
      std::vector<int> heads(kind.second.begin(), kind.second.end());
      if (!heads.empty() && heads.front() >= 0) {
        out << " (heads";
        for (size_t i = 0; i < heads.size(); ++i) out << (i ? ", " : " ") << heads[i];
        out << ")";
      }
    }
    out << "\n";
  }
  out << "other tensors:" << (others.empty() ? " (none)" : "") << "\n";
  for (const auto& o : others) out << "  " << o << "\n";
  out << "metadata:" << (trace.metadata().empty() ? " (none)" : "") << "\n";
  for (const auto& kv : trace.metadata()) out << "  " << kv.first << " = " << kv.second << "\n";
  return out.str();
}

}  // namespace attnsim
