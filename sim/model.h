#pragma once
// model: what each layer of the trace stands for - the attention datapath alone, or a
// whole encoder layer (QKV projection, attention, output projection and FFN on the GEMM
// engine, docs/microarchitecture.md) - and the model's widths when the trace does not
// give them. The layer plan (sim/layer_plan.h) resolves D and d_ff once per run.
#include "core/params.h"

namespace attnsim {

enum class ModelScope { attention, encoder };

inline const Choices<ModelScope>& model_scopes() {
  static const Choices<ModelScope> c{{"attention", ModelScope::attention}, {"encoder", ModelScope::encoder}};
  return c;
}

struct ModelParams {
  ModelScope scope;
  int d_model;      // 0: from the trace
  int d_ff;         // 0: 4 x d_model
  int hidden_bits;  // width of a hidden-state element moved by the skim controller

  static const ParamTable<ModelParams>& table() {
    static const ParamTable<ModelParams> t{
        "model", "What each layer of the trace stands for.",
        {choice(&ModelParams::scope, "scope", ModelScope::attention, model_scopes())
             .doc("attention: the attention datapath only; encoder: a whole encoder layer (QKV projection, attention, output projection, FFN on the GEMM engine)."),
         field(&ModelParams::d_model, "d_model", 0).doc("Model width D; 0: metadata d_model of the trace, else heads x d.").min(0).max(plausible::kModelWidth),
         field(&ModelParams::d_ff, "d_ff", 0).doc("FFN width; 0: metadata d_ff of the trace, else 4 x D.").min(0).max(plausible::kModelWidth),
         field(&ModelParams::hidden_bits, "hidden_bits", 16)
             .unit("bits")
             .doc("Width of a hidden-state element (skim forwarding and pooling traffic).")
             .min(1)
             .max(64)}};
    return t;
  }
};

}  // namespace attnsim
