// `attnsim point`: check a sweep point, or run its command unless it is done.
#include "sim/sweep/point_job.h"

#include "core/file_io.h"
#include "sim/sweep/child.h"
#include "sim/sweep/claims.h"
#include "sim/sweep/launch.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>

namespace attnsim {

namespace fs = std::filesystem;

namespace {

// "<path>: no stats yet" or what is wrong with the file.
std::string not_done_reason(const SweepDir& dir, const std::string& hash, const PointStats& r) {
  return r.problem.empty() ? dir.stats(hash) + ": no stats yet" : r.problem;
}

// Waits for `pid`, killing it (SIGKILL) when it runs past `timeout_seconds` or when a
// stop signal arrives. Returns its wait status; `timed_out` says whether it was killed
// for time.
int wait_with_limit(pid_t pid, double timeout_seconds, bool& timed_out) {
  const auto start = std::chrono::steady_clock::now();
  timed_out = false;
  int status = 0;
  bool killed = false;
  while (true) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return status;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!killed && (stop_signal() || (timeout_seconds > 0 && elapsed > timeout_seconds))) {
      timed_out = !stop_signal();
      kill(pid, SIGKILL);
      killed = true;
    }
    usleep(20000);
  }
}

// Runs the job's command and says how it went (see run_point_job).
int run_command(const PointJob& job) {
  const std::string stats = job.dir.stats(job.hash);
  std::error_code ignored;
  fs::remove(stats, ignored);  // an incomplete file: never a result
  StopSignals signals;
  const pid_t pid = spawn_child(job.command, "");
  bool timed_out = false;
  const int status = wait_with_limit(pid, job.timeout_seconds, timed_out);
  fs::remove(temp_path_for(stats, pid), ignored);  // what a killed `attnsim run` left
  if (stop_signal()) return 128 + stop_signal();
  if (timed_out) {
    std::fprintf(stderr, "attnsim: point %s: timed out after %s s (--timeout)\n", job.hash.c_str(),
                 seconds_text(job.timeout_seconds).c_str());
    return 124;
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  if (WEXITSTATUS(status) != 0) return WEXITSTATUS(status);
  const PointStats result = read_point_stats(job.dir, job.hash);
  if (result.stats) return 0;
  std::fprintf(stderr, "attnsim: point %s: the command exited 0 without complete stats: %s\n", job.hash.c_str(),
               not_done_reason(job.dir, job.hash, result).c_str());
  return 1;
}

}  // namespace

int run_point_job(const PointJob& job) {
  if (point_done(job.dir, job.hash)) return 0;
  if (job.command.empty()) {
    std::fprintf(stderr, "attnsim: %s\n",
                 not_done_reason(job.dir, job.hash, read_point_stats(job.dir, job.hash)).c_str());
    return 1;
  }
  const ClaimResult claim = claim_point(job.dir, job.hash);
  if (claim.state != ClaimState::claimed) {  // another runner has it: its job, not ours
    std::fprintf(stderr, "attnsim: point %s: claimed by %s; not run\n", job.hash.c_str(),
                 claim.owner ? claim.owner->text().c_str() : "an owner the claim does not name");
    return 0;
  }
  struct Release {
    const PointJob& job;
    ~Release() { release_point(job.dir, job.hash); }
  } release{job};
  // Checked again under the claim: another runner may have finished it just before.
  const PointStats result = read_point_stats(job.dir, job.hash);
  if (result.stats) return 0;
  if (!result.problem.empty())
    std::fprintf(stderr, "attnsim: point %s: %s; running the point again\n", job.hash.c_str(), result.problem.c_str());
  return run_command(job);
}

}  // namespace attnsim
