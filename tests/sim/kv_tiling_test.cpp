// K/V tiling (arch/kv_tiling.h): a hand-derived run of the tiny trace with forced tiling,
// and tiled against untiled runs of synthetic traces: tiling is a schedule, so the filter
// counts and the quality are identical; only the time and the traffic move.
#include "sim/config.h"
#include "sim/run.h"
#include "sim/stats.h"
#include "tests/support/cli.h"
#include "tests/support/tiny_trace.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

using namespace attnsim;
namespace fs = std::filesystem;

namespace {
// The tiny machine of accelerator_test.cpp in latte mode with segments of 2 keys (the
// case "a row longer than the reuse buffer is processed in segments"), tiled: key tiles
// of 2 keys (one segment each), query blocks of 2 rows.
std::vector<std::string> tiny_tiled(std::vector<std::string> more = {}) {
  std::vector<std::string> sets = {
      "qk_unit.type=\"bit_serial\"", "qk_unit.mode=\"latte\"", "qk_unit.lanes=2", "dram.bytes_per_cycle=4",
      "dram.latency_cycles=10", "dram.burst_bytes=2048", "sram.capacity_kib=1", "sram.banks=2",
      "sram.width_bits=64", "softmax.elements_per_cycle=2", "softmax.latency_cycles=1", "av_unit.macs_per_cycle=8",
      "av_unit.latency_cycles=1", "av_unit.output_bits=8", "comparator.margin=0", "reuse_buffer.entries=2",
      "kv_tiling.mode=\"always\"", "kv_tiling.key_tile=2", "kv_tiling.query_tile=2"};
  sets.insert(sets.end(), more.begin(), more.end());
  return sets;
}
}  // namespace

TEST_CASE("forced K/V tiling of the tiny trace: jobs, loads, parts and cycles by hand") {
  const Config c = resolve_config(json{{"schema", kConfigSchema}}, "test.json", tiny_tiled());
  const nlohmann::json s = run_simulation(c, test::write_tiny_trace(), 1).stats;
  // Geometry: a K/V tile is 2 keys x (K + V) x d = 4 x 8 bits = 128 bits; a query row 32
  // bits of Q + its state 4 x 8 + 3 x 32 = 128 bits. Two tiles and the block of 2 rows
  // (576 bits) fit in 1 KiB: 2 tile buffers. Jobs (block, tile): (0,0) (0,1) (1,0) (1,1),
  // block 0 = rows 0, 1, tile 0 = keys 0, 1.
  // Filter, as untiled (segments {k0,k1}, {k2,k3}, running max carried across the tiles):
  //   survivors per (row, tile): r0 1, 0; r1 1, 1; r2 1, 0; r3 1, 0.
  CHECK(s["filter"]["candidate_keys"] == 16);
  CHECK(s["filter"]["filtered_keys"] == 11);
  // Parts: pass 1 ceil(2/2)*4 = 4, pass 2 4 per part with a survivor, cmp ceil(2/64) + 1 = 2.
  // DMA: Q block 0 (8 bytes) [0,2) + 10; tile 0 (16 bytes) [12,16) + 10: job 0 loaded at
  //   26; tile 1 [26,30) + 10: job 1 at 40.
  // QK job 0 from 26: r0 P1 4 | max(P1(r1) 4, cmp 2) | P2 4: leaves 38; r1 max(0, 2) + 4:
  //   leaves 44 (comparator wait 2, the chain ends with the job). Job 1 from 44: r0 4 + 4 +
  //   0 -> 52; r1 2 + 4 -> 58 (wait 2). Block 0's Q buffer is free at 58.
  // Softmax (s survivors: ceil(s/2), latency 1) and AV (part s: ceil((s + 1 after the
  //   row's first part) * 4 / 8) = 1 cycle, latency 1): (r0,t0) 38->39, 40->41;
  //   (r1,t0) 44->45, 46->47 frees tile buffer 0; (r0,t1) 52, 53->54 ready 55;
  //   (r1,t1) 58->59, 60->61 ready 62, frees tile buffer 1.
  // DMA job 2 waits for the Q buffer 40 -> 58 (dram stall 18): Q block 1 [58,60) + 10,
  //   tile 0 [70,74) + 10: loaded at 84; job 3: tile 1 [84,88) + 10 -> 98.
  // QK job 2 from 84: r2 4 + 4 + 4 -> 96, r3 2 + 4 -> 102; job 3 from 102: r2 4 + 4 -> 110,
  //   r3 2 + 0 -> 112. Softmax/AV: (r2,t1) 110, 111->112 ready 113; (r3,t1) 112, 113->114
  //   ready 115.
  // Write-back (4 bytes = 1 cycle) after each row's last part: 55, 62, 113, 115 -> 116;
  //   the last write lands at 126.
  CHECK(s["cycles"]["total"] == 126);
  const auto& m = s["cycles"]["by_module"];
  CHECK(m["qk_unit"]["busy"] == 12 + 16 + 12 + 12);  // = untiled: the parts' segments are the row's
  CHECK(m["qk_unit"]["stall"] == 4 * 2);             // each job's last part waits for its compare
  CHECK(m["comparator"]["busy"] == 8);
  CHECK(m["softmax"]["busy"] == 5);
  CHECK(m["av_unit"]["busy"] == 8);
  CHECK(m["dram"]["busy"] == 2 * 2 + 4 * 4 + 4);
  CHECK(m["dram"]["stall"] == 18);
  const auto& k = s["counters"];
  // Q once per block (2 x 64 bits), K and V of each tile once per block (4 x 128 bits):
  // 640 bits, against 384 untiled.
  CHECK(k["dram"]["read_bits"] == 2 * 64 + 4 * 128);
  CHECK(k["dram"]["write_bits"] == 4 * 32);
  CHECK(k["qk_unit"]["bitplane_ops"] == 8 * 2 * 4 + 5 * 4);  // as untiled: pass 1 of 8 segments, pass 2 of 5 survivors
  CHECK(k["comparator"]["compares"] == 16);
  CHECK(k["softmax"]["exps"] == 5 + 4);       // survivors + one rescale per row's second part
  CHECK(k["softmax"]["reciprocals"] == 4);
  CHECK(k["av_unit"]["macs"] == 5 * 4 + 4 * 4);  // survivors' V rows + the rescales
  // SRAM (64-bit words): writes: Q blocks 1 word each, tiles 2 each, row state (128 bits)
  // after each row's first part: 2 + 8 + 8. Reads: QK per part (planes x 4 + q 32 bits):
  // parts with a survivor 80 bits = 2 words, without 64 bits = 1: 5 x 2 + 3 x 1; AV V rows
  // 5 x 1; row state before each second part 4 x 2.
  CHECK(k["sram"]["write_words"] == 2 + 8 + 8);
  CHECK(k["sram"]["read_words"] == 13 + 5 + 8);
}

