#pragma once
// Resolved, immutable parameters of every unit, with their declarations (name, kind,
// default, unit, doc) in one block each. The SystemC module of each unit includes this
// header and documents its timing rule beside its class; the defaults live only here.
#include "core/params.h"

#include <string>

namespace attnsim {

// ---- dram: off-chip memory channel, DMA loads and output write-back -----------------
struct DramParams {
  int bytes_per_cycle;  // sustained bandwidth of the channel
  int latency_cycles;   // fixed latency from request to first data
  int burst_bytes;      // largest transfer that holds the channel without interruption
  static SectionSpec spec() {
    return {"dram", "Off-chip memory channel shared by the DMA loads and the write-back.",
            {int_param("bytes_per_cycle", 64, "bytes/cycle", "Sustained channel bandwidth.", 1),
             int_param("latency_cycles", 100, "cycles",
                       "Latency from a request to its data, paid once per head load and per write-back.",
                       0),
             int_param("burst_bytes", 2048, "bytes",
                       "A head load is split into bursts of this size, so write-backs interleave with it.",
                       1)}};
  }
  static DramParams from(const json& s) {
    return {s.at("bytes_per_cycle").get<int>(), s.at("latency_cycles").get<int>(),
            s.at("burst_bytes").get<int>()};
  }
};

// ---- sram: on-chip Q/K/V buffers ------------------------------------------------------
struct SramParams {
  int capacity_kib;
  int banks;
  int width_bits;
  static SectionSpec spec() {
    return {"sram", "On-chip buffers holding one head's Q, K and V (two heads when they fit: double buffering).",
            {int_param("capacity_kib", 1024, "KiB", "Total capacity of the Q/K/V buffers.", 1),
             int_param("banks", 64, "", "Number of banks; access energy is that of one bank's capacity.", 1),
             int_param("width_bits", 128, "bits", "Width of one bank access (one energy event); banks x width_bits is the bits per cycle the buffers supply.", 8)}};
  }
  static SramParams from(const json& s) {
    return {s.at("capacity_kib").get<int>(), s.at("banks").get<int>(), s.at("width_bits").get<int>()};
  }
};

// ---- qk_unit: query-key scoring (SEMANTICS §4) ----------------------------------------
struct QkUnitParams {
  std::string type;       // "bit_serial" | "bit_parallel"
  std::string mode;       // "dense" | "latte" | "early_term"
  int bits;               // B
  int estimate_bits;      // P
  int lanes;              // L
  std::string lane_sync;  // "lockstep" | "independent"
  static SectionSpec spec() {
    return {"qk_unit", "Scores each query against its candidate keys (SEMANTICS §3, §4).",
            {choice_param("type", "bit_serial", {"bit_serial", "bit_parallel"},
                          "bit_serial: one bit-plane of K per lane per cycle; bit_parallel: one whole dot product per lane per cycle."),
             choice_param("mode", "latte", {"dense", "latte", "early_term"},
                          "dense: every candidate scored exactly; latte: MSB estimate, threshold, finish survivors; early_term: LeOPArd bit-level early termination."),
             int_param("bits", 8, "bits", "B: quantization width of Q, K and V.", 2, 16),
             int_param("estimate_bits", 4, "bits", "P: MSB planes in LATTE's estimate pass (1..B).", 1, 16),
             int_param("lanes", 64, "", "L: keys scored in parallel.", 1),
             choice_param("lane_sync", "lockstep", {"lockstep", "independent"},
                          "lockstep: lanes work on tiles of L keys; independent: each key goes to the lane that frees first.")}};
  }
  static QkUnitParams from(const json& s) {
    return {s.at("type").get<std::string>(), s.at("mode").get<std::string>(), s.at("bits").get<int>(),
            s.at("estimate_bits").get<int>(),    s.at("lanes").get<int>(),
            s.at("lane_sync").get<std::string>()};
  }
};

// ---- comparator: head-wise threshold (LATTE gamma / margin, LeOPArd theta) ------------
// gamma, margin and theta stay as JSON until a trace fixes L and H; see
// PerHeadValue in sim/config.h for the lookup by (layer, head).
struct ComparatorParams {
  json gamma;
  json margin;  // null when absent
  json theta;
  int latency_cycles;
  int keys_per_cycle;
  static SectionSpec spec() {
    ParamSpec gamma;
    gamma.name = "gamma";
    gamma.kind = ParamKind::PerHead;
    gamma.default_value = 0.01;
    gamma.doc = "LATTE keep ratio gamma_h in (0,1]: keep keys whose probability is at least gamma_h times the row maximum.";
    gamma.min = 0.0;
    gamma.min_exclusive = true;
    gamma.max = 1.0;
    ParamSpec margin;
    margin.name = "margin";
    margin.kind = ParamKind::PerHead;
    margin.integer_only = true;
    margin.doc = "Integer score margin T_h; when given it overrides gamma.";
    margin.min = 0.0;
    ParamSpec theta;
    theta.name = "theta";
    theta.kind = ParamKind::PerHead;
    theta.integer_only = true;
    theta.default_value = 0;
    theta.doc = "LeOPArd integer threshold theta_h (early_term mode).";
    return {"comparator", "Head-wise threshold comparator between the QK unit's passes.",
            {gamma, margin, theta,
             int_param("latency_cycles", 1, "cycles", "Pipeline latency of one comparison.", 0),
             int_param("keys_per_cycle", 64, "keys/cycle", "Comparisons per cycle.", 1)}};
  }
  static ComparatorParams from(const json& s) {
    return {s.at("gamma"), s.value("margin", json()), s.at("theta"), s.at("latency_cycles").get<int>(),
            s.at("keys_per_cycle").get<int>()};
  }
};

// ---- reuse_buffer: LATTE computation-reuse buffer --------------------------------------
struct ReuseBufferParams {
  int entries;
  int banks;
  int bits_per_entry;
  static SectionSpec spec() {
    return {"reuse_buffer", "Holds pass-1 partial sums until survivors finish their planes.",
            {int_param("entries", 4096, "", "Partial sums held; longer rows are processed in segments.", 1),
             int_param("banks", 16, "", "Banks of the buffer: partial sums written or read per cycle.", 1),
             int_param("bits_per_entry", 32, "bits", "Width of one stored partial sum.", 1)}};
  }
  static ReuseBufferParams from(const json& s) {
    return {s.at("entries").get<int>(), s.at("banks").get<int>(), s.at("bits_per_entry").get<int>()};
  }
};

// ---- softmax -------------------------------------------------------------------------
struct SoftmaxParams {
  int elements_per_cycle;
  int latency_cycles;
  static SectionSpec spec() {
    return {"softmax", "Softmax over a row's surviving scores.",
            {int_param("elements_per_cycle", 8, "elements/cycle", "Scores accepted per cycle.", 1),
             int_param("latency_cycles", 8, "cycles", "Pipeline latency from a row's last score to its first probability.", 0)}};
  }
  static SoftmaxParams from(const json& s) {
    return {s.at("elements_per_cycle").get<int>(), s.at("latency_cycles").get<int>()};
  }
};

// ---- av_unit -------------------------------------------------------------------------
struct AvUnitParams {
  int macs_per_cycle;
  int latency_cycles;
  int output_bits;
  static SectionSpec spec() {
    return {"av_unit", "Multiplies a row's probabilities with the value rows (P.V).",
            {int_param("macs_per_cycle", 512, "MACs/cycle", "Multiply-accumulates per cycle.", 1),
             int_param("latency_cycles", 4, "cycles", "Pipeline latency (adder tree, rounding).", 0),
             int_param("output_bits", 16, "bits", "Width of an output element written back to DRAM.", 1, 64)}};
  }
  static AvUnitParams from(const json& s) {
    return {s.at("macs_per_cycle").get<int>(), s.at("latency_cycles").get<int>(),
            s.at("output_bits").get<int>()};
  }
};

// ---- skim_controller: token skimming (Transkimmer, FCA); the unit itself is issue 4 ---
struct SkimControllerParams {
  std::string mode;
  std::string source;
  json keep;
  int groups;
  std::string predictor_unit;  // "dedicated" | "gemm_engine"
  int macs_per_cycle;          // the dedicated unit's MAC array
  int tokens_per_cycle;        // compaction / selection throughput
  static SectionSpec spec() {
    ParamSpec keep;
    keep.name = "keep";
    keep.kind = ParamKind::PerLayer;
    keep.default_value = 0.5;
    keep.doc = "FCA: R_l per layer (list of integers), or a fraction of the layer's tokens.";
    keep.min = 0.0;
    keep.min_exclusive = true;
    return {"skim_controller", "Token-skim controller (drops or merges tokens layer by layer).",
            {choice_param("mode", "off", {"off", "transkimmer", "fca"}, "Skimming mechanism."),
             choice_param("source", "trace", {"trace", "predictor"},
                          "Transkimmer keep masks: from the trace, or computed by the predictor MLP."),
             keep, int_param("groups", 5, "", "FCA: number of coarse groups C.", 1),
             choice_param("predictor_unit", "dedicated", {"dedicated", "gemm_engine"},
                          "Transkimmer predictor MLP: on the controller's own MAC array, or as two GEMM jobs on the GEMM engine."),
             int_param("macs_per_cycle", 64, "MACs/cycle",
                       "The controller's own MAC array (predictor MLP, FCA pooling of hidden states).", 1),
             int_param("tokens_per_cycle", 8, "tokens/cycle",
                       "Tokens the controller compacts, forwards or ranks per cycle.", 1)}};
  }
  static SkimControllerParams from(const json& s) {
    return {s.at("mode").get<std::string>(),           s.at("source").get<std::string>(),
            s.at("keep"),                              s.at("groups").get<int>(),
            s.at("predictor_unit").get<std::string>(), s.at("macs_per_cycle").get<int>(),
            s.at("tokens_per_cycle").get<int>()};
  }
};

// ---- gemm_engine: systolic array for projections and FFN (issue 4) ----------------------
// Timing and traffic rules: arch/gemm_math.h, docs/gemm_engine.md.
struct GemmEngineParams {
  int rows;
  int cols;
  std::string dataflow;
  int sram_kib = 512;    // operand buffer capacity
  int input_bits = 8;    // width of an A or B element
  int output_bits = 32;  // width of a C element (and of a partial sum)
  static SectionSpec spec() {
    return {"gemm_engine", "Systolic MAC array for projections and FFN.",
            {int_param("rows", 32, "", "R: PE rows.", 1), int_param("cols", 32, "", "C: PE columns.", 1),
             choice_param("dataflow", "os", {"os", "ws", "is"},
                          "Output-, weight- or input-stationary."),
             int_param("sram_kib", 512, "KiB",
                       "Operand buffer: when A, B and C fit, each moves once to or from DRAM; otherwise the row-edge operand is re-read once per fold column.",
                       1),
             int_param("input_bits", 8, "bits", "Width of an element of A (activations) and B (weights).", 1, 32),
             int_param("output_bits", 32, "bits", "Width of an element of C and of a partial sum.", 1, 64)}};
  }
  static GemmEngineParams from(const json& s) {
    return {s.at("rows").get<int>(),       s.at("cols").get<int>(),       s.at("dataflow").get<std::string>(),
            s.at("sram_kib").get<int>(),   s.at("input_bits").get<int>(), s.at("output_bits").get<int>()};
  }
};

// ---- model: what a layer consists of ---------------------------------------------------
struct ModelParams {
  std::string scope;  // "attention" | "encoder"
  int d_model;        // 0: from the trace
  int d_ff;           // 0: 4 x d_model
  int hidden_bits;    // width of a hidden-state element moved by the skim controller
  static SectionSpec spec() {
    return {"model", "What each layer of the trace stands for.",
            {choice_param("scope", "attention", {"attention", "encoder"},
                          "attention: the attention datapath only; encoder: a whole encoder layer (QKV projection, attention, output projection, FFN on the GEMM engine)."),
             int_param("d_model", 0, "", "Model width D; 0: metadata d_model of the trace, else heads x d.", 0),
             int_param("d_ff", 0, "", "FFN width; 0: metadata d_ff of the trace, else 4 x D.", 0),
             int_param("hidden_bits", 16, "bits", "Width of a hidden-state element (skim forwarding and pooling traffic).", 1, 64)}};
  }
  static ModelParams from(const json& s) {
    return {s.at("scope").get<std::string>(), s.at("d_model").get<int>(), s.at("d_ff").get<int>(),
            s.at("hidden_bits").get<int>()};
  }
};

// ---- pipeline: the channels between units ---------------------------------------------
struct PipelineParams {
  int fifo_depth;
  static SectionSpec spec() {
    return {"pipeline", "Latency-insensitive channels between the units.",
            {int_param("fifo_depth", 4, "rows", "Depth of every FIFO between two units.", 1)}};
  }
  static PipelineParams from(const json& s) { return {s.at("fifo_depth").get<int>()}; }
};

// ---- energy: technology table --------------------------------------------------------
struct EnergyParams {
  std::string tech;
  double node_scale;
  static SectionSpec spec() {
    return {"energy", "Technology table that turns action counts into energy.",
            {[] {
               ParamSpec p;
               p.name = "tech";
               p.kind = ParamKind::String;
               p.default_value = "45nm";
               p.doc = "Built-in table name (configs/tech/NAME.json) or a path to a table file.";
               return p;
             }(),
             number_param("node_scale", 1.0, "", "Multiplies every dynamic and static energy (technology scaling).", 0.0, true)}};
  }
  static EnergyParams from(const json& s) {
    return {s.at("tech").get<std::string>(), s.at("node_scale").get<double>()};
  }
};

// ---- quality: approximation metrics against exact attention ---------------------------
struct QualityParams {
  bool enabled;
  static SectionSpec spec() {
    return {"quality", "Approximation-quality metrics against exact float64 attention.",
            {bool_param("enabled", true, "Compute rel_error, mass_recall and quant_error (costs a reference attention).")}};
  }
  static QualityParams from(const json& s) { return {s.at("enabled").get<bool>()}; }
};

}  // namespace attnsim
