// Fuzz target "exported_trace": traces shaped like scripts/export_trace.py's (the PyTorch
// exporter) through what `attnsim run` does with a trace before and while it simulates:
// the reader's checks, the run plan of each preset config (plan_run: the config against
// the trace's shapes, metadata and mechanism tensors) and every layer as the layer planner
// loads it (quantized, skimmed or pooled, per-head margins, trees, LSH directions,
// Performer matrices, predictor weights and hidden rows). The SystemC simulation itself is
// not run (one per process); its inputs are all built.
//
// The input is the safetensors file. Under libFuzzer a custom mutator keeps the inputs
// exporter-shaped: it edits the header (shapes, dtypes, offsets, tensor names, the
// exporter's metadata) and the tensors' values, and re-serializes the file; the seeds
// (tests/fuzz/corpus/exported_trace) are the exporter's own outputs on tiny models.
// Documented errors (run_simulation's contract): TraceError, starting with the trace's
// path, or ConfigError; one line either way.
#include "sim/config.h"
#include "sim/layer_plan.h"
#include "sim/metrics.h"
#include "tests/fuzz/fuzz_common.h"
#include "workloads/safetensors.h"
#include "workloads/trace.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

const char* const kTarget = "exported_trace";

// The presets whose plans differ in what they take from a trace.
const std::vector<attnsim::Config>& configs() {
  static const std::vector<attnsim::Config> all = [] {
    std::vector<attnsim::Config> c;
    for (const char* name : {"dense-baseline", "latte", "leopard", "treeformer", "treeformer-latte", "scatterbrain",
                             "transkimmer", "fca"})
      c.push_back(attnsim::load_config(std::string(ATTNSIM_SOURCE_DIR) + "/configs/" + name + ".json"));
    c.push_back(attnsim::load_config(std::string(ATTNSIM_SOURCE_DIR) + "/configs/transkimmer.json",
                                     {"skim_controller.source=predictor"}));
    c.push_back(attnsim::load_config(std::string(ATTNSIM_SOURCE_DIR) + "/configs/latte.json",
                                     {"qk_unit.bits=6", "qk_unit.query_block=2"}));
    return c;
  }();
  return all;
}

void check(const std::exception& e, const std::string& path, bool trace_error, const char* entry_point) {
  const std::string m = e.what();
  attnsim::fuzz::check_one_line(kTarget, entry_point, m);
  if (trace_error && m.rfind(path + ": ", 0) != 0)
    attnsim::fuzz::contract_violation(kTarget, std::string(entry_point) + ": TraceError not naming the file: " + m);
}

