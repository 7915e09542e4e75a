#include "arch/dma.h"

#include "arch/activity_trace.h"
#include "arch/kernel_time.h"
#include "arch/sc_threads.h"

#include <algorithm>

namespace attnsim {

Dma::Dma(sc_core::sc_module_name name, int bits, DramChannel& dram, SramBuffers& sram,
         sc_core::sc_semaphore& free_slots, const HeadModel& model)
    : sc_module(name),
      bits_(bits),
      dram_(dram),
      sram_(sram),
      free_slots_(free_slots),
      heads_(model) {
  SC_HAS_PROCESS(Dma);
  SC_THREAD(run);
}

void Dma::run() {
  run_thread_body([this] {
    while (true) {
      std::shared_ptr<const LayerContext> layer = layer_in->read();
      const int heads = layer->view.heads;
      for (int h = 0; h < heads; ++h) {
        if (gate_)
          while (!gate_->ready(layer->view.index, h)) sc_core::wait(gate_->advanced);
        const bool traced = trace_ && trace_->in_window(layer->view.index, h);
        const TraceTag tag{layer->view.index, h, -1};
        if (traced) {
          trace_->head_enters();
          trace_->open(TraceUnit::dma, kStall, "wait: free SRAM slot", tag);
        }
        const Cycles before_slot = now_cycles();
        free_slots_.wait();
        dram_.add_stall(now_cycles() - before_slot);

        std::shared_ptr<HeadWork> work = heads_.take(layer, h);
        work->last_head_of_layer = (h == heads - 1);
        if (work->tiled) {
          // K/V tiling: the head goes to the QK unit at once; it waits for each job's data.
          const Cycles before_push = now_cycles();
          head_out->write(work);
          dram_.add_stall(now_cycles() - before_push);
          load_tiles(*work, traced);
          if (traced) trace_->close(TraceUnit::dma);
          continue;
        }
        if (traced) trace_->open(TraceUnit::dma, kBusy, "load Q K V", tag);
        load_head(*work, traced);

        if (traced) trace_->open(TraceUnit::dma, kStall, "stall: head queue full", tag);
        const Cycles before_push = now_cycles();
        head_out->write(work);
        dram_.add_stall(now_cycles() - before_push);
        if (traced) trace_->close(TraceUnit::dma);
      }
    }
  });
}

// K/V tiling (arch/kv_tiling.h): per job (b, t) in order, Q block b before its block's
// first job (once its buffer is free: the QK unit has passed on the previous block), then
// K and V of tile t (once a tile buffer is free: the AV unit has finished a previous job).
// Waiting for a buffer is dram stall.
void Dma::load_tiles(HeadWork& work, bool traced) {
  TileState& ts = *work.tiled;
  const uint64_t row_bits = static_cast<uint64_t>(work.d()) * bits_;
  const TraceTag tag{work.layer_index(), work.head, -1};
  for (size_t j = 0; j < ts.jobs.size(); ++j) {
    const TileJob& job = ts.jobs[j];
    if (j == 0 || ts.jobs[j - 1].block != job.block) {
      if (traced) trace_->open(TraceUnit::dma, kStall, "wait: Q block buffer", tag);
      const Cycles before = now_cycles();
      ts.wait_for([&] { return ts.q_free; });
      dram_.add_stall(now_cycles() - before);
      ts.q_free = false;
      if (traced) trace_->open(TraceUnit::dma, kBusy, "load Q block", tag);
      const uint64_t bits = static_cast<uint64_t>(job.end_row - job.first_row) * row_bits;
      fill(work, ceil_div(bits, 8), job.end_row - job.first_row, 0, "read Q block", traced);
      sram_.write_bits(bits);
    }
    if (traced) trace_->open(TraceUnit::dma, kStall, "wait: K/V tile buffer", tag);
    const Cycles before = now_cycles();
    ts.wait_for([&] { return ts.tile_free > 0; });
    dram_.add_stall(now_cycles() - before);
    --ts.tile_free;
    if (traced) trace_->open(TraceUnit::dma, kBusy, "load K V tile", tag);
    const uint64_t bits = 2 * static_cast<uint64_t>(job.end_key - job.first_key) * row_bits;
    fill(work, ceil_div(bits, 8), 0, job.end_key - job.first_key, "read K V tile", traced);
    sram_.write_bits(bits);
    ++ts.loaded;
    ts.signal();
  }
}

void Dma::load_head(const HeadWork& work, bool traced) {
  const uint64_t bits = head_bits(work.n(), work.m(), work.d(), bits_);
  // Q, K, V into the SRAM slot, and the head's parameters for the candidate generator and
  // the low-rank unit (trees, directions, W) into those units' own buffers.
  fill(work, ceil_div(bits, 8) + work.param_bytes, work.n(), work.m(), "read Q K V", traced);
  sram_.write_bits(bits);
}

void Dma::fill(const HeadWork& work, uint64_t bytes, int q_rows, int kv_rows, const char* what, bool traced) {
  dram_.count_read(bytes);
  const uint64_t burst = static_cast<uint64_t>(dram_.params().burst_bytes);
  // With sram.ports each burst's words are written into the slot when its data has arrived
  // (end + latency) and the previous burst's writes are done: written = max(arrived,
  // previous written) + fill_write_cycles (arch/sram.h). The data is ready when the last
  // burst is written; without ports, when its data has arrived.
  uint64_t offset = 0;
  Cycles written{0}, arrived{0};
  while (bytes > 0) {
    const uint64_t b = std::min(burst, bytes);
    const DramChannel::Transfer t = dram_.reserve(now_cycles(), b);
    if (traced) trace_->interval(TraceUnit::dram, kBusy, t.start, t.end, what, {work.layer_index(), work.head, -1});
    wait_until(t.end);
    arrived = t.end + dram_.latency();
    written = max(arrived, written) +
              Cycles(sram_.fill_write_cycles(offset, b, q_rows, kv_rows, work.d(), bits_, slots_));
    offset += b;
    bytes -= b;
  }
  wait_cycles(dram_.latency());
  if (written > now_cycles()) {  // the fill waits for the slot's ports (dram stall)
    dram_.add_stall(written - now_cycles());
    wait_until(written);
  }
}

}  // namespace attnsim