TEST_CASE("forced K/V tiling with sram.ports: K reads and tile fills wait for the banks, by hand") {
  // The machine above with one port per bank. The two tile buffers are bank-disjoint, one
  // bank each of the 2 (arch/sram.h), and so is the Q block buffer: a row (d x B = 32
  // bits) is one 64-bit word, every row of a buffer in its one bank.
  const Config c = resolve_config(json{{"schema", kConfigSchema}}, "test.json", tiny_tiled({"sram.ports=1"}));
  const nlohmann::json s = run_simulation(c, test::write_tiny_trace(), 1).stats;
  // QK: a lane reads its key's 4 bits of a plane per lane-cycle (1 access); the tile's
  //   2 keys share the bank: 2 cycles per lane-cycle. Pass 1 of every part: 4 planes x 2 =
  //   8 (4 waited); pass 2 of one survivor: 4 (no wait). Compare 1 + latency 1 = 2.
  // DMA: Q block (2 rows, 2 words in one bank): [0,2) + 10 -> 12, written 14 (stall 2).
  //   K/V tile (4 rows, 4 words): [14,18) + 10 -> 28, written 32 (stall 4): job 0 at 32;
  //   tile 1 [32,36) -> 46, written 50 (stall 4): job 1 at 50.
  // QK job 0 from 32: r0 P1 8, r1 P1 8 (> compare 2), r0 P2 4 -> 52; r1 wait 2 + P2 4 -> 58.
  //   Job 1 from 58: r0 8 + 8 + 0 -> 74; r1 2 + 4 -> 80: block 0's Q buffer free at 80.
  // Softmax / AV (one survivor per part: its V read is 1 cycle <= the part's busy 1):
  //   (r0,t0) 52 -> 53, 54 -> 55; (r1,t0) 58, 60 -> 61 frees tile buffer 0; (r0,t1) 74,
  //   75 -> 76 ready 77; (r1,t1) 80, 82 -> 83 ready 84, frees tile buffer 1.
  // DMA job 2 waits for the Q buffer 50 -> 80 (stall 30): Q block 1 [80,82) -> 92, written
  //   94 (stall 2); tile 0 [94,98) -> 108, written 112 (stall 4); tile 1 [112,116) -> 126,
  //   written 130 (stall 4).
  // QK job 2 from 112: r2 8 + 8 + 4 -> 132, r3 2 + 4 -> 138; job 3 from 138: r2 8 + 8 + 0 ->
  //   154, r3 2 + 0 -> 156. Softmax/AV: (r2,t1) 154, 155 -> 156 ready 157; (r3,t1) 156,
  //   157 -> 158 ready 159. Write-back of the last row [159,160) lands at 170.
  CHECK(s["cycles"]["total"] == 170);
  const auto& m = s["cycles"]["by_module"];
  CHECK(m["qk_unit"]["busy"] == 52);           // the §4 formula, as without ports
  CHECK(m["qk_unit"]["stall"] == 4 * 2 + 8 * 4);  // compare waits + each part's pass-1 K waits
  CHECK(m["dram"]["busy"] == 2 * 2 + 4 * 4 + 4);
  CHECK(m["dram"]["stall"] == 2 * 2 + 4 * 4 + 30);
  CHECK(m["av_unit"]["busy"] == 8);
  CHECK(m["av_unit"]["stall"] == 0);
  // Filter and traffic as without ports.
  CHECK(s["filter"]["filtered_keys"] == 11);
  CHECK(s["counters"]["dram"]["read_bits"] == 2 * 64 + 4 * 128);
}

