#pragma once
// Launching points: the `attnsim run` command line of a point, self-contained shell job
// lines (GNU parallel and the like) and Slurm job-array scripts running them.
#include "sim/sweep/points.h"
#include "sim/sweep/sweep_dir.h"

#include <cstddef>
#include <string>
#include <vector>

namespace attnsim {

// The argv of `attnsim run` for a point (argv[0] = binary).
std::vector<std::string> point_run_argv(const std::string& binary, const SweepDir& dir,
                                        const SweepPoint& point, int threads);
// One self-contained shell line, `attnsim point DIR HASH --timeout S -- attnsim run ...`:
// does nothing when the point is done (complete stats), otherwise runs it.
std::string point_job_line(const std::string& binary, const SweepDir& dir, const SweepPoint& point,
                           int threads, double timeout_seconds);
std::string shell_quote(const std::string& s);

// A Slurm batch script running `jobs_file` as a job array, `chunk` lines per array task.
// `script_path` is where the script goes (named in its comments).
std::string slurm_script(const SweepDir& dir, const std::string& jobs_file, const std::string& script_path,
                         size_t job_count, size_t chunk, double timeout_seconds);
// A number of seconds as written on a command line: 3600, 0.5.
std::string seconds_text(double seconds);

}  // namespace attnsim
