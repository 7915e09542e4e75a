// The memory cap (sim/memory_estimate.h): the estimate of a run's memory, term by term on
// a hand-made trace, and `attnsim run --max-memory` refusing a run over it up front with
// the figure it would need (exit 5, one line, no output).
#include "sim/layer_plan.h"
#include "sim/masks.h"
#include "sim/memory_estimate.h"
#include "sim/run.h"
#include "tests/support/cli.h"
#include "tests/support/tiny_trace.h"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>

namespace fs = std::filesystem;
using namespace attnsim;

namespace {

Config with(const std::vector<std::string>& overrides) {
  return resolve_config(json{{"schema", kConfigSchema}}, "<defaults>", overrides);
}

MemoryEstimate estimate(const Config& c, const Trace& t, bool masks = false) {
  return estimate_run_memory(c, t, plan_run(c, t), 1, masks);
}

double part(const MemoryEstimate& e, const std::string& what) {
  for (const MemoryPart& p : e.parts)
    if (p.what == what) return p.bytes;
  return 0;
}

}  // namespace

TEST_CASE("the estimate of a run, term by term, on the tiny trace (H = 1, N = M = 4, d = 4, F32)") {
  const Trace t(test::write_tiny_trace());
  const MemoryEstimate e = estimate(with({}), t);
  // q, k, v: (N + 2M) x d elements, 2 bytes quantized + 4 as floats, twice.
  CHECK(part(e, "layer tensors") == 2 * 1 * (4 + 2 * 4) * 4 * (2 + 4));
  // Two SRAM slots (double buffering) + the head in the write-back: 3 heads of 4 rows.
  CHECK(part(e, "heads in flight") == 3 * 4 * sizeof(RowOutcome));
  // V dequantized (M x d doubles), in latte mode K's MSB planes (M x d x 2 bytes), and the
  // float reference's K and V widened to double (2 x M x d x 8 bytes).
  CHECK(part(e, "head being loaded") == 4 * 4 * 8 + 4 * 4 * 2 + 2 * 4 * 4 * 8);
  CHECK(part(estimate(with({"quality.enabled=false"}), t), "head being loaded") == 4 * 4 * 8 + 4 * 4 * 2);
  // One thread, one row at a time, 80 bytes for each of its M keys.
  CHECK(part(e, "row scratch") == 4 * 80);
  CHECK(e.parts.size() == 4);
  // With two threads the head source computes up to two heads ahead: 5 heads in flight.
  const Config c = with({});
  CHECK(part(estimate_run_memory(c, t, plan_run(c, t), 2, false), "heads in flight") == 5 * 4 * sizeof(RowOutcome));
  CHECK(e.bytes == 576 + 12 * sizeof(RowOutcome) + 160 + 256 + 320);
  CHECK(e.layer == 0);

  // --masks adds the masks of the whole run: 4 bytes a row + one a key.
  CHECK(estimate(with({}), t, true).bytes - e.bytes == keep_masks_bytes(with({}), t));
  CHECK(keep_masks_bytes(with({}), t) == 4 * 4 + 1 * 4 * 4);
  // FCA keeps N x N doubles of head-mean probabilities.
  CHECK(part(estimate(with({"skim_controller.mode=fca"}), t), "FCA probabilities") == 4 * 4 * 8);
  // K/V tiling: one slot; per row and key tile a part, per row its tile span, per query
  // block and tile the job's last row (one tile of 4096 keys here).
  const Config tiled = with({"kv_tiling.mode=always"});
  CHECK(part(estimate(tiled, t), "heads in flight") ==
        2 * (4 * sizeof(RowOutcome) + 4 * 1 * sizeof(TilePart) + 4 * 8 + 1 * 1 * 4));
  // With query blocks too: a cost per query block and tile (2 blocks of 2 rows, 1 tile).
  CHECK(part(estimate(with({"kv_tiling.mode=always", "qk_unit.query_block=2"}), t), "heads in flight") ==
        2 * (4 * sizeof(RowOutcome) + 4 * 1 * sizeof(TilePart) + 4 * 8 + 1 * 1 * 4 + 2 * 1 * sizeof(QkRowCost)));
  // Query blocks: a cost per block; the row scratch of every row of a block.
  const MemoryEstimate blocks = estimate(with({"qk_unit.query_block=2"}), t);
  CHECK(part(blocks, "heads in flight") == 3 * (4 * sizeof(RowOutcome) + 2 * sizeof(QkRowCost)));
  CHECK(part(blocks, "row scratch") == 2 * 4 * 80);
  // Dense mode: no MSB planes.
  CHECK(part(estimate(with({"qk_unit.mode=dense"}), t), "head being loaded") == 4 * 4 * 8 + 2 * 4 * 4 * 8);
}

TEST_CASE("the estimate takes the largest layer, I8 tensors without floats") {
  const std::string path = (test::scratch_dir("memcap") / "two-layers.safetensors").string();
  SafetensorsWriter w;
  const auto zeros = [](size_t n) { return std::vector<float>(n, 1.0f); };
  for (const char* x : {"q", "k", "v"}) {
    w.add_float(std::string("layers.0.") + x, DType::I8, {2, 8, 4}, zeros(64));
    w.add_float(std::string("layers.1.") + x, DType::I8, {2, 16, 4}, zeros(128));
    for (int l = 0; l < 2; ++l) w.set_metadata("scale." + std::to_string(l) + "." + x, "0.5");
  }
  w.write(path);
  const Trace t(path);
  const MemoryEstimate e = estimate(with({"qk_unit.mode=dense"}), t);
  CHECK(e.layer == 1);
  CHECK(part(e, "layer tensors") == 2 * 2 * (16 + 2 * 16) * 4 * 2);
}

