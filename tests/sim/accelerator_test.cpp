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

nlohmann::json run(const std::vector<std::string>& sets, bool causal = false, float q_unit = 1.0f, int heads = 1) {
  const Config c = resolve_config(json{{"schema", kConfigSchema}}, "test.json", sets);
  return run_simulation(c, test::write_tiny_trace(causal, q_unit, heads), 1).stats;
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
nlohmann::json run_encoder(const std::string& dram_path, bool overlap = false) {
  std::vector<std::string> sets = tiny_machine("bit_parallel");
  sets.push_back("model.scope=\"encoder\"");
  sets.push_back("gemm_engine.dram_path=\"" + dram_path + "\"");
  sets.push_back(std::string("pipeline.overlap_gemm=") + (overlap ? "true" : "false"));
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

TEST_CASE("overlap_gemm with one head: the one projection job, the same numbers as without overlap") {
  // H = 1: the per-head job L0.qkv.h0 is the QKV GEMM 4 x 12 x 4, and the DMA starts when
  // it ends, as without overlap.
  const nlohmann::json s = run_encoder("shared", true);
  check_encoder_timing(s);
  CHECK(s["cycles"]["by_module"]["dram"]["busy"] == 12 + 4 + 64 + 24 + 84 + 48);
}

namespace {

// Two copies of the tiny head (H = 2, n = 4, d = 4: D = 8) on the tiny machine, with
// model.d_ff = 8, a 4 x 4 output-stationary GEMM engine with 8-bit operands and results,
// and bursts of 20 bytes (5 cycles at 4 bytes/cycle; the engine's too: 20 is a multiple
// of 4). The 1 KiB SRAM holds both heads (384 bits each): two slots.
//   GEMM jobs (one fold of 4 + 4 + T - 2 cycles per 4 x 4 output tile):
//     qkv.h<h> 4 x 12 x 8: 3 folds x 14 = 42 compute; A 32 + B 96 + C 48 = 176 bytes
//       (bursts 8 x 20 + 16: 44 cycles): alone 44 + 10 = 54, stall 12;
//     qkv      4 x 24 x 8 (no overlap): 6 folds x 14 = 84; 32 + 192 + 96 = 320 bytes:
//       80 + 10 = 90, stall 6;
//     out_proj, ffn1, ffn2, each 4 x 8 x 8: 2 folds x 14 = 28; 32 + 64 + 32 = 128 bytes:
//       32 + 10 = 42, stall 14. The three take 3 x 42 = 126 after the attention.
//   A head load: 48 bytes in bursts of 20, 20, 8 = 5, 5, 2 cycles, then 10 latency.
//   A head in SRAM at L (QK unit free): rows leave the QK unit at L+2, L+4, L+6, L+8 and
//   reach the write-back at L+8, L+10, L+12, L+14 (the dense bit-parallel case above), one
//   cycle of channel each, landing 10 later.
nlohmann::json run_two_heads(const std::string& dram_path, bool overlap) {
  std::vector<std::string> sets = tiny_machine("bit_parallel");
  for (const char* set : {"model.scope=\"encoder\"", "model.d_ff=8", "gemm_engine.rows=4", "gemm_engine.cols=4",
                          "gemm_engine.output_bits=8", "dram.burst_bytes=20"})
    sets.push_back(set);
  sets.push_back("gemm_engine.dram_path=\"" + dram_path + "\"");
  sets.push_back(std::string("pipeline.overlap_gemm=") + (overlap ? "true" : "false"));
  return run(sets, false, 1.0f, 2);
}

}  // namespace

TEST_CASE("without overlap_gemm two heads wait for the one QKV GEMM, by hand") {
  const nlohmann::json s = run_two_heads("shared", false);
  // qkv [0, 90). Head 0: bursts [90, 95), [95, 100), [100, 102), in SRAM at 112. Head 1
  // (second slot): [112, 117), [117, 122), then its third burst, requested at 122, goes
  // after head 0's row 0 (requested at 120, [122, 123): 2 cycles of dram stall):
  // [123, 125), in SRAM at 135. Head 0's row 1 (ready at 122) is requested at 123, when the
  // write-back is free: [125, 126), 2 more cycles of stall; rows 2, 3 at 126, 127.
  // Head 1 from 135: writes at 143, 145, 147, 149, the last landing at 160.
  // out_proj [160, 202), ffn1 [202, 244), ffn2 [244, 286).
  CHECK(s["cycles"]["total"] == 286);
  const auto& m = s["cycles"]["by_module"];
  CHECK(m["gemm_engine"]["busy"] == 84 + 3 * 28);
  CHECK(m["gemm_engine"]["stall"] == 6 + 3 * 14);
  CHECK(m["dram"]["busy"] == 80 + 3 * 32 + 2 * 12 + 8);  // GEMM, two head loads, 8 rows
  CHECK(m["dram"]["stall"] == 2 + 2);
}

TEST_CASE("overlap_gemm on the engine's own DRAM path: head 0's attention hides under projection 1, by hand") {
  const nlohmann::json s = run_two_heads("separate", true);
  // qkv.h0 [0, 54). The DMA, waiting since 0, loads head 0: [54, 59), [59, 64), [64, 66),
  // in SRAM at 76, while qkv.h1 runs [54, 108) on its own channel. Head 0's rows are
  // written at 84, 86, 88, 90 (nothing else on the channel). Head 1 when qkv.h1 ends:
  // [108, 113), [113, 118), [118, 120), in SRAM at 130; its writes at 138 .. 144, the last
  // landing at 155. out_proj [155, 197), ffn1 [197, 239), ffn2 [239, 281): 5 cycles sooner
  // than without overlap (286).
  CHECK(s["cycles"]["total"] == 281);
  const auto& m = s["cycles"]["by_module"];
  CHECK(m["gemm_engine"]["busy"] == 2 * 42 + 3 * 28);
  CHECK(m["gemm_engine"]["stall"] == 2 * 12 + 3 * 14);
  CHECK(m["dram"]["busy"] == 2 * 12 + 8);
  CHECK(m["dram"]["stall"] == 0);
  CHECK(s["counters"]["gemm_engine"]["macs"] == 2 * (4 * 12 * 8) + 3 * (4 * 8 * 8));
}

TEST_CASE("overlap_gemm on the shared channel: projection 1 contends with head 0's load and writes, by hand") {
  const nlohmann::json s = run_two_heads("shared", true);
  // qkv.h0: compute [0, 42); its bursts back to back [0, 44); data at 54: job [0, 54).
  // At 54 the DMA is released a delta cycle before the engine receives qkv.h1, so its
  // first burst goes first; then the two alternate, each requesting when its burst ends:
  //   DMA d1 [54, 59)   engine g1 [59, 64)   DMA d2 [64, 69)   engine g2 [69, 74)
  //   DMA d3 (8 B) [74, 76): head 0 in SRAM at 86;
  //   engine g3 [76, 81), g4 [81, 86), g5 [86, 91), g6 [91, 96).
  // Head 0's rows reach the write-back at 94, 96, 98, 100:
  //   row 0 at 94 behind g6: [96, 97) (dram stall 2); the engine asks for g7 at 96: [97, 102);
  //   row 1 at 97: [102, 103) (stall 5); g8 [103, 108); row 2 at 103: [108, 109) (stall 5);
  //   g9 (16 B) [109, 113); row 3 at 109: [113, 114) (stall 4).
  // qkv.h1's last burst ends at 113, its data is complete at 123: its compute ended at 96,
  // so it stalls 27 (12 alone). Head 1: [123, 128), [128, 133), [133, 135), in SRAM at 145;
  // its writes at 153 .. 159 meet nobody, the last landing at 170.
  // out_proj [170, 212), ffn1 [212, 254), ffn2 [254, 296): the contention costs 15 cycles
  // over the separate path (281), and here more than the overlap gains (286 without it).
  CHECK(s["cycles"]["total"] == 296);
  const auto& m = s["cycles"]["by_module"];
  CHECK(m["gemm_engine"]["busy"] == 2 * 42 + 3 * 28);  // compute cycles: as on every path
  CHECK(m["gemm_engine"]["stall"] == 12 + 27 + 3 * 14);
  CHECK(m["dram"]["busy"] == 2 * 44 + 3 * 32 + 2 * 12 + 8);
  CHECK(m["dram"]["stall"] == 2 + 5 + 5 + 4);
  CHECK(s["layers"][0]["cycles"]["end"] == 296);
}
