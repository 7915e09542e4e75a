// End-to-end runs of the SystemC model on hand-made traces whose cycles and counters are
// derived by hand in the comments. Each TEST_CASE elaborates one design: ctest runs each
// in its own process (SystemC allows one simulation per process).
#include "sim/config.h"
#include "sim/run.h"
#include "sim/stats.h"
#include "tests/support/tiny_trace.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace attnsim;

namespace {

// A small machine whose every number is easy to follow by hand.
std::vector<std::string> tiny_machine(const std::string& qk_type) {
  return {"qk_unit.type=\"" + qk_type + "\"", "qk_unit.mode=\"dense\"", "qk_unit.lanes=2",
          "dram.bytes_per_cycle=4", "dram.latency_cycles=10", "dram.burst_bytes=2048",
          "sram.capacity_kib=1", "sram.banks=2", "sram.width_bits=64",
          "softmax.elements_per_cycle=2", "softmax.latency_cycles=1",
          "av_unit.macs_per_cycle=8", "av_unit.latency_cycles=1", "av_unit.output_bits=8"};
}

nlohmann::json run(const std::vector<std::string>& sets, bool causal = false, float q_unit = 1.0f) {
  const Config c = resolve_config(json{{"schema", kConfigSchema}}, "test.json", sets);
  return run_simulation(c, test::write_tiny_trace(causal, q_unit), 1).stats;
}

}  // namespace

TEST_CASE("dense bit-parallel run: cycles, busy, stall and counters derived by hand") {
  const nlohmann::json s = run(tiny_machine("bit_parallel"));
  // DMA: Q, K, V = (4 + 2*4) * 4 elements * 8 bits = 384 bits = 48 bytes -> 12 cycles at
  //   4 B/cycle, [0, 12); +10 latency: the head is in SRAM at 22.
  // QK (bit-parallel, L = 2): ceil(4/2) = 2 cycles per row: rows leave at 24, 26, 28, 30.
  // softmax (2/cycle, latency 1): row 0 24->26 (ready 27), row 1 26->28 (29),
  //   row 2 28->30 (31), row 3 30->32 (33).
  // AV (16 MACs per row at 8/cycle = 2 cycles, latency 1): row 0 27->29 (30),
  //   row 1 29->31 (32), row 2 31->33 (34), row 3 33->35 (36).
  // write-back: 4 bytes = 1 cycle each: 30->31, 32->33, 34->35, 36->37; the last lands
  //   at 37 + 10 = 47, which ends the run.
  CHECK(s["cycles"]["total"] == 47);
  const auto& m = s["cycles"]["by_module"];
  CHECK(m["qk_unit"]["busy"] == 8);
  CHECK(m["softmax"]["busy"] == 8);
  CHECK(m["av_unit"]["busy"] == 8);
  CHECK(m["dram"]["busy"] == 12 + 4);
  for (const char* unit : {"qk_unit", "softmax", "av_unit", "dram"}) CHECK(m[unit]["stall"] == 0);
  CHECK_FALSE(m.contains("comparator"));
  CHECK_FALSE(m.contains("reuse_buffer"));

  const auto& c = s["counters"];
  CHECK(c["dram"]["read_bits"] == 384);
  CHECK(c["dram"]["write_bits"] == 4 * 4 * 8);
  CHECK(c["qk_unit"]["int8_macs"] == 4 * 4 * 4);
  // SRAM: DMA writes 384 bits = 6 words of 64 bits. Per row the QK unit reads q (32 bits)
  // and 4 keys (128 bits) = 160 bits = 3 words, the AV unit 4 value rows = 128 bits = 2 words.
  CHECK(c["sram"]["write_words"] == 6);
  CHECK(c["sram"]["read_words"] == 4 * (3 + 2));
  CHECK(c["softmax"]["exps"] == 16);
  CHECK(c["softmax"]["reciprocals"] == 4);
  CHECK(c["av_unit"]["macs"] == 64);

  CHECK(s["filter"]["candidate_keys"] == 16);
  CHECK(s["filter"]["filtered_keys"] == 0);
  CHECK(s["filter"]["exact_ratio"].get<double>() == 1.0);
  CHECK(s["quality"]["rel_error"].get<double>() == 0.0);
  CHECK(s["quality"]["mass_recall"].get<double>() == Approx(1.0).epsilon(1e-12));
  // Integer-valued floats with scale 1: quantization loses nothing.
  CHECK(s["quality"]["quant_error"].get<double>() == Approx(0.0).margin(1e-12));
  CHECK(s["warnings"].empty());
}

