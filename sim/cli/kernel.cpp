// `attnsim kernel --trace T`: the bare arithmetic of dense attention on the trace (exact
// integer dot products, softmax, P.V) in a plain single-threaded loop, with no SystemC and
// no statistics: the floor the simulator's own speed is measured against (scripts/bench.sh).
#include "arch/attention_math.h"
#include "arch/qk_math.h"
#include "sim/cli/commands.h"
#include "sim/cli/errors.h"
#include "workloads/trace.h"

#include <boost/program_options.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

namespace attnsim {

int cmd_kernel(int argc, char** argv) {
  namespace po = boost::program_options;
  po::options_description opts("usage: attnsim kernel --trace T.safetensors [--bits 8]\n\noptions");
  std::string trace_path;
  int bits = 8;
  opts.add_options()("help,h", "show this help")("trace,t", po::value(&trace_path), "trace")(
      "bits", po::value(&bits)->default_value(8), "quantization width B");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << opts << "\n";
      return 0;
    }
    if (trace_path.empty()) throw UsageError("kernel: --trace is required");
    if (bits < 2 || bits > 16) throw UsageError("kernel: --bits: must be in 2..16, got " + std::to_string(bits));
    const Trace trace(trace_path);
    double load_seconds = 0, compute_seconds = 0, checksum = 0;
    std::vector<int64_t> scores;
    std::vector<int32_t> keys;
    std::vector<double> probs, out, v;
    for (int l = 0; l < trace.layers(); ++l) {
      auto t0 = std::chrono::steady_clock::now();
      const LayerView layer = trace.layer(l, bits);
      auto t1 = std::chrono::steady_clock::now();
      const int d = layer.d;
      const bool wide = qk::needs_wide_accumulator(bits, d);
      for (const HeadData& h : layer.head) {
        v.resize(h.v.size());
        for (size_t i = 0; i < v.size(); ++i) v[i] = h.v[i] * h.scale_v;
        const double c = h.scale_q * h.scale_k / std::sqrt(static_cast<double>(d));
        for (int i = 0; i < layer.n; ++i) {
          const int n = trace.causal() ? std::min(i + 1, layer.m) : layer.m;
          scores.resize(n), keys.resize(n), probs.resize(n), out.resize(d);
          for (int j = 0; j < n; ++j) {
            keys[j] = j;
            scores[j] = qk::dot(&h.q[static_cast<size_t>(i) * d], &h.k[static_cast<size_t>(j) * d], d, wide);
          }
          attn::softmax(scores.data(), n, c, probs.data());
          attn::weighted_sum(probs.data(), keys.data(), n, v.data(), d, out.data());
          checksum += out[0];
        }
      }
      auto t2 = std::chrono::steady_clock::now();
      load_seconds += std::chrono::duration<double>(t1 - t0).count();
      compute_seconds += std::chrono::duration<double>(t2 - t1).count();
    }
    std::printf("kernel: load+quantize %.3f s, dot products + softmax + P.V %.3f s (checksum %.6g)\n",
                load_seconds, compute_seconds, checksum);
  } catch (const std::exception& e) {
    return report_error(e);
  }
  return kExitOk;
}

}  // namespace attnsim