void run_checks(const attnsim::Config& c, const attnsim::Trace& trace) {
  const std::string& path = trace.path();
  try {
    const attnsim::RunPlan plan = attnsim::plan_run(c, trace);
    attnsim::Metrics metrics(trace.layers(), c.quality.enabled, c.candidates.source != "all");
    attnsim::LayerPlanner planner(c, trace, plan, metrics);
    for (int l = 0; l < trace.layers(); ++l) {
      (void)planner.begin_layer(l);
      (void)planner.end_layer(l);
    }
  } catch (const attnsim::TraceError& e) {
    check(e, path, true, "plan_run/LayerPlanner");
  } catch (const attnsim::ConfigError& e) {
    check(e, path, false, "plan_run/LayerPlanner");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<attnsim::Config>& presets = configs();
  const std::string path = attnsim::fuzz::write_temp("exported.safetensors", data, size);
  try {
    try {
      const attnsim::Trace trace(path);
      (void)attnsim::describe_trace(trace);
      for (const attnsim::Config& c : presets) run_checks(c, trace);
    } catch (const attnsim::TraceError& e) {
      check(e, path, true, "Trace");
    }
  } catch (...) {
    attnsim::fuzz::unexpected_exception(kTarget, "the run's trace path");
  }
  return 0;
}

#ifdef ATTNSIM_LIBFUZZER
// ---- the custom mutator (libFuzzer builds only) ----------------------------------------

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using ojson = nlohmann::ordered_json;

struct File {
  ojson header;
  std::string data;  // the data section
};

bool parse(const uint8_t* d, size_t n, File& f) {
  if (n < 8) return false;
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | d[i];
  if (len > n - 8) return false;
  f.header = ojson::parse(d + 8, d + 8 + len, nullptr, false);
  if (!f.header.is_object()) return false;
  f.data.assign(reinterpret_cast<const char*>(d + 8 + len), n - 8 - len);
  return true;
}

std::string serialize(const File& f) {
  std::string h = f.header.dump(-1, ' ', false, ojson::error_handler_t::replace);
  h.append((8 - h.size() % 8) % 8, ' ');  // as the exporter pads
  std::string out(8, '\0');
  uint64_t len = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  return out + h + f.data;
}

std::vector<std::string> tensor_names(const File& f) {
  std::vector<std::string> names;
  for (auto it = f.header.begin(); it != f.header.end(); ++it)
    if (it.key() != "__metadata__") names.push_back(it.key());
  return names;
}

std::string dtype_of(const ojson& e) {
  const auto it = e.find("dtype");
  return it != e.end() && it->is_string() ? it->get<std::string>() : std::string("F32");
}

size_t dtype_bytes(const std::string& dt) {
  if (dt == "F32" || dt == "I32") return 4;
  if (dt == "F16" || dt == "BF16") return 2;
  if (dt == "F64" || dt == "I64") return 8;
  return 1;
}

template <class Rng>
std::string pick(Rng& rng, const std::vector<std::string>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}

// A tensor's values: special floats written over random elements, or libFuzzer's own
// byte mutation of its bytes (size kept).
template <class Rng>
void mutate_values(File& f, const std::string& name, Rng& rng) {
  const ojson& e = f.header[name];
  if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2) return;
  const auto& o = e["data_offsets"];
  if (!o[0].is_number_unsigned() || !o[1].is_number_unsigned()) return;
  const uint64_t b = o[0].get<uint64_t>(), en = o[1].get<uint64_t>();
  if (b >= en || en > f.data.size()) return;
  const size_t w = dtype_bytes(dtype_of(e));
  if (rng() % 2 == 0 || (en - b) < w) {
    std::string bytes = f.data.substr(b, en - b);
    const size_t n = LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(bytes.data()), bytes.size(), bytes.size());
    bytes.resize(en - b, '\0');
    (void)n;
    f.data.replace(b, en - b, bytes);
    return;
  }
  static const uint32_t f32[] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x80000000u, 0x00000001u,
                                 0x7f7fffffu, 0x3f800000u, 0xbf800000u, 0x4b800000u};
  static const uint16_t f16[] = {0x7e00, 0x7c00, 0xfc00, 0x8000, 0x0001, 0x7bff, 0x3c00, 0x7f80, 0xff80, 0x7fc0};
  const uint64_t count = (en - b) / w, k = std::uniform_int_distribution<uint64_t>(0, count - 1)(rng);
  char* p = f.data.data() + b + k * w;
  if (w == 4) {
    const uint32_t v = f32[rng() % (sizeof f32 / sizeof f32[0])];
    std::memcpy(p, &v, 4);
  } else if (w == 2) {
    const uint16_t v = f16[rng() % (sizeof f16 / sizeof f16[0])];
    std::memcpy(p, &v, 2);
  } else {
    static const uint8_t i8[] = {0x80, 0x7f, 0x00, 0xff, 0x81};
    *p = static_cast<char>(i8[rng() % sizeof i8]);
  }
}

template <class Rng>
void mutate_metadata(File& f, Rng& rng) {
  ojson& meta = f.header["__metadata__"];
  if (!meta.is_object()) meta = ojson::object();
  std::vector<std::string> keys = {"causal", "model", "source", "dtype", "torch", "scale.0.q", "scale.0.k",
                                   "scale.0.v", "scale.1.q", "scale.1.k", "scale.1.v", "layer.0.module", "d_model", "d_ff"};
  for (auto it = meta.begin(); it != meta.end(); ++it) keys.push_back(it.key());
  const std::string key = pick(rng, keys);
  switch (rng() % 4) {
    case 0:
      meta[key] = pick(rng, {"", "true", "false", "True", "1", "0", "-1", "0.0123", "1e-300", "1e309", "nan", "inf",
                             "-0", "65", "4294967296", "f16", "i8", "x\ny"});
      break;
    case 1:
      meta.erase(key);
      break;
    case 2: {  // libFuzzer's bytes; invalid UTF-8 becomes U+FFFD when written
      std::string v = meta.contains(key) && meta[key].is_string() ? meta[key].get<std::string>() : std::string("0.5");
      v.resize(v.size() + 8);
      v.resize(LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(v.data()), v.size() - 8, v.size()));
      meta[key] = v;
      break;
    }
    default:  // a value of the wrong JSON type
      meta[key] = rng() % 2 ? ojson(1.5) : ojson::array({"x"});
  }
}

