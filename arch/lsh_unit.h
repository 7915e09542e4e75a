#pragma once
// lsh_unit: Scatterbrain's sparse part (Chen et al., NeurIPS 2021), a candidate generator
// (arch/candidates.h, `candidates.source = "lsh"`); SEMANTICS §5 is the contract,
// docs/candidates.md states every rule with examples.
//
// What it does, per head: for each of R hash rounds it projects the queries and the keys
// (dequantized, float64) on the round's direction (from the trace, or seeded Gaussian;
// loaded with the head by the DMA), sorts each list by projection on its merge sorter,
// and cuts both into clusters of c consecutive items; key j becomes a candidate of query i
// when, in some round, they sit in clusters of the same index (causal: j <= i). Each key
// cluster is then sorted by key id, and a query's candidate list is the merge of its R
// key clusters without duplicates (a key colliding in several rounds is scored once), in
// key order for the QK unit (arch/lsh_math.h).
//
// Timing rule, per head, before the QK unit starts it (like the tree engine, it works on
// the next head while the QK unit scores this one), with sort(n) = ceil(n / w) *
// ceil(log2 n) for n >= 2 (w = sorter_width elements per cycle per pass):
//   projections  ceil(R (N + M) d / macs_per_cycle)
//   + per round  sort(N) + sort(M) + sum over key clusters of sort(cluster size)
//   + per query  ceil(u_i / w), u_i the keys read from its R key clusters (the merge).
// Stall: blocked on a full head queue.
//
// Params: LshUnitParams below. Counters: projection_macs (R (N + M) d), sort_ops (elements
// x passes of every sort), merge_ops (sum of u_i), direction_writes (R d words loaded).
#include "arch/candidates.h"
#include "core/params.h"

#include <optional>

namespace attnsim {

struct LshUnitParams {
  std::optional<int> rounds;  // R; absent: the trace's directions', else kDefaultRounds
  int cluster_size;
  int macs_per_cycle;
  int sorter_width;
  int seed;  // for the directions drawn when the trace has none

  static constexpr int kDefaultRounds = 2;  // SEMANTICS §6

  static const ParamTable<LshUnitParams>& table() {
    static const ParamTable<LshUnitParams> t{
        "lsh_unit", "Scatterbrain LSH unit (candidates.source = \"lsh\").",
        {field(&LshUnitParams::rounds, "rounds", json())
             .doc("R: hash rounds; absent: the number of directions in the trace, else 2. With directions in the trace it must equal their count.")
             .min(1)
             .max(64),
         field(&LshUnitParams::cluster_size, "cluster_size", 64)
             .doc("c: items per cluster of the sorted projections.")
             .min(1),
         field(&LshUnitParams::macs_per_cycle, "macs_per_cycle", 64)
             .unit("MACs/cycle").doc("Projection MACs per cycle.").min(1).max(plausible::kPerCycle),
         field(&LshUnitParams::sorter_width, "sorter_width", 8)
             .unit("elements/cycle")
             .doc("Merge sorter: elements taken per cycle per pass (also the merge of a query's clusters).")
             .min(1).max(plausible::kPerCycle),
         field(&LshUnitParams::seed, "seed", 1).doc("Seed of the directions drawn when the trace has none.").min(0)}};
    return t;
  }
};

// The generator "lsh" (registered in arch/candidates.cpp). `resolved_config` must hold
// lsh_unit.rounds (the run plan fills it from the trace when the config leaves it out).
std::unique_ptr<CandidateGenerator> make_lsh_generator(const json& resolved_config);

}  // namespace attnsim
