#include "arch/dma.h"

#include "arch/kernel_time.h"

#include <algorithm>

namespace attnsim {

Dma::Dma(sc_core::sc_module_name name, int bits, DramChannel& dram, SramBuffers& sram,
         sc_core::sc_semaphore& free_slots, HeadPreparer prepare_head)
    : sc_module(name),
      bits_(bits),
      dram_(dram),
      sram_(sram),
      free_slots_(free_slots),
      prepare_head_(std::move(prepare_head)) {
  SC_HAS_PROCESS(Dma);
  SC_THREAD(run);
}

void Dma::run() {
  while (true) {
    std::shared_ptr<const LayerContext> layer = layer_in->read();
    const int heads = layer->view.heads;
    for (int h = 0; h < heads; ++h) {
      const Cycles before_slot = now_cycles();
      free_slots_.wait();
      dram_.add_stall(now_cycles() - before_slot);

      std::shared_ptr<HeadWork> work = prepare_head_(layer, h);
      work->last_head_of_layer = (h == heads - 1);
      load_head(*work);

      const Cycles before_push = now_cycles();
      head_out->write(work);
      dram_.add_stall(now_cycles() - before_push);
    }
  }
}

void Dma::load_head(const HeadWork& work) {
  const uint64_t bits = head_bits(work.n(), work.m(), work.d(), bits_);
  uint64_t remaining = ceil_div(bits, 8);
  dram_.count_read(remaining);
  const uint64_t burst = static_cast<uint64_t>(dram_.params().burst_bytes);
  while (remaining > 0) {
    const uint64_t bytes = std::min(burst, remaining);
    wait_until(dram_.reserve(now_cycles(), bytes));
    remaining -= bytes;
  }
  wait_cycles(dram_.latency());
  sram_.write_bits(bits);
}

}  // namespace attnsim
