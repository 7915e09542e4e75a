// Fuzz target "trace": the safetensors reader and the trace reader on any bytes, as
// `attnsim trace info`, `attnsim trace dump` and a run's layer loading use them. The input
// is the whole file. Documented errors: TraceError, one line, starting with the file's path.
#include "tests/fuzz/fuzz_common.h"
#include "workloads/safetensors.h"
#include "workloads/skim_types.h"
#include "workloads/trace.h"

#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

namespace {

const char* const kTarget = "trace";

void expect_trace_error(const attnsim::TraceError& e, const std::string& path, const char* entry_point) {
  const std::string m = e.what();
  attnsim::fuzz::check_one_line(kTarget, entry_point, m);
  if (m.rfind(path + ": ", 0) != 0)
    attnsim::fuzz::contract_violation(kTarget, std::string(entry_point) + ": message does not start with the file: " + m);
}

// Every tensor converted to float, as `attnsim trace dump` does.
void read_all_tensors(const std::string& path) {
  try {
    const attnsim::SafetensorsFile f(path);
    for (const auto& [name, info] : f.tensors()) {
      try {
        (void)f.read_float(name);
      } catch (const attnsim::TraceError& e) {
        expect_trace_error(e, path, "SafetensorsFile::read_float");
      }
    }
    (void)f.sha256();
  } catch (const attnsim::TraceError& e) {
    expect_trace_error(e, path, "SafetensorsFile");
  }
}

// What a run reads of each layer: the quantized layer at a few bit widths, a reduced
// layer (every other token), the mechanism tensors of each head, hidden rows, predictor.
void load_layers(const attnsim::Trace& trace) {
  const std::string& path = trace.path();
  for (int l = 0; l < trace.layers(); ++l) {
    const attnsim::LayerShape& s = trace.shape(l);
    for (int bits : {8, 4, 16}) {
      try {
        (void)trace.layer(l, bits);
      } catch (const attnsim::TraceError& e) {
        expect_trace_error(e, path, "Trace::layer");
      }
    }
    if (s.n == s.m && s.n > 1) {
      attnsim::skim::TokenMap map;
      for (int i = 0; i < s.n; i += 2) map.push_back(attnsim::skim::fine_token(i));
      try {
        (void)trace.layer_mixed(l, 8, map);
      } catch (const attnsim::TraceError& e) {
        expect_trace_error(e, path, "Trace::layer_mixed");
      }
    }
    for (int h = 0; h < s.heads; ++h) {
      try {
        if (trace.has_tree(l, h)) (void)trace.tree(l, h);
        if (trace.has_lsh(l, h)) (void)trace.lsh_directions(l, h);
        if (trace.has_performer(l, h)) (void)trace.performer(l, h);
      } catch (const attnsim::TraceError& e) {
        expect_trace_error(e, path, "Trace mechanism tensors");
      }
    }
    try {
      if (trace.has_hidden(l)) {
        std::vector<int32_t> ids(static_cast<size_t>(s.n));
        std::iota(ids.begin(), ids.end(), 0);
        (void)trace.hidden_rows(l, ids);
      }
      if (trace.has_predictor(l)) (void)trace.predictor(l);
    } catch (const attnsim::TraceError& e) {
      expect_trace_error(e, path, "Trace hidden/predictor");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = attnsim::fuzz::write_temp("input.safetensors", data, size);
  try {
    read_all_tensors(path);
    try {
      const attnsim::Trace trace(path);
      (void)attnsim::describe_trace(trace);
      load_layers(trace);
    } catch (const attnsim::TraceError& e) {
      expect_trace_error(e, path, "Trace");
    }
  } catch (...) {
    attnsim::fuzz::unexpected_exception(kTarget, "the trace reader");
  }
  return 0;
}
