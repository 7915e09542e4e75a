#pragma once
// Running a sweep locally: each pending point as its own `attnsim run` child process
// (SystemC allows one simulation per process), a few at a time, each with a time limit.
#include "sim/sweep/points.h"
#include "sim/sweep/sweep_dir.h"

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace attnsim {

struct SweepRunOptions {
  int jobs = 1;                    // children at a time
  double timeout_seconds = 3600;   // per point; the child is killed after it
  int threads_per_point = 1;       // `attnsim run --threads`
  std::string binary;              // the attnsim binary the children run
  bool retry_failed = true;        // rerun points with a failure record
  bool progress = false;           // draw the progress line on stderr
};

struct SweepRunTotals {
  size_t runs = 0;          // unique runnable points
  size_t done_before = 0;   // stats already there when the sweep started
  size_t done_now = 0;
  size_t done_elsewhere = 0; // finished by another runner while this one ran
  size_t failed = 0;        // failed or timed out in this sweep (here or by another runner)
  size_t failed_before = 0; // failure records kept (retry_failed = false)
  size_t interrupted = 0;   // killed by Ctrl-C (left pending)
  bool stopped = false;     // SIGINT or SIGTERM arrived
  // Points left to runners on other hosts: claim file and its owner ("pid 1 on h since t").
  std::vector<std::pair<std::string, std::string>> held_elsewhere;
  double wall_seconds = 0;
};

// Runs every pending point as a child process, at most `jobs` at a time, each under its
// claim (sim/sweep/claims.h): a point claimed by a live runner on this host is waited
// for, one claimed on another host left to it (held_elsewhere). A failed or timed-out
// point gets DIR/failed/<hash>.json and the sweep goes on. SIGINT/SIGTERM kill the
// children, remove their temp files, release their claims and return with `stopped` set.
SweepRunTotals run_sweep(const SweepDir& dir, const std::vector<SweepPoint>& points,
                         const SweepRunOptions& options);

}  // namespace attnsim
