#pragma once
// DMA: loads each head's Q, K and V from DRAM into an SRAM slot (part of module `dram`
// in the stats).
//
// What it does: takes a layer from the layer scheduler (when the layer's inputs are
// ready: after the previous layer's last output row landed, and after the layer's QKV
// projection in encoder scope), then head by head waits for a free SRAM slot, loads the
// head's Q, K and V (B bits per element) through the DRAM channel in bursts of
// dram.burst_bytes, and hands the head on (to the candidate generator's unit when it has
// one, else to the QK unit). When a head is loaded, the head model (arch/head_model.h)
// runs its functional datapath: functional first, then time.
//
// K/V tiling (arch/kv_tiling.h, a head that does not fit): the head goes to the QK unit
// as soon as it has a slot (a tiled run has one); the DMA then loads, job (b, t) by job,
// Q block b (ceil(rows * d * B / 8) bytes) before the block's first job, once the QK unit
// has passed on the previous block's last part, and K and V of tile t (ceil(2 * keys * d
// * B / 8) bytes) once a tile buffer is free (the AV unit has finished every part of the
// job that used it). Each load is its bursts, then dram.latency_cycles; the QK unit
// starts job j when its loads have arrived. Waiting for a buffer is `dram` stall. With
// sram.ports the bursts are written as below, into the Q block buffer (row r of the block
// in bank r mod banks / T) or the tile's K and V buffers (key j of tile t at row j - t*KT),
// T = the tile buffers (arch/sram.h).
//
// Timing rule: head bytes = ceil((N + 2M) * d * B / 8), plus the head's parameters for
// the candidate generator and the low-rank unit (HeadWork::param_bytes: a tree's nodes,
// LSH directions, a Performer matrix, 32-bit words); each burst is reserved on the channel
// in turn (DramChannel's rule) and the head is ready dram.latency_cycles after its last
// burst ends. Waiting for a slot or on a full head queue is `dram` stall. With sram.ports
// the bursts' words are also written into the slot's banks at sram.ports per bank per
// cycle (SramBuffers::fill_write_cycles): burst k is written at w_k = max(its data's
// arrival, w_{k-1}) + its write cycles, and the head is ready at the last w; the wait
// beyond the data's arrival is `dram` stall too.
// With pipeline.overlap_gemm (encoder scope) the layer arrives before its Q, K and V are
// projected: the DMA starts on head h only when the layer scheduler has marked head h's
// projection done (ProjectionGate), and only then waits for a slot. Waiting for the
// projection is idle (there is nothing to load yet), not stall.
#include "arch/dram.h"
#include "arch/head_model.h"
#include "arch/pipeline.h"
#include "arch/sram.h"

#include <systemc>

#include <memory>

namespace attnsim {

class ActivityRecorder;

// Completion of layers' attention, signalled by the write-back, awaited by the scheduler.
struct LayerBarrier {
  int completed = 0;
  sc_core::sc_event advanced;
};

// pipeline.overlap_gemm: how many heads of which layer have their Q, K and V projected
// (written by the layer scheduler, read by the DMA).
struct ProjectionGate {
  int layer = -1;     // the layer whose heads are being projected
  int projected = 0;  // its heads 0 .. projected-1 are done
  sc_core::sc_event advanced;
  bool ready(int l, int h) const { return layer > l || (layer == l && projected > h); }
};

// Bits of one head's Q, K and V at B bits per element.
inline uint64_t head_bits(int n, int m, int d, int bits) {
  return (static_cast<uint64_t>(n) + 2 * static_cast<uint64_t>(m)) * d * bits;
}

class Dma : public sc_core::sc_module {
 public:
  sc_core::sc_fifo_in<std::shared_ptr<const LayerContext>> layer_in;
  sc_core::sc_fifo_out<std::shared_ptr<HeadWork>> head_out;

  Dma(sc_core::sc_module_name name, int bits, DramChannel& dram, SramBuffers& sram,
      sc_core::sc_semaphore& free_slots, const HeadModel& model);
  // Activity tracing (arch/activity_trace.h); null when off.
  void set_tracer(ActivityRecorder* t) { trace_ = t; }
  // The SRAM's slots, or a tiled run's K/V tile buffers (with sram.ports the fill writes
  // into banks / slots banks).
  void set_slots(int slots) { slots_ = slots; }
  // pipeline.overlap_gemm: load a head only once the gate says it is projected. Null
  // (default): every head of a layer is ready when the layer arrives.
  void set_projection_gate(const ProjectionGate* g) { gate_ = g; }

 private:
  void run();
  void load_head(const HeadWork& work, bool traced);
  void load_tiles(HeadWork& work, bool traced);
  // `bytes` through the channel in bursts into a slot (or tile buffer) holding q_rows rows
  // of Q, then kv_rows of K and of V (bytes past them: parameters for the units' own
  // buffers); ready dram.latency_cycles after the last burst and, with sram.ports, when
  // the last burst is written (the wait beyond the data's arrival is dram stall).
  void fill(const HeadWork& work, uint64_t bytes, int q_rows, int kv_rows, const char* what, bool traced);

  int bits_;
  int slots_ = 2;  // SRAM slots (tiled: K/V tile buffers): with sram.ports each has banks / slots banks
  DramChannel& dram_;
  SramBuffers& sram_;
  sc_core::sc_semaphore& free_slots_;
  HeadSource heads_;  // the head model's heads, the next computed ahead with -j 2 and up
  ActivityRecorder* trace_ = nullptr;
  const ProjectionGate* gate_ = nullptr;
};

}  // namespace attnsim
