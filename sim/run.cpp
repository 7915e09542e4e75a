// One whole run: open the trace, simulate, compute energy, assemble the stats; with a
// skim controller, the same config without it simulated alongside in a forked child
// (SystemC allows one simulation per process).
#include "sim/run.h"

#include "core/errors.h"
#include "sim/layer_plan.h"
#include "sim/memory_estimate.h"

#include "sim/stats.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <sys/wait.h>
#include <future>
#include <thread>
#include <unistd.h>

namespace attnsim {

namespace {

// The same config with the skim controller off, simulated in a child process forked
// before this process elaborates its own design (SystemC allows one per process).
// Returns the read end of a pipe that will carry {"cycles": ..., "energy_pj": ...}.
struct Baseline {
  pid_t pid = -1;
  int fd = -1;
};

// The same config with the skim controller off.
Config no_skim_config(const Config& c) {
  json off = c.resolved;
  off["skim_controller"]["mode"] = "off";
  return resolve_config(off, c.origin);
}

// The run's estimate; with skimming the forked no-skim baseline runs alongside and adds its own.
MemoryEstimate run_memory(const Config& c, const Trace& trace, const RunPlan& plan, int threads, bool masks) {
  MemoryEstimate e = estimate_run_memory(c, trace, plan, threads, masks);
  if (c.skim_controller.mode == SkimMode::off) return e;
  const Config off = no_skim_config(c);
  const double baseline = estimate_run_memory(off, trace, plan_run(off, trace), threads, false).bytes;
  e.parts.push_back({"no-skim baseline", baseline});
  e.bytes += baseline;
  return e;
}

Baseline start_no_skim_baseline(const Config& c, const Trace& trace, const TechTable& tech, int threads) {
  const Config off_config = no_skim_config(c);
  int fds[2];
  if (pipe(fds) != 0) throw SimulationError("cannot create a pipe for the no-skim baseline");
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw SimulationError("cannot fork the no-skim baseline");
  if (pid == 0) {
    close(fds[0]);
    std::string msg;
    int code = 0;
    try {
      Metrics metrics(trace.layers(), false);
      SimOptions options;
      options.threads = threads;
      const SimOutcome o = simulate(off_config, trace, metrics, options);
      const double e = total_energy(compute_energy(tech, o.modules, energy_context(off_config, o.config, o.total, o.static_factor)));
      msg = json{{"cycles", o.total.count()}, {"energy_pj", e}}.dump();
    } catch (const std::exception& e) {
      // The class travels with the message, so that the parent fails as the child did.
      const auto* classed = dynamic_cast<const Error*>(&e);
      msg = json{{"error", e.what()}, {"class", classed ? static_cast<int>(classed->error_class()) : -1}}
                .dump(-1, ' ', false, json::error_handler_t::replace);
      code = 1;
    }
    size_t done = 0;
    while (done < msg.size()) {
      const ssize_t w = write(fds[1], msg.data() + done, msg.size() - done);
      if (w <= 0) break;
      done += static_cast<size_t>(w);
    }
    close(fds[1]);
    _exit(code);
  }
  close(fds[1]);
  return {pid, fds[0]};
}

json finish_no_skim_baseline(const Baseline& b) {
  std::string text;
  char buf[4096];
  ssize_t r;
  while ((r = read(b.fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(r));
  close(b.fd);
  int status = 0;
  waitpid(b.pid, &status, 0);
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw SimulationError("the no-skim baseline run died without a result");
  if (j.contains("error")) {
    const std::string message = "no-skim baseline: " + j["error"].get<std::string>();
    const int c = j.value("class", -1);
    if (c < 0) throw std::runtime_error(message);
    throw Error(static_cast<ErrorClass>(c), message);
  }
  return j;
}

}  // namespace

RunReport run_simulation(const Config& c, const std::string& trace_path, int threads,
                         const std::function<void(uint64_t, uint64_t)>& on_progress, const TraceOptions* tracing,
                         bool masks, const MemoryCap& memory_cap) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const auto start = std::chrono::steady_clock::now();
  const Trace trace(trace_path);
  // Checked before anything runs; the no-skim child below gets SimOptions of its own.
  std::unique_ptr<KeepMasks> recorder = masks ? std::make_unique<KeepMasks>(c, trace) : nullptr;
  const TechTable tech = TechTable::load(c.energy.tech);
  const bool skimming = c.skim_controller.mode != SkimMode::off;
  // A config that does not fit the trace, or a run too large for the memory cap, fails
  // here, before anything runs (or forks).
  const RunPlan plan = plan_run(c, trace);
  check_memory_cap(run_memory(c, trace, plan, threads, masks), memory_cap.bytes, memory_cap.source, trace_path);
  Baseline baseline;
  if (skimming) baseline = start_no_skim_baseline(c, trace, tech, threads);
  // The trace's sha256 (for the stats) is hashed beside the simulation, not before it
  // (after the fork: the no-skim child never sees the thread).
  std::future<std::string> sha256 = std::async(std::launch::async, [&trace] { return trace.sha256(); });
  Metrics metrics(trace.layers(), c.quality.enabled, c.candidates.source != "all");
  SimOutcome out;
  try {
    SimOptions options;
    options.threads = threads;
    options.on_progress = on_progress;
    options.tracing = tracing;
    options.decisions = recorder.get();
    out = simulate(c, trace, metrics, options);
  } catch (...) {
    if (skimming) {
      kill(baseline.pid, SIGKILL);
      close(baseline.fd);
      waitpid(baseline.pid, nullptr, 0);
    }
    throw;
  }
  const auto energy = compute_energy(tech, out.modules, energy_context(c, out.config, out.total, out.static_factor));
  const nlohmann::json trace_info = {
      {"path", trace_path}, {"sha256", sha256.get()}, {"model", trace.model()}};
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  nlohmann::json stats = make_stats(c, trace_info, out, energy, metrics, wall);
  stats["layers"] = layers_json(c, tech, out);
  if (skimming) stats["skim"] = skim_json(out, trace, finish_no_skim_baseline(baseline));
  const double total_wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats["sim"] = {{"wall_seconds", total_wall},
                  {"cycles_per_second", total_wall > 0 ? out.total.count() / total_wall : 0.0}};
  return {stats, std::move(recorder)};
}

}  // namespace attnsim
