// `attnsim kernel --trace T [--floor dense|filter|filter+exact]`: the bare arithmetic of
// attention on the trace in a plain single-threaded loop, on the best instruction set the
// CPU has, with no SystemC and no statistics: the floors the simulator's own speed is
// measured against (scripts/bench.sh).
//  dense         exact integer dot products of every pair, softmax, P.V (double)
//  filter        LATTE's filter: the int8 MSB estimate of every pair (q . MSB_P(k)), the
//                head-wise threshold over segments of --entries keys, the exact finish of
//                the survivors (what attnsim computes with quality.enabled=false)
//  filter+exact  the filter, plus exact attention over every key for the quality metrics
//                (what attnsim computes with them on, less the float reference)
#include "arch/attention_math.h"
#include "arch/qk_math.h"
#include "core/isa.h"
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

namespace {

// sum_t q[t] * k[t] of int8 rows (B <= 8), int32 accumulation: the estimate's arithmetic.
ATTNSIM_INLINE int32_t dot8_body(const int8_t* __restrict q, const int8_t* __restrict k, int d) {
  int32_t acc = 0;
  for (int t = 0; t < d; ++t) acc += static_cast<int32_t>(q[t]) * static_cast<int32_t>(k[t]);
  return acc;
}
ATTNSIM_ISA_BUILDS(int32_t, dot8, (const int8_t* q, const int8_t* k, int d), return dot8_body(q, k, d);)

int32_t dot8(const int8_t* q, const int8_t* k, int d) {
  static const auto kernel = pick_isa(&dot8_baseline, &dot8_avx2, &dot8_avx512);
  return kernel(q, k, d);
}

enum class Floor { dense, filter, filter_exact };

struct FloorArgs {
  Floor floor = Floor::dense;
  int bits = 8, planes = 4, entries = 4096;
  double gamma = 0.01;
};

struct Scratch {
  std::vector<int64_t> scores, estimates;
  std::vector<int32_t> keys;
  std::vector<uint8_t> keep;
  std::vector<double> probs, out, v;
  std::vector<int8_t> q8, k8;
};

// One head's rows through the floor; returns a checksum so nothing is optimized away.
double head_floor(const FloorArgs& a, const HeadData& h, int n_rows, int m, int d, bool causal, Scratch& s) {
  const bool wide = qk::needs_wide_accumulator(a.bits, d);
  const double c = h.scale_q * h.scale_k / std::sqrt(static_cast<double>(d));
  s.v.resize(h.v.size());
  for (size_t i = 0; i < s.v.size(); ++i) s.v[i] = h.v[i] * h.scale_v;
  const bool filter = a.floor != Floor::dense;
  const int shift = a.bits - a.planes;
  int64_t margin = 0;
  if (filter) {  // int8 rows: Q, and K's P most significant planes (k >> (B-P))
    s.q8.resize(h.q.size()), s.k8.resize(h.k.size());
    for (size_t i = 0; i < h.q.size(); ++i) s.q8[i] = static_cast<int8_t>(h.q[i]);
    for (size_t i = 0; i < h.k.size(); ++i) s.k8[i] = static_cast<int8_t>(h.k[i] >> shift);
    margin = qk::latte_margin(a.gamma, d, h.scale_q, h.scale_k);
  }
  double checksum = 0;
  for (int i = 0; i < n_rows; ++i) {
    const int n = causal ? std::min(i + 1, m) : m;
    const int16_t* q = &h.q[static_cast<size_t>(i) * d];
    s.scores.resize(n), s.keys.resize(n), s.probs.resize(n), s.out.resize(d);
    if (filter) {
      s.estimates.resize(n), s.keep.resize(n);
      const int8_t* q8 = &s.q8[static_cast<size_t>(i) * d];
      for (int j = 0; j < n; ++j)
        s.estimates[j] = static_cast<int64_t>(dot8(q8, &s.k8[static_cast<size_t>(j) * d], d)) * (int64_t{1} << shift);
      qk::latte_filter(s.estimates.data(), n, a.entries, margin, s.keep.data());
      int kept = 0;
      for (int j = 0; j < n; ++j)
        if (s.keep[j]) {
          s.keys[kept] = j;
          s.scores[kept++] = qk::dot(q, &h.k[static_cast<size_t>(j) * d], d, wide);  // the exact finish
        }
      checksum += kept;
      if (a.floor == Floor::filter) continue;
    }
    for (int j = 0; j < n; ++j) {
      s.keys[j] = j;
      s.scores[j] = qk::dot(q, &h.k[static_cast<size_t>(j) * d], d, wide);
    }
    attn::softmax(s.scores.data(), n, c, s.probs.data());
    attn::weighted_sum(s.probs.data(), s.keys.data(), n, s.v.data(), d, s.out.data());
    checksum += s.out[0];
  }
  return checksum;
}

Floor parse_floor(const std::string& name) {
  if (name == "dense") return Floor::dense;
  if (name == "filter") return Floor::filter;
  if (name == "filter+exact") return Floor::filter_exact;
  throw UsageError("kernel: --floor must be dense, filter or filter+exact, got '" + name + "'");
}

}  // namespace

int cmd_kernel(int argc, char** argv) {
  namespace po = boost::program_options;
  po::options_description opts(
      "usage: attnsim kernel --trace T.safetensors [--floor dense|filter|filter+exact] [--bits 8]\n\noptions");
  std::string trace_path, floor = "dense";
  FloorArgs a;
  opts.add_options()("help,h", "show this help")("trace,t", po::value(&trace_path), "trace")(
      "floor", po::value(&floor)->default_value("dense"), "dense, filter or filter+exact (see attnsim kernel source)")(
      "bits", po::value(&a.bits)->default_value(8), "quantization width B")(
      "planes", po::value(&a.planes)->default_value(4), "filter: MSB planes P of the estimate")(
      "gamma", po::value(&a.gamma)->default_value(0.01), "filter: LATTE's gamma for every head")(
      "entries", po::value(&a.entries)->default_value(4096), "filter: reuse-buffer segment, keys");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << opts << "\n";
      return 0;
    }
    if (trace_path.empty()) throw UsageError("kernel: --trace is required");
    if (a.bits < 2 || a.bits > 16) throw UsageError("kernel: --bits: must be in 2..16, got " + std::to_string(a.bits));
    a.floor = parse_floor(floor);
    if (a.floor != Floor::dense && (a.bits > 8 || a.planes < 1 || a.planes > a.bits))
      throw UsageError("kernel: the filter floor needs --bits <= 8 (int8 rows) and 1 <= --planes <= --bits");
    const Trace trace(trace_path);
    double load_seconds = 0, compute_seconds = 0, checksum = 0;
    Scratch s;
    for (int l = 0; l < trace.layers(); ++l) {
      auto t0 = std::chrono::steady_clock::now();
      const LayerView layer = trace.layer(l, a.bits);
      auto t1 = std::chrono::steady_clock::now();
      for (const HeadData& h : layer.head) checksum += head_floor(a, h, layer.n, layer.m, layer.d, trace.causal(), s);
      auto t2 = std::chrono::steady_clock::now();
      load_seconds += std::chrono::duration<double>(t1 - t0).count();
      compute_seconds += std::chrono::duration<double>(t2 - t1).count();
    }
    std::printf("kernel %s (%s): load+quantize %.3f s, arithmetic %.3f s, total %.3f s (checksum %.6g)\n",
                floor.c_str(), isa_name(active_isa()), load_seconds, compute_seconds, load_seconds + compute_seconds,
                checksum);
  } catch (const std::exception& e) {
    return report_error(e);
  }
  return kExitOk;
}

}  // namespace attnsim
