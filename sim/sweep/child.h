#pragma once
// Child processes of a sweep: each point's `attnsim run` (from the local runner or from a
// job line's `attnsim point`) runs in a child that dies with its parent, and SIGINT or
// SIGTERM become a flag the parent polls, so it can stop its children and clean up.
#include <string>
#include <sys/types.h>
#include <vector>

#include <csignal>

namespace attnsim {

// fork + exec of `argv` (argv[0] a path, or a name looked up in PATH), stdout and stderr to `log` (kept when ""). The
// child dies with the parent (PR_SET_PDEATHSIG), so a killed parent leaves no orphan
// writing results later. Throws SweepError when it cannot fork.
pid_t spawn_child(const std::vector<std::string>& argv, const std::string& log);

// While alive, SIGINT and SIGTERM set stop_signal() instead of ending the process; the
// previous handlers come back when it goes.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {}, old_term_ {};
};
int stop_signal();  // the signal that arrived, 0 when none

}  // namespace attnsim
