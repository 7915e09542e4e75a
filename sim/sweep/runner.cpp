// Running a sweep locally: each point is `attnsim run` in a child process (fork + exec;
// SystemC allows one simulation per process), at most N at a time, each with a time
// limit. The parent only schedules, polls and records; it never simulates.
#include "sim/sweep/runner.h"

#include "core/file_io.h"
#include "sim/sweep/child.h"
#include "sim/sweep/claims.h"
#include "sim/sweep/launch.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

namespace attnsim {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

namespace {

struct Child {
  const SweepPoint* point;
  SteadyClock::time_point start;
  bool timed_out = false;
};

double seconds_since(SteadyClock::time_point t) { return std::chrono::duration<double>(SteadyClock::now() - t).count(); }

// The last non-empty line of a child's log: `attnsim run` prints its error there. Only
// the log's last 64 KiB are read: a child may have printed without end.
std::string last_line(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return "";
  std::ifstream in(path, std::ios::binary);
  const uintmax_t size = fs::file_size(path, ec);
  if (!ec && size > 65536) in.seekg(static_cast<std::streamoff>(size - 65536));
  std::string line, last;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    const size_t cr = line.rfind('\r');  // progress bars redraw with \r
    if (cr != std::string::npos) line = line.substr(cr + 1);
    if (!line.empty()) last = line;
  }
  return last;
}

void remove_temp_file(const SweepDir& dir, const SweepPoint& p, pid_t pid) {
  std::error_code ignored;
  fs::remove(temp_path_for(dir.stats(p.hash), pid), ignored);
}

std::string duration_text(double s) {
  char buf[64];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

// Releases a point's claim when a child's outcome has been recorded, whichever way.
struct ClaimRelease {
  const SweepDir& dir;
  const std::string& hash;
  ~ClaimRelease() { release_point(dir, hash); }
};

class Scheduler {
 public:
  Scheduler(const SweepDir& dir, const SweepRunOptions& options) : dir_(dir), options_(options) {}

  SweepRunTotals run(const std::vector<SweepPoint>& points) {
    const SteadyClock::time_point start = SteadyClock::now();
    std::vector<const SweepPoint*> queue = pending(points);
    std::reverse(queue.begin(), queue.end());  // pop_back takes them in sweep order
    {
      StopSignals signals;
      while ((!queue.empty() || !running_.empty() || !waiting_.empty()) && !stop_signal()) {
        while (int(running_.size()) < std::max(1, options_.jobs) && !queue.empty() && !stop_signal()) {
          const SweepPoint* p = queue.back();
          queue.pop_back();
          start_point(p);
        }
        reap();
        enforce_time_limits();
        if (int(running_.size()) < std::max(1, options_.jobs)) recheck_waiting(queue);
        draw_progress(queue.size() + waiting_.size());
        if (!running_.empty() || !waiting_.empty()) usleep(20000);
      }
      if (stop_signal()) {
        totals_.stopped = true;
        stop_children();
      }
    }
    clear_progress();
    totals_.wall_seconds = seconds_since(start);
    return totals_;
  }

 private:
  // Unique runnable points without complete stats (nor a failure record, unless
  // retrying). An incomplete stats file is reported: the point runs again.
  std::vector<const SweepPoint*> pending(const std::vector<SweepPoint>& points) {
    std::vector<const SweepPoint*> out;
    for (const SweepPoint* p : unique_runnable(points)) {
      ++totals_.runs;
      failure_at_start_[p->hash] = failure_time(p->hash);
      const PointStats result = read_point_stats(dir_, p->hash);
      if (result.stats) {
        ++totals_.done_before;
      } else if (!options_.retry_failed && fs::exists(dir_.failure(p->hash))) {
        ++totals_.failed_before;
      } else {
        if (!result.problem.empty())
          std::fprintf(stderr, "attnsim: sweep: %s; running the point again\n", result.problem.c_str());
        out.push_back(p);
      }
    }
    return out;
  }

  // Runs the point unless another runner holds its claim (then it waits for a live one on
  // this host and leaves one of another host) or finished it meanwhile.
  void start_point(const SweepPoint* p) {
    const ClaimResult claim = claim_point(dir_, p->hash);
    if (claim.state == ClaimState::held_local) {
      waiting_.push_back(p);
    } else if (claim.state != ClaimState::claimed) {
      held_elsewhere(p, claim.owner);
    } else if (settled_elsewhere(p)) {
      release_point(dir_, p->hash);
    } else {
      std::error_code ignored;
      fs::remove(dir_.stats(p->hash), ignored);  // an incomplete file: never a result
      const pid_t pid =
          spawn_child(point_run_argv(options_.binary, dir_, *p, options_.threads_per_point), dir_.log(p->hash));
      running_[pid] = Child{p, SteadyClock::now()};
    }
  }

  // Done or failed by another runner since this sweep started: counted, not run again.
  bool settled_elsewhere(const SweepPoint* p) {
    if (point_done(dir_, p->hash)) {
      ++totals_.done_elsewhere;
      return true;
    }
    if (failure_time(p->hash) != failure_at_start_[p->hash]) {
      ++totals_.failed;
      return true;
    }
    return false;
  }

  void held_elsewhere(const SweepPoint* p, const std::optional<ClaimOwner>& owner) {
    totals_.held_elsewhere.emplace_back(dir_.claim(p->hash), owner ? owner->text() : "an owner it does not name");
  }

  // Points whose claim a live local runner held: once the claim is gone (or its owner
  // died), settled elsewhere or back in the queue.
  void recheck_waiting(std::vector<const SweepPoint*>& queue) {
    if (waiting_.empty() || seconds_since(last_recheck_) < 0.1) return;
    last_recheck_ = SteadyClock::now();
    std::vector<const SweepPoint*> still;
    for (const SweepPoint* p : waiting_) {
      const std::optional<ClaimResult> holder = claim_holder(dir_, p->hash);
      if (holder && holder->state == ClaimState::held_local) still.push_back(p);
      else if (holder && holder->state == ClaimState::held_other) held_elsewhere(p, holder->owner);
      else if (!settled_elsewhere(p)) queue.push_back(p);
    }
    waiting_ = std::move(still);
  }

  std::optional<fs::file_time_type> failure_time(const std::string& hash) const {
    std::error_code ec;
    const fs::file_time_type t = fs::last_write_time(dir_.failure(hash), ec);
    return ec ? std::nullopt : std::optional<fs::file_time_type>(t);
  }

  void reap() {
    int status = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      const auto it = running_.find(pid);
      if (it == running_.end()) continue;
      finish(pid, it->second, status);
      running_.erase(it);
    }
  }

  void finish(pid_t pid, const Child& c, int status) {
    const double wall = seconds_since(c.start);
    remove_temp_file(dir_, *c.point, pid);
    const bool exited_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const PointStats result = read_point_stats(dir_, c.point->hash);
    const ClaimRelease release{dir_, c.point->hash};
    if (exited_ok && !c.timed_out && result.stats) {
      std::error_code ignored;
      fs::remove(dir_.failure(c.point->hash), ignored);  // an earlier failure is superseded
      ++totals_.done_now;
      run_seconds_ += wall;
      return;
    }
    if (stop_signal() && !c.timed_out) {  // killed by the terminal's Ctrl-C: not a failure
      ++totals_.interrupted;
      return;
    }
    // A child that exits 0 without complete stats failed all the same.
    record_failure(*c.point, status, c.timed_out, wall, exited_ok && !c.timed_out ? result.problem : "");
    ++totals_.failed;
    run_seconds_ += wall;
  }

  // `error`: the failure's reason when known, otherwise taken from the child's log.
  void record_failure(const SweepPoint& p, int status, bool timed_out, double wall, std::string error) {
    json f = {{"schema", kSweepFailureSchema},
              {"hash", p.hash},
              {"trace", p.trace_path},
              {"config", dir_.config(p.hash)},
              {"log", dir_.log(p.hash)},
              {"timed_out", timed_out},
              {"exit_code", WIFEXITED(status) ? json(WEXITSTATUS(status)) : json()},
              {"signal", WIFSIGNALED(status) ? json(WTERMSIG(status)) : json()},
              {"wall_seconds", wall}};
    if (error.empty() && timed_out) error = "timed out after " + seconds_text(options_.timeout_seconds) + " s (--timeout)";
    if (error.empty()) error = last_line(dir_.log(p.hash));
    if (error.empty())
      error = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                  : "exit code " + std::to_string(WEXITSTATUS(status)) + " without a message";
    f["error"] = error;
    json command = json::array();
    for (const std::string& a : point_run_argv(options_.binary, dir_, p, options_.threads_per_point)) command.push_back(a);
    f["command"] = command;
    write_file_atomically(dir_.failure(p.hash), f.dump(2) + "\n");
  }

  void enforce_time_limits() {
    for (auto& [pid, c] : running_)
      if (!c.timed_out && seconds_since(c.start) > options_.timeout_seconds) {
        kill(pid, SIGKILL);
        c.timed_out = true;
      }
  }

  // Ctrl-C or SIGTERM: kill every child, wait for them, remove their temp files. Points
  // that finished before stay; the killed ones remain pending for the next run.
  void stop_children() {
    for (auto& [pid, c] : running_) kill(pid, SIGKILL);
    for (auto& [pid, c] : running_) {
      int status = 0;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      remove_temp_file(dir_, *c.point, pid);
      // A point whose stats were renamed into place just before the kill is complete.
      if (point_done(dir_, c.point->hash)) ++totals_.done_now;
      else ++totals_.interrupted;
      release_point(dir_, c.point->hash);
    }
    running_.clear();
  }

  void draw_progress(size_t queued) {
    if (!options_.progress) return;
    const size_t finished = totals_.done_now + totals_.failed;
    const size_t remaining = queued + running_.size();
    std::string eta = "?";
    if (finished > 0) {
      const double per_point = run_seconds_ / finished;
      eta = duration_text(per_point * remaining / std::max(1, options_.jobs));
    }
    char line[160];
    std::snprintf(line, sizeof line, "sweep: %zu/%zu done, %zu failed, %zu remaining (%zu running), ETA %s",
                  totals_.done_before + totals_.done_now + totals_.done_elsewhere, totals_.runs, totals_.failed + totals_.failed_before,
                  remaining, running_.size(), eta.c_str());
    if (line == last_line_) return;  // redraw only on change, not on every poll
    std::fprintf(stderr, "\r%-90s", line);
    last_line_ = line;
    drawn_ = true;
  }

  void clear_progress() {
    if (drawn_) std::fprintf(stderr, "\r%100s\r", "");
  }

  const SweepDir& dir_;
  const SweepRunOptions& options_;
  std::map<pid_t, Child> running_;
  std::vector<const SweepPoint*> waiting_;  // claimed by a live runner on this host
  SteadyClock::time_point last_recheck_{};
  std::map<std::string, std::optional<fs::file_time_type>> failure_at_start_;
  SweepRunTotals totals_;
  double run_seconds_ = 0;
  bool drawn_ = false;
  std::string last_line_;
};

}  // namespace

SweepRunTotals run_sweep(const SweepDir& dir, const std::vector<SweepPoint>& points, const SweepRunOptions& options) {
  if (options.binary.empty()) throw SweepError("sweep: no attnsim binary to run the points", ErrorClass::usage);
  return Scheduler(dir, options).run(points);
}

}  // namespace attnsim