TEST_CASE("dense bit-serial run: B planes per tile of keys") {
  const nlohmann::json s = run(tiny_machine("bit_serial"));
  // QK: ceil(4/2) * 8 = 16 cycles per row: rows leave at 38, 54, 70, 86 (head in SRAM at 22).
  // softmax 2 cycles + 1, AV 2 cycles + 1, write-back 1 cycle + 10 latency after each:
  // the last row leaves QK at 86, softmax 86->88 (89), AV 89->91 (92), write 92->93, lands 103.
  CHECK(s["cycles"]["total"] == 103);
  CHECK(s["cycles"]["by_module"]["qk_unit"]["busy"] == 64);
  CHECK(s["counters"]["qk_unit"]["bitplane_ops"] == 4 * 4 * 8);
  CHECK(s["counters"]["qk_unit"]["adder_tree_inputs"] == 4 * 4 * 8 * 4);
  // Per row: q 32 bits + 32 bit-planes of 4 bits = 160 bits = 3 words; AV 2 words.
  CHECK(s["counters"]["sram"]["read_words"] == 4 * (3 + 2));
}

TEST_CASE("causal trace: query i sees keys 0..i") {
  const nlohmann::json s = run(tiny_machine("bit_parallel"), true);
  // candidates 1 + 2 + 3 + 4 = 10; exact_ratio over N(N+1)/2 = 10.
  CHECK(s["filter"]["candidate_keys"] == 10);
  CHECK(s["filter"]["exact_ratio"].get<double>() == 1.0);
  CHECK(s["counters"]["qk_unit"]["int8_macs"] == 10 * 4);
  // QK rows: ceil(1/2)=1, 1, 2, 2 cycles.
  CHECK(s["cycles"]["by_module"]["qk_unit"]["busy"] == 6);
  CHECK(s["counters"]["av_unit"]["macs"] == 40);
}

TEST_CASE("a full FIFO stalls the producer and the stall is reported") {
  // A slow AV unit (1 MAC/cycle: 16 cycles per row) behind a one-deep FIFO back-pressures
  // softmax, and through it the QK unit.
  std::vector<std::string> sets = tiny_machine("bit_parallel");
  sets.push_back("av_unit.macs_per_cycle=1");
  sets.push_back("pipeline.fifo_depth=1");
  const nlohmann::json s = run(sets);
  CHECK(s["cycles"]["by_module"]["av_unit"]["busy"] == 64);
  CHECK(s["cycles"]["by_module"]["softmax"]["stall"].get<uint64_t>() > 0);
  // AV: row 0 starts at 27 (as in the bit-parallel case), each row 16 cycles back to back
  // (the next row is always waiting): rows end at 43, 59, 75, 91; the last output is
  // ready at 92, written 92->93 and lands at 103.
  CHECK(s["cycles"]["total"] == 103);
}