TEST_CASE("forced K/V tiling with query blocks: a block's parts in a tile share one K stream, by hand") {
  // The machine above with qk_unit.query_block = 2: each Q block is one query block.
  const Config c = resolve_config(json{{"schema", kConfigSchema}}, "test.json", tiny_tiled({"qk_unit.query_block=2"}));
  const nlohmann::json s = run_simulation(c, test::write_tiny_trace(), 1).stats;
  // Per job the block's two parts stream the union of their segments: the tile's 2 keys,
  //   pass 1 ceil(2/2) x 4 = 4; the comparator checks both rows' 4 keys: 1 + latency 1 = 2;
  //   pass 2 the union of their survivors (jobs 0-2: 1 or 2 keys, 4; job 3: none, 0).
  //   A job is one block: 4 + max(0, 2) + pass 2 (comparator wait 2).
  // DMA as without blocks: job 0 loaded at 26, job 1 at 40.
  // QK job 0 26 -> 36 (r0, r1 leave together), job 1 40 -> 50: Q buffer free at 50.
  // Softmax / AV: (r0,t0) 36 -> 37, 38 -> 39; (r1,t0) 37 -> 38, 39 -> 40 frees tile buffer 0;
  //   (r0,t1) 50 (no survivor), 51 -> 52 ready 53; (r1,t1) 50 -> 51, 52 -> 53 ready 54.
  // DMA job 2 waits for the Q buffer 40 -> 50 (stall 10): Q block 1 [50,52) -> 62; tile 0
  //   [62,66) -> 76; tile 1 [76,80) -> 90 (write-backs of r0, r1 at 53, 54 in between).
  // QK job 2 76 -> 86; job 3 90 -> 96 (4 + 2). Softmax / AV: (r2,t1) 96, 97 -> 98 ready 99;
  //   (r3,t1) 96, 98 -> 99 ready 100. Write-back of r3 [100,101) lands at 111.
  CHECK(s["cycles"]["total"] == 111);
  const auto& m = s["cycles"]["by_module"];
  CHECK(m["qk_unit"]["busy"] == 8 + 8 + 8 + 4);
  CHECK(m["qk_unit"]["stall"] == 4 * 2);
  CHECK(m["dram"]["stall"] == 10);
  const auto& k = s["counters"];
  CHECK(k["qk_unit"]["bitplane_ops"] == 8 * 2 * 4 + 5 * 4);  // every row's trees still work
  CHECK(s["filter"]["filtered_keys"] == 11);
}

namespace {

fs::path scratch() { return test::scratch_dir("kv_tiling"); }

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f);
}

nlohmann::json run_cli(const std::string& trace, const std::string& name, const std::string& sets) {
  const fs::path out = scratch() / (name + ".json");
  const test::CliResult r =
      test::run_attnsim("run -q -j 2 --trace " + trace + " --out " + out.string() + " " + sets);
  INFO(r.out);
  REQUIRE(r.code == 0);
  return read_json(out);
}

