#pragma once
// `attnsim point DIR HASH [--timeout S] [-- COMMAND...]`, the body of every line that
// --emit-jobs writes: whether a sweep point is done (its stats file complete), and with a
// command, running it unless the point is done, under a time limit.
#include "sim/sweep/sweep_dir.h"

#include <string>
#include <vector>

namespace attnsim {

struct PointJob {
  SweepDir dir;
  std::string hash;
  double timeout_seconds = 0;        // 0: no limit
  std::vector<std::string> command;  // empty: only check
};

// Exit status of `attnsim point`: without a command 0 when the point is done, 1 (and one
// line on stderr saying why) when not. With a command, run under the point's claim
// (sim/sweep/claims.h): 0 when the point was or is now done, or when another runner holds
// its claim (one line on stderr names it); the command's exit status when it fails, 124 when it ran over the time limit
// (killed, like coreutils timeout), 128 + N when killed by signal N (also when this
// process gets SIGINT or SIGTERM: the command is killed first); 1 when it exits 0
// without complete stats.
int run_point_job(const PointJob& job);

}  // namespace attnsim