TEST_CASE("latte run: estimates, survivors, comparator wait and reuse buffer by hand") {
  std::vector<std::string> sets = tiny_machine("bit_serial");
  sets[1] = "qk_unit.mode=\"latte\"";
  sets.push_back("comparator.margin=0");
  const nlohmann::json s = run(sets);
  // B = 8, P = 4: K keeps its top 4 planes, (k >> 4) << 4:
  //   k0 [1,2,3,127] -> [0,0,0,112]; k1 [-4,5,-6,7] -> [-16,0,-16,0];
  //   k2 [8,-9,10,-11] -> [0,-16,0,-16]; k3 [0,0,0,1] -> [0,0,0,0].
  // Estimates e = q . k_msb:
  //   q0 [127,0,-3,5]:  560, -1984, -80, 0   -> max 560 (k0)
  //   q1 [2,-127,1,0]:  0, -48, 2032, 0      -> max 2032 (k2)
  //   q2 [10,20,30,40]: 4480, -640, -960, 0  -> max 4480 (k0)
  //   q3 [-5,-6,7,8]:   896, -32, -32, 0     -> max 896 (k0)
  // margin 0 keeps only the maxima: one survivor per row, 12 of 16 keys filtered.
  CHECK(s["filter"]["candidate_keys"] == 16);
  CHECK(s["filter"]["filtered_keys"] == 12);
  CHECK(s["filter"]["exact_ratio"].get<double>() == 0.25);
  // Per row: pass 1 ceil(4/2)*4 = 8, pass 2 ceil(1/2)*4 = 4 -> busy 12. The comparator
  // needs cmp = ceil(4/64) + 1 latency = 2 cycles after a pass 1, hidden behind the next
  // row's pass 1 (8 cycles) except after the head's last row: QK stall 2.
  CHECK(s["cycles"]["by_module"]["qk_unit"]["busy"] == 48);
  CHECK(s["cycles"]["by_module"]["qk_unit"]["stall"] == 2);
  CHECK(s["cycles"]["by_module"]["comparator"]["busy"] == 4);
  CHECK(s["counters"]["qk_unit"]["bitplane_ops"] == 4 * (4 * 4 + 1 * 4));
  CHECK(s["counters"]["comparator"]["compares"] == 16);
  CHECK(s["counters"]["reuse_buffer"]["writes"] == 16);
  CHECK(s["counters"]["reuse_buffer"]["reads"] == 4);
  // Schedule P1(r0) | max(P1(r1), 2) | P2(r0) | max(P1(r2), 2) | P2(r1) | ...: from 22,
  // row 0 leaves after 8 + 8 + 4 = 20 (42), rows 1, 2 after 8 + 4 = 12 each (54, 66),
  // row 3 after max(0, 2) + 4 = 6 (72). Then softmax 1 cycle (72->73, ready 74), AV 4 MACs
  // = 1 cycle (74->75, ready 76), write 76->77, lands 87.
  CHECK(s["cycles"]["total"] == 87);
  // Each row keeps its top key: mass_recall is the mean of those keys' exact probability.
  CHECK(s["quality"]["mass_recall"].get<double>() < 1.0);
  CHECK(s["quality"]["rel_error"].get<double>() > 0.0);
}

TEST_CASE("a row longer than the reuse buffer is processed in segments") {
  std::vector<std::string> sets = tiny_machine("bit_serial");
  sets[1] = "qk_unit.mode=\"latte\"";
  sets.push_back("comparator.margin=0");
  sets.push_back("reuse_buffer.entries=2");
  const nlohmann::json s = run(sets);
  // Segments {k0,k1}, {k2,k3}; running max over the segments so far:
  //   q0: seg 1 max 560 keeps k0; seg 2 max stays 560: -80, 0 filtered -> 1 survivor
  //   q1: seg 1 max 0 keeps k0 (0); seg 2 max 2032 keeps k2 -> 2 survivors
  //   q2: seg 1 keeps k0; seg 2 none -> 1;  q3: seg 1 keeps k0; seg 2 none -> 1
  CHECK(s["filter"]["filtered_keys"] == 16 - 5);
  // busy per segment ceil(2/2)*4 + ceil(s/2)*4: q0 4+4 + 4+0 = 12; q1 8+8 = 16; q2, q3 12.
  CHECK(s["cycles"]["by_module"]["qk_unit"]["busy"] == 12 + 16 + 12 + 12);
  // The comparator (ceil(2/64) + 1 = 2 cycles) hides behind the next segment's pass 1
  // (ceil(2/2)*4 = 4 cycles) except after the head's last segment.
  CHECK(s["cycles"]["by_module"]["qk_unit"]["stall"] == 2);
}

TEST_CASE("a tiny gamma keeps every key and then the output equals dense") {
  std::vector<std::string> sets = tiny_machine("bit_serial");
  sets[1] = "qk_unit.mode=\"latte\"";
  // With q scaled by 1/128 (scale_q = 1/128, the same quantized values), gamma = 1e-30 gives
  // T = floor(69.08 * 2 * 128) = 17684, above every row's largest gap (5440, see below).
  sets.push_back("comparator.gamma=1e-30");
  const nlohmann::json s = run(sets, false, 1.0f / 128);
  CHECK(s["filter"]["filtered_keys"] == 0);
  CHECK(s["filter"]["exact_ratio"].get<double>() == 1.0);
  CHECK(s["quality"]["rel_error"].get<double>() == 0.0);
  CHECK(s["quality"]["mass_recall"].get<double>() == Approx(1.0).epsilon(1e-12));
  // Every key takes P + (B-P) = B planes, as in dense bit-serial.
  CHECK(s["counters"]["qk_unit"]["bitplane_ops"] == 4 * 4 * 8);
}

