#pragma once
// Write-back: writes each output row to DRAM (part of module `dram` in the stats) and
// hands the finished row to the row sink (filter statistics, quality metrics).
//
// Timing rule: a row's ceil(d * av_unit.output_bits / 8) bytes are reserved on the DRAM
// channel when the row is ready; the write-back waits until the channel has taken them
// (waiting behind other transfers counts as `dram` stall). The write is posted: its data
// lands dram.latency_cycles after the transfer ends. After the last row of a layer the
// write-back waits until every write of the layer has landed and then releases the next
// layer (LayerBarrier). The run ends when the last write of the last layer lands.
// K/V tiling: only a row's last part is written (its earlier parts end in the AV unit).
#include "arch/dma.h"
#include "arch/dram.h"
#include "arch/pipeline.h"

#include <systemc>

#include <functional>

namespace attnsim {

class ActivityRecorder;

class Writeback : public sc_core::sc_module {
 public:
  sc_core::sc_fifo_in<RowToken> row_in;

  Writeback(sc_core::sc_module_name name, int output_bits, DramChannel& dram, LayerBarrier& barrier,
            RowSink& sink);
  // Activity tracing (arch/activity_trace.h); null when off.
  void set_tracer(ActivityRecorder* t) { trace_ = t; }

 private:
  void run();
  void trace_transfer(const HeadWork& w, int row, Cycles requested, Cycles start, Cycles end);
  int output_bits_;
  DramChannel& dram_;
  LayerBarrier& barrier_;
  RowSink& sink_;
  ActivityRecorder* trace_ = nullptr;
};

}  // namespace attnsim