template <class Rng>
void mutate_entry(File& f, const std::string& name, Rng& rng) {
  ojson& e = f.header[name];
  if (!e.is_object()) {
    e = ojson::object();
    return;
  }
  switch (rng() % 5) {
    case 0: {  // one dimension; when it shrinks, the end offset follows (valid, smaller)
      if (!e.contains("shape") || !e["shape"].is_array() || e["shape"].empty()) return;
      ojson& shape = e["shape"];
      const size_t i = rng() % shape.size();
      if (!shape[i].is_number_unsigned()) return;
      const uint64_t old = shape[i].get<uint64_t>();
      static const uint64_t odd[] = {0, 1, 2, 3, 65, 1ull << 31, 1ull << 32, (1ull << 63) - 1};
      const uint64_t v = rng() % 2 ? (old > 0 ? old - 1 : 0) : (rng() % 2 ? old + 1 : odd[rng() % 8]);
      shape[i] = v;
      if (v < old && e.contains("data_offsets") && e["data_offsets"].is_array() && e["data_offsets"].size() == 2 &&
          e["data_offsets"][0].is_number_unsigned()) {
        uint64_t elems = 1;
        for (const auto& d : shape) elems *= d.is_number_unsigned() ? d.get<uint64_t>() : 1;
        e["data_offsets"][1] = e["data_offsets"][0].get<uint64_t>() + elems * dtype_bytes(dtype_of(e));
      }
      break;
    }
    case 1:
      e["dtype"] = pick(rng, {"F16", "BF16", "F32", "I8", "U8", "I32", "F64", "BOOL", ""});
      break;
    case 2: {  // offsets moved, or made to overlap another tensor's
      if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2) return;
      const std::vector<std::string> names = tensor_names(f);
      const ojson& other = f.header[pick(rng, names)];
      if (rng() % 2 && other.is_object() && other.contains("data_offsets")) {
        e["data_offsets"] = other["data_offsets"];
      } else if (e["data_offsets"][1].is_number_unsigned()) {
        const uint64_t end = e["data_offsets"][1].get<uint64_t>();
        e["data_offsets"][1] = rng() % 2 ? end + 1 + rng() % 8 : (end > 0 ? end - 1 : 0);
      }
      break;
    }
    case 3:
      e["shape"].push_back(rng() % 2 ? 1 : 0);
      break;
    default:
      e.erase(pick(rng, {"shape", "dtype", "data_offsets"}));
  }
}

// Another exporter-like name for a tensor: layer, head or part changed (a gap, a head index
// out of range, a duplicate layer, an unknown part), or the entry copied or dropped.
template <class Rng>
void rename_entry(File& f, const std::string& name, Rng& rng) {
  std::string n = name;
  switch (rng() % 4) {
    case 0:
      for (char& ch : n)
        if (ch >= '0' && ch <= '9' && rng() % 2) ch = static_cast<char>('0' + rng() % 4);
      break;
    case 1: {
      const size_t dot = n.rfind('.');
      n = n.substr(0, dot + 1) + pick(rng, {"q", "k", "v", "skim_keep", "hidden", "w", "b", "proj", "x"});
      break;
    }
    case 2:
      f.header.erase(name);
      return;
    default:
      break;  // copy under the same name: the entry is re-inserted below with a suffix
  }
  if (n == name) n = name + (rng() % 2 ? ".0" : "");
  if (n == name) return;
  f.header[n] = f.header[name];
  if (rng() % 2) f.header.erase(name);
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::minstd_rand rng(seed);
  File f;
  if (rng() % 10 == 0 || !parse(data, size, f)) return LLVMFuzzerMutate(data, size, max_size);
  const std::vector<std::string> names = tensor_names(f);
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int i = 0; i < edits; ++i) {
    const unsigned what = rng() % 10;
    if (names.empty() || what < 2) {
      mutate_metadata(f, rng);
    } else if (what < 5) {
      mutate_values(f, pick(rng, names), rng);
    } else if (what < 8) {
      mutate_entry(f, pick(rng, names), rng);
    } else {
      const std::string name = pick(rng, names);
      if (f.header.contains(name)) rename_entry(f, name, rng);
    }
  }
  const std::string out = serialize(f);
  if (out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}
#endif  // ATTNSIM_LIBFUZZER
