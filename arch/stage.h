#pragma once
// The shared shape of the units that take one job at a time from an input FIFO and pass it
// on (softmax, AV unit, skim controller, GEMM engine, candidate stage): one SC_THREAD that
//
//   reads a job  ->  waits until the producer's pipeline delivers it (rows carry `ready`)
//   -> begin(job): the unit's rule gives the busy cycles (and counts what it starts)
//   -> is busy that long  ->  end(job): what follows the busy part (counting, a DRAM
//   transfer, a memory stall, releasing an SRAM slot)  ->  the output is ready `latency`
//   cycles later  ->  writes it on (time blocked on a full output FIFO is stall).
//
// A unit derives from Stage<Job>, states its rule in begin() and end(), and keeps its own
// counters; busy and stall cycles are kept here. Tracing (arch/activity_trace.h) draws the
// busy part and the output stall for the unit; end() draws whatever it adds.
#include "arch/activity_trace.h"
#include "arch/kernel_time.h"
#include "arch/sc_threads.h"
#include "arch/pipeline.h"
#include "core/cycles.h"

#include <systemc>

#include <string>
#include <type_traits>

namespace attnsim {

// What begin() decides for one job.
struct StageWork {
  Cycles busy{0};
  std::string what;  // label of the busy span in traces
  TraceTag tag;      // what the job belongs to
};

template <class Job>
class Stage : public sc_core::sc_module {
 public:
  sc_core::sc_fifo_in<Job> in;
  sc_core::sc_fifo_out<Job> out;

  // Activity tracing; null when off.
  void set_tracer(ActivityRecorder* t) { trace_ = t; }
  uint64_t busy_cycles() const { return busy_; }
  uint64_t stall_cycles() const { return stall_; }

 protected:
  // `latency`: cycles from the end of the busy part until the output is ready for the
  // next unit (rows only); `stall_label` names the output stall in traces.
  Stage(sc_core::sc_module_name name, TraceUnit unit, Cycles latency, std::string stall_label)
      : sc_core::sc_module(name), unit_(unit), latency_(latency), stall_label_(std::move(stall_label)) {
    SC_HAS_PROCESS(Stage);
    SC_THREAD(run);
  }

  virtual StageWork begin(Job& job) = 0;
  // After the busy part. `traced`: the job is in the trace window.
  virtual void end(Job& /*job*/, const StageWork& /*work*/, bool /*traced*/) {}

  void add_stall(Cycles c) { stall_ += c.count(); }
  ActivityRecorder* tracer() const { return trace_; }
  TraceUnit trace_unit() const { return unit_; }

 private:
  void run() {
    run_thread_body([this] { loop(); });
  }

  void loop() {
    while (true) {
      Job job = in->read();
      wait_until_ready(job);
      const StageWork work = begin(job);
      const bool traced = trace_ && trace_->covers(work.tag);
      if (traced) trace_->interval(unit_, kBusy, now_cycles(), now_cycles() + work.busy, work.what, work.tag);
      wait_cycles(work.busy);
      busy_ += work.busy.count();
      end(job, work, traced);
      set_ready(job);
      if (traced) trace_->open(unit_, kStall, stall_label_, work.tag);
      const Cycles before = now_cycles();
      out->write(job);
      stall_ += (now_cycles() - before).count();
      if (traced) trace_->close(unit_);
    }
  }

  // Rows travel with the time their producer's pipeline delivers them; jobs do not.
  void wait_until_ready(const Job& job) {
    if constexpr (std::is_same_v<Job, RowToken>) {
      if (job.ready > sc_core::sc_time_stamp()) sc_core::wait(job.ready - sc_core::sc_time_stamp());
    }
  }
  void set_ready(Job& job) {
    if constexpr (std::is_same_v<Job, RowToken>) job.ready = sc_core::sc_time_stamp() + to_sc_time(latency_);
  }

  TraceUnit unit_;
  Cycles latency_;
  std::string stall_label_;
  uint64_t busy_ = 0, stall_ = 0;
  ActivityRecorder* trace_ = nullptr;
};

}  // namespace attnsim
