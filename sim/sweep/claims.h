#pragma once
// Claims: which runner is running a sweep point. Before running a point, a runner (the
// local `attnsim sweep` or a job line's `attnsim point`) creates DIR/claims/<hash>.json
// exclusively, holding its host, pid, the pid's start time and when it started; it
// removes the claim when the point is done or failed. So several runners on one or many
// hosts sharing DIR never run a point twice. A claim whose owner is a dead process on
// this host is stale and taken over; a claim from another host is respected (its owner's
// liveness cannot be seen from here): remove the file by hand when that runner is gone.
#include "sim/sweep/sweep_dir.h"

#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>

namespace attnsim {

inline constexpr const char* kSweepClaimSchema = "attnsim.sweep-claim/1";

struct ClaimOwner {
  std::string host;
  pid_t pid = 0;
  uint64_t pid_start = 0;  // the process's start time (/proc/<pid>/stat), 0 when unknown
  std::string started;     // when the claim was made, ISO 8601 UTC
  std::string text() const;  // "pid 123 on host since 2024-01-02T03:04:05Z"
};

// Whether `pid` is a live process on this host; with `start` (non-zero), the same process
// as then, not a later one that reused the pid.
bool local_process_alive(pid_t pid, uint64_t start = 0);

enum class ClaimState {
  claimed,     // ours now
  held_local,  // by a live process on this host
  held_other,  // by another host, or by an owner the file does not name
  stale,       // by a dead process on this host (claim_holder only)
};

struct ClaimResult {
  ClaimState state;
  std::optional<ClaimOwner> owner;  // the holder, when held and the claim names it
};

// Claims DIR/claims/<hash>.json for this process, taking over a stale claim (dead owner on
// this host). Prints one line on stderr when it takes one over.
ClaimResult claim_point(const SweepDir& dir, const std::string& hash);
// The current holder of a point's claim (held_local, held_other or stale); nullopt when
// there is none.
std::optional<ClaimResult> claim_holder(const SweepDir& dir, const std::string& hash);
// Removes this process's claim on the point (no other's).
void release_point(const SweepDir& dir, const std::string& hash);

}  // namespace attnsim