std::string synth(bool causal) {
  const fs::path t = scratch() / (causal ? "causal.safetensors" : "full.safetensors");
  const test::CliResult r = test::run_attnsim("trace synth --out " + t.string() +
                                              " --layers 2 --heads 2 --tokens 300 --head-dim 16 --seed 11" +
                                              (causal ? " --causal" : ""));
  REQUIRE(r.code == 0);
  return t.string();
}

void same_function(const nlohmann::json& untiled, const nlohmann::json& tiled) {
  CHECK(untiled["filter"] == tiled["filter"]);
  CHECK(untiled["quality"] == tiled["quality"]);
  CHECK(untiled["counters"]["qk_unit"] == tiled["counters"]["qk_unit"]);
  if (untiled["counters"].contains("comparator"))
    CHECK(untiled["counters"]["comparator"] == tiled["counters"]["comparator"]);
  if (untiled["counters"].contains("reuse_buffer"))
    CHECK(untiled["counters"]["reuse_buffer"] == tiled["counters"]["reuse_buffer"]);
  CHECK(untiled["counters"]["dram"]["write_bits"] == tiled["counters"]["dram"]["write_bits"]);
}

}  // namespace

TEST_CASE("tiled and untiled runs of one trace: identical filter counts and quality (latte, early_term, dense)") {
  for (bool causal : {false, true}) {
    const std::string trace = synth(causal);
    // 300 keys in tiles of 128 (segments of 64: running maximum carried across tiles),
    // query blocks of 70 rows; the untiled run has the same segments.
    const std::string base = "--set reuse_buffer.entries=64 --set comparator.gamma=0.05 ";
    const std::string tiled = "--set kv_tiling.mode=always --set kv_tiling.key_tile=128 --set kv_tiling.query_tile=70 ";
    for (const std::string mode : {"latte", "early_term", "dense"}) {
      INFO(mode << (causal ? " causal" : ""));
      const std::string sets = base + "--set qk_unit.mode=" + mode + " --set comparator.theta=-50 ";
      const nlohmann::json u = run_cli(trace, mode + "-u", sets);
      const nlohmann::json t = run_cli(trace, mode + "-t", sets + tiled);
      same_function(u, t);
      // Traffic: untiled Q, K, V once per head; tiled Q once, K and V of each tile once
      // per query block it is used by (5 blocks of <= 70 rows; causal: block b uses the
      // tiles up to its last row's).
      const uint64_t head_bits = 3ull * 300 * 16 * 8;
      CHECK(u["counters"]["dram"]["read_bits"] == 2 * 2 * head_bits);
      const uint64_t kv = 2ull * 16 * 8;  // K and V bits of one key
      uint64_t per_head = 300ull * 16 * 8;
      for (int b = 0; b < 5; ++b) {
        const int last = std::min(300, (b + 1) * 70) - 1;
        const int tiles = causal ? last / 128 + 1 : 3;
        for (int t = 0; t < tiles; ++t) per_head += kv * (std::min(300, (t + 1) * 128) - t * 128);
      }
      CHECK(t["counters"]["dram"]["read_bits"] == 2 * 2 * per_head);
      CHECK(t["cycles"]["total"] > u["cycles"]["total"]);
    }
  }
}

TEST_CASE("a head too large for the SRAM runs tiled in auto mode, and as if untiled when it fits") {
  const std::string trace = synth(false);
  // 300 x 3 x 16 bytes = 14.1 KiB per head: 8 KiB do not hold one, so the run is tiled.
  const std::string sets = "--set reuse_buffer.entries=64 --set comparator.gamma=0.05 ";
  const nlohmann::json big = run_cli(trace, "big", sets);
  const nlohmann::json small = run_cli(trace, "small", sets + "--set sram.capacity_kib=8");
  same_function(big, small);
  CHECK(small["counters"]["dram"]["read_bits"] > big["counters"]["dram"]["read_bits"]);
  // kv_tiling.key_tile absent = reuse_buffer.entries, and query_tile what fits: the same
  // run as with the values given. 8 KiB = 65536 bits; a tile 2 x 64 x 16 x 8 = 16384 bits;
  // a row 128 + 16 x 16 + 96 = 480 bits; two tiles + 64 rows fit: 2 buffers, 32768 / 480
  // = 68 rows per block.
  const nlohmann::json given =
      run_cli(trace, "given", sets + "--set sram.capacity_kib=8 --set kv_tiling.key_tile=64 --set kv_tiling.query_tile=68");
  CHECK(small["config_from_trace"] == nlohmann::json{{"kv_tiling.key_tile", 64}, {"kv_tiling.query_tile", 68}});
  CHECK_FALSE(given.contains("config_from_trace"));
  CHECK_FALSE(big.contains("config_from_trace"));
  CHECK(given["cycles"] == small["cycles"]);
  CHECK(given["counters"] == small["counters"]);
}

