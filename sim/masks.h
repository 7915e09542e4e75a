#pragma once
// `attnsim run --masks M.safetensors`: for every layer and head, which keys each query row
// had as candidates and which of them survived the comparator, so that another
// implementation of the same mechanism (the PyTorch one of scripts/) can be checked
// against the simulator key for key. docs/tracing.md ("Candidate and keep masks") has the
// format:
//
//   layers.{l}.tokens  I32 [N_l]         original token id (row of the trace's layer
//                                        tensors) of each query row of layer l's view,
//                                        -1 for an FCA coarse token
//   layers.{l}.keep    U8  [H, N_l, M_l] per (head, query row i, key column j): 0 = j is
//                                        not a candidate of row i, 1 = a candidate the
//                                        comparator filtered, 2 = a candidate it kept
//
// The view is what the layer processed: with skimming, only its active tokens (rows and,
// for self-attention, key columns alike, in the same order). With Treeformer TC rows
// attend to tree-path nodes, not keys: layers.{l}.keep is not written, and the metadata
// says so.
//
// The head model hands every finished row to the recorder (arch/head_model.h,
// DecisionRecorder); each (layer, head, row) is written by one thread only, into storage
// allocated when the layer's first head begins, so the rows need no lock.
#include "arch/head_model.h"
#include "sim/config.h"
#include "workloads/trace.h"

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace attnsim {

class KeepMasks : public DecisionRecorder {
 public:
  static constexpr uint64_t kMaxBytes = uint64_t{1} << 30;

  // Checks, before anything runs, that the masks of `trace` cannot exceed kMaxBytes (the
  // unreduced layers bound the reduced ones); throws std::runtime_error naming --masks and
  // the size otherwise.
  KeepMasks(const Config& config, const Trace& trace);

  std::unique_ptr<HeadDecisions> begin_head(const HeadWork& head) const override;

  // Writes the masks of every layer atomically (workloads' SafetensorsWriter: on failure no
  // file is left) and throws TraceError naming `path`. Moves the masks into the writer, so
  // call it once, after the simulation.
  void write(const std::string& path, const std::string& trace_sha256);

 private:
  struct Layer {
    bool seen = false;        // a head of the layer has begun
    bool aggregates = false;  // Treeformer TC: no keys, no keep
    int heads = 0, n = 0, m = 0;
    std::vector<int32_t> tokens;  // [n]
    std::vector<uint8_t> keep;    // [heads, n, m]
  };

  mutable std::mutex mutex_;         // begin_head (heads begin one after another; cheap)
  mutable std::vector<Layer> layers_;
  std::map<std::string, std::string> metadata_;
};

// Bytes of the masks of `trace` without skimming (an upper bound with it): 4 N per layer
// for the tokens, and H N M for keep unless the config makes rows attend to tree nodes.
double keep_masks_bytes(const Config& config, const Trace& trace);

}  // namespace attnsim