TEST_CASE("a gamma whose margin lies below every gap keeps only the row maxima") {
  // d = 4 and scales 1: T = floor(-ln(0.0001) * sqrt(4) / 1) = floor(18.42) = 18.
  std::vector<std::string> base = tiny_machine("bit_serial");
  base[1] = "qk_unit.mode=\"latte\"";
  std::vector<std::string> with_gamma = base;
  with_gamma.push_back("comparator.gamma=0.0001");
  nlohmann::json a = run(with_gamma);
  // Row gaps (max e - e): q0 {0, 2544, 640, 560},
  // q1 {2032, 2080, 0, 2032}, q2 {0, 5120, 5440, 4480}, q3 {0, 928, 928, 896}: a margin of
  // 18 keeps only the maxima, exactly as margin 0 does.
  CHECK(a["filter"]["filtered_keys"] == 12);
  CHECK(a["cycles"]["by_module"]["qk_unit"]["busy"] == 48);
  CHECK(a["cycles"]["total"] == 87);
}

TEST_CASE("early termination with independent lanes: plane counts, lane schedule and run by hand") {
  std::vector<std::string> sets = tiny_machine("bit_serial");
  sets[1] = "qk_unit.mode=\"early_term\"";
  sets.push_back("qk_unit.lane_sync=\"independent\"");
  sets.push_back("comparator.theta=1000");
  const nlohmann::json s = run(sets);
  // B = 8: after plane b the partial sum is p_b = q . ((k >> (8-b)) << (8-b)) and the planes
  // left can add at most u_b = qpos * (2^(8-b) - 1); a key stops after the first plane with
  // p_b + u_b < 1000. E.g. q0 = [127, 0, -3, 5] (qpos 132) and k1 = [-4, 5, -6, 7]:
  // plane 1 truncates k1 to [-128, 0, -128, 0], p_1 = -16256 + 384 = -15872,
  // u_1 = 132 * 127 = 16764, p_1 + u_1 = 892 < 1000: stopped after 1 plane.
  // Planes per key (scores in brackets; a key that runs all 8 planes survives iff >= 1000):
  //   q0: k0 7, k1 1, k2 8 (931: filtered), k3 5
  //   q1: k0 1, k1 1, k2 8 (1169: kept), k3 1
  //   q2: k0 8 (5220: kept), k1 4, k2 4, k3 5
  //   q3: k0 8 (1020: kept), k1 2, k2 2, k3 2
  // Two independent lanes, each key to the lane that frees first (lowest index on ties):
  //   q0: l0 7, l1 1, k2 -> l1 (1) ends 9, k3 -> l0 (7) ends 12: makespan 12 (lockstep 15)
  //   q1: l0 1, l1 1, k2 -> l0 ends 9, k3 -> l1 ends 2: makespan 9
  //   q2: l0 8, l1 4, k2 -> l1 ends 8, k3 -> l0 (tie at 8) ends 13: makespan 13
  //   q3: l0 8, l1 2, k2 -> l1 ends 4, k3 -> l1 ends 6: makespan 8 (lockstep 10)
  CHECK(s["cycles"]["by_module"]["qk_unit"]["busy"] == 12 + 9 + 13 + 8);
  CHECK(s["counters"]["qk_unit"]["bitplane_ops"] == 21 + 11 + 21 + 14);
  CHECK(s["counters"]["comparator"]["compares"] == 67);  // one bound check per plane
  CHECK(s["cycles"]["by_module"]["comparator"]["busy"] == 0);  // inside the lanes
  CHECK(s["filter"]["filtered_keys"] == 16 - 3);
  CHECK(s["filter"]["exact_ratio"].get<double>() == 4.0 / 16);  // four keys ran all 8 planes
  // Head in SRAM at 22; rows leave QK at 34, 43, 56, 64 with 0, 1, 1, 1 survivors.
  // softmax (2/cycle, latency 1): 34 (0 cycles, ready 35), 43->44 (45), 56->57 (58),
  //   64->65 (66). AV (4 MACs per survivor, 8/cycle, latency 1): 35 (ready 36), 45->46
  //   (47), 58->59 (60), 66->67 (68). Write-back 1 cycle each: 36->37, 47->48, 60->61,
  //   68->69; the last lands at 79.
  CHECK(s["cycles"]["total"] == 79);
  CHECK(s["cycles"]["by_module"]["qk_unit"]["stall"] == 0);
  CHECK(s["counters"]["softmax"]["reciprocals"] == 3);  // the row without survivor has none
}