TEST_CASE("sram.ports: one K/V tile and one Q block wait for the banks exactly as the untiled head") {
  // key_tile >= M and query_tile = N: one job per head, whose parts are whole rows, in two
  // tile buffers as the untiled run has two slots (the same banks each). The QK unit's K
  // reads and the AV unit's V reads then wait exactly as untiled (the same busy and stall);
  // only the DMA's loads differ (Q, then K and V, each written into its own buffer).
  const std::string trace = synth(false);
  // With query blocks (Qb = 4) the job's blocks are the untiled blocks, so it holds for
  // them too (with reuse-buffer ports as well).
  const std::string tiled = "--set kv_tiling.mode=always --set kv_tiling.key_tile=320 --set kv_tiling.query_tile=300 ";
  for (const std::string qb : {"1", "4"})
  for (const std::string mapping : {"row", "striped"}) {
    for (const std::string mode : {"latte", "early_term", "dense"}) {
      INFO(mode << " " << mapping << " Qb " << qb);
      const std::string sets = "--set reuse_buffer.entries=64 --set comparator.gamma=0.05 --set comparator.theta=-50 "
                               "--set sram.banks=8 --set sram.width_bits=64 --set sram.ports=1 --set av_unit.macs_per_cycle=64 "
                               "--set reuse_buffer.ports=1 --set qk_unit.query_block=" + qb +
                               " --set sram.mapping=" + mapping + " --set qk_unit.mode=" + mode + " ";
      const std::string name = mode + mapping + qb;
      const nlohmann::json u = run_cli(trace, name + "-pu", sets);
      const nlohmann::json t = run_cli(trace, name + "-pt", sets + tiled);
      same_function(u, t);
      for (const char* unit : {"qk_unit", "av_unit"}) {
        CHECK(u["cycles"]["by_module"][unit]["busy"] == t["cycles"]["by_module"][unit]["busy"]);
        CHECK(u["cycles"]["by_module"][unit]["stall"] == t["cycles"]["by_module"][unit]["stall"]);
      }
      CHECK(u["cycles"]["by_module"]["qk_unit"]["stall"] > 0);  // the ports do bind
      CHECK(u["cycles"]["by_module"]["av_unit"]["stall"] > 0);
    }
  }
}

TEST_CASE("query blocks under K/V tiling: filter as untiled, Q blocks of whole query blocks") {
  const std::string trace = synth(true);
  const std::string base = "--set reuse_buffer.entries=64 --set comparator.gamma=0.05 --set qk_unit.query_block=4 ";
  const nlohmann::json u = run_cli(trace, "qb-u", base);
  const nlohmann::json t =
      run_cli(trace, "qb-t", base + "--set kv_tiling.mode=always --set kv_tiling.key_tile=128 --set kv_tiling.query_tile=68");
  same_function(u, t);
  // A Q block that would cut a query block is refused; an absent one is rounded down to
  // whole query blocks (8 KiB: 68 rows fit, a multiple of 4; Qb = 8: 64).
  const fs::path out = scratch() / "qb-bad.json";
  const test::CliResult r = test::run_attnsim("run -q --trace " + trace + " --out " + out.string() + " " + base +
                                              "--set kv_tiling.mode=always --set kv_tiling.query_tile=70");
  CHECK(r.code != 0);
  CHECK(r.out.find("kv_tiling.query_tile: must be a multiple of qk_unit.query_block (4): a Q block holds whole query "
                   "blocks, got 70") != std::string::npos);
  CHECK_FALSE(fs::exists(out));
  const nlohmann::json eight = run_cli(trace, "qb-8", "--set reuse_buffer.entries=64 --set qk_unit.query_block=8 "
                                                      "--set sram.capacity_kib=8");
  CHECK(eight["config_from_trace"]["kv_tiling.query_tile"] == 64);
}
