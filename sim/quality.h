#pragma once
// Approximation quality against exact attention (SEMANTICS §3 "Quality metrics"), the
// QualityMeter the top level hands down to the head model (arch/head_model.h).
//
// Per row: the exact reference is the softmax over every key the query may see in the
// unreduced layer (0..i when causal), from the dequantized q, k, v in float64; the row
// contributes ||O_approx - O_exact||^2 and ||O_exact||^2 (rel_error), the exact
// probability mass of its survivors (mass_recall), and, for float traces, the distance of
// the exact quantized output from attention on the trace's own floats (quant_error).
// A row of a layer reduced by skimming is measured for the query's original token
// against every key of the unreduced layer; a coarse FCA token has no reference.
//
// No work twice: when the candidates were every visible key, their exact scores (already
// computed by the QK unit's model) are the reference's scores, and when every key
// survived the accelerator's output is the reference itself, bit for bit.
#include "arch/head_model.h"
#include "core/params.h"

namespace attnsim {

struct QualityParams {
  bool enabled;

  static const ParamTable<QualityParams>& table() {
    static const ParamTable<QualityParams> t{
        "quality", "Approximation-quality metrics against exact float64 attention.",
        {field(&QualityParams::enabled, "enabled", true)
             .doc("Compute rel_error, mass_recall and quant_error (costs a reference attention).")}};
    return t;
  }
};

class ExactAttentionQuality : public QualityMeter {
 public:
  std::unique_ptr<HeadQuality> begin_head(const HeadWork& head) const override;
};

}  // namespace attnsim