TEST_CASE("sizes as people write them, and as messages print them") {
  CHECK(parse_memory_size("4096") == 4096);
  CHECK(parse_memory_size("512MiB") == 512ull << 20);
  CHECK(parse_memory_size("512M") == 512ull << 20);
  CHECK(parse_memory_size("1.5G") == 3ull << 29);
  CHECK(parse_memory_size("2TiB") == 2ull << 40);
  CHECK(parse_memory_size("10B") == 10);
  CHECK(parse_memory_size("unlimited") == 0);
  for (const char* bad : {"", "-1", "x", "12x", "1KB", "0", "0.5", "1e30G", "G"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_memory_size(bad), std::invalid_argument);
  }
  CHECK(bytes_text(980) == "980 bytes");
  CHECK(bytes_text(1024) == "1.00 KiB");
  CHECK(bytes_text(100.25 * 1024 * 1024) == "100 MiB");
  CHECK(bytes_text(1.5 * (1ull << 30)) == "1.50 GiB");
  CHECK(bytes_text(37.0 * 1024) == "37.0 KiB");
}

TEST_CASE("the default cap is half the memory this process may use") {
  const uint64_t physical = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
  CHECK(default_memory_cap() > 0);
  CHECK(default_memory_cap() <= physical / 2);
}

TEST_CASE("attnsim run refuses a run over --max-memory up front, with the figure, exit 5, no output") {
  const fs::path dir = test::scratch_dir("memcap");
  const std::string trace = (dir / "small.safetensors").string();
  REQUIRE(test::run_attnsim("trace synth --out " + trace + " --layers 2 --heads 2 --tokens 48 --head-dim 16").code == 0);
  const fs::path out = dir / "stats.json";
  // The message the library gives for this run (one thread), checked whole below.
  const Config c = with({});
  const Trace t(trace);
  const MemoryEstimate e = estimate(c, t);
  std::string message;
  try {
    check_memory_cap(e, 1024, "--max-memory", trace);
  } catch (const SimulationError& error) {
    message = error.what();
  }
  CHECK(message == trace + ": the run needs an estimated " + bytes_text(e.bytes) + " (layer 0: layer tensors " +
                       bytes_text(part(e, "layer tensors")) + ", heads in flight " + bytes_text(part(e, "heads in flight")) +
                       ", head being loaded " + bytes_text(part(e, "head being loaded")) + ", row scratch " +
                       bytes_text(part(e, "row scratch")) + "), more than the memory cap of 1.00 KiB (--max-memory)");
  test::CliResult r = test::run_attnsim("run -j 1 --trace " + trace + " --out " + out.string() + " --max-memory 1KiB");
  CHECK(r.code == 5);
  CHECK(r.out == "attnsim: " + message + "\n");
  CHECK_FALSE(fs::exists(out));
  // The environment gives the cap to every point of a sweep.
  r = test::shell("ATTNSIM_MAX_MEMORY=1K " + std::string(ATTNSIM_BINARY) + " run -j 1 --trace " + trace + " --out " + out.string());
  CHECK(r.code == 5);
  CHECK(r.out.find("more than the memory cap of 1.00 KiB (ATTNSIM_MAX_MEMORY)\n") != std::string::npos);
  CHECK(test::count_lines(r.out) == 1);
  CHECK_FALSE(fs::exists(out));
  // A cap just above the figure runs; --max-memory wins over the environment.
  const std::string enough = std::to_string(static_cast<uint64_t>(e.bytes) + 1);
  r = test::shell("ATTNSIM_MAX_MEMORY=1K " + std::string(ATTNSIM_BINARY) + " run -q -j 1 --trace " + trace + " --out " +
                  out.string() + " --max-memory " + enough);
  CHECK(r.code == 0);
  CHECK(fs::exists(out));
  // Sizes that do not parse are usage errors naming where they came from.
  r = test::run_attnsim("run --trace " + trace + " --max-memory lots");
  CHECK(r.code == 2);
  CHECK(r.out == "attnsim: run: --max-memory: expected a size such as 512MiB, 8GiB or unlimited, got 'lots'\n");
  r = test::shell("ATTNSIM_MAX_MEMORY=-1 " + std::string(ATTNSIM_BINARY) + " run --trace " + trace);
  CHECK(r.code == 2);
  CHECK(r.out == "attnsim: run: ATTNSIM_MAX_MEMORY: expected a size such as 512MiB, 8GiB or unlimited, got '-1'\n");
}

TEST_CASE("with skimming the forked no-skim baseline counts too") {
  const Trace t(test::write_tiny_trace());
  const Config c = with({"skim_controller.mode=fca"});
  const std::string message = [&] {
    try {
      run_simulation(c, t.path(), 1, {}, nullptr, false, MemoryCap{1, "test"});
    } catch (const SimulationError& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  const Config off = with({"skim_controller.mode=off"});
  const double baseline = estimate(off, t).bytes;
  CHECK(message.find(", no-skim baseline " + bytes_text(baseline) + ")") != std::string::npos);
  CHECK(message.find("needs an estimated " + bytes_text(estimate(c, t).bytes + baseline)) != std::string::npos);
}