namespace {

// The tiny machine on whole encoder layers: D = H x d = 4 and d_ff = 4D = 16, the GEMM
// engine at its defaults (32 x 32, os, 8-bit operands, 32-bit results, 512 KiB buffer).
nlohmann::json run_encoder(const std::string& dram_path) {
  std::vector<std::string> sets = tiny_machine("bit_parallel");
  sets.push_back("model.scope=\"encoder\"");
  sets.push_back("gemm_engine.dram_path=\"" + dram_path + "\"");
  return run(sets);
}

// The layer's GEMMs, M x N x K; on the 32 x 32 array each is one fold of
// R + C + T - 2 = 62 + K cycles; every job's A, B and C fit in the buffer, so each moves
// once; at 4 bytes/cycle and latency 10 a job needs ceil(bytes / 4) + 10 DRAM cycles:
//   qkv      4 x 12 x 4:  66 cycles; A 16 + B 48 + C 4*12*4 = 192 -> 256 B: 64 + 10 = 74, stall 8
//   out_proj 4 x 4 x 4:   66 cycles; 16 + 16 + 64 = 96 B: 24 + 10 = 34, no stall
//   ffn1     4 x 16 x 4:  66 cycles; 16 + 64 + 256 = 336 B: 84 + 10 = 94, stall 28
//   ffn2     4 x 4 x 16:  78 cycles; 64 + 64 + 64 = 192 B: 48 + 10 = 58, no stall
// qkv [0, 74); attention from 74 is the dense bit-parallel case above shifted by 74: its
// last write lands at 74 + 47 = 121; out_proj [121, 187); ffn1 [187, 281); ffn2 [281, 359).
void check_encoder_timing(const nlohmann::json& s) {
  CHECK(s["cycles"]["total"] == 359);
  CHECK(s["layers"][0]["cycles"]["start"] == 0);
  CHECK(s["layers"][0]["cycles"]["end"] == 359);
  const auto& m = s["cycles"]["by_module"];
  CHECK(m["gemm_engine"]["busy"] == 66 + 66 + 66 + 78);
  CHECK(m["gemm_engine"]["stall"] == 8 + 28);
  CHECK(m["dram"]["stall"] == 0);
  // DMA 48 B and write-back 4 x 4 B, plus the GEMM reads 16+48 + 16+16 + 16+64 + 64+64 and
  // writes 192 + 64 + 256 + 64 bytes.
  CHECK(s["counters"]["dram"]["read_bits"] == 8 * (48 + 304));
  CHECK(s["counters"]["dram"]["write_bits"] == 8 * (16 + 576));
}

}  // namespace

TEST_CASE("encoder scope on the engine's own DRAM path: the numbers before the shared channel, by hand") {
  const nlohmann::json s = run_encoder("separate");
  check_encoder_timing(s);
  // The engine's channel is its own: dram busy is the DMA's 12 and the write-back's 4.
  CHECK(s["cycles"]["by_module"]["dram"]["busy"] == 12 + 4);
}

TEST_CASE("encoder scope on the shared DRAM channel: the steps never meet, so only dram busy grows") {
  const nlohmann::json s = run_encoder("shared");
  // The layer's steps run one after another: no GEMM burst meets a DMA or write-back
  // transfer, every job's bursts run back to back (one 2048-byte burst holds them all) and
  // the timing is the separate path's. dram busy adds the engine's 64 + 24 + 84 + 48 cycles.
  check_encoder_timing(s);
  CHECK(s["cycles"]["by_module"]["dram"]["busy"] == 12 + 4 + 64 + 24 + 84 + 48);
}
