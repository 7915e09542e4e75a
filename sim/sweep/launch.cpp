// Launching points: `attnsim run` command lines, shell job lines and Slurm scripts.
#include "sim/sweep/launch.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace attnsim {

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:+,@%") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> point_run_argv(const std::string& binary, const SweepDir& dir, const SweepPoint& point,
                                        int threads) {
  return {binary, "run", "--config", dir.config(point.hash), "--trace", point.trace_path,
          "--out", dir.stats(point.hash), "--quiet", "--threads", std::to_string(threads)};
}

std::string point_job_line(const std::string& binary, const SweepDir& dir, const SweepPoint& point, int threads,
                           double timeout_seconds) {
  std::string line = shell_quote(binary) + " point " + shell_quote(dir.root) + " " + point.hash + " --timeout " +
                     seconds_text(timeout_seconds) + " --";
  for (const std::string& arg : point_run_argv(binary, dir, point, threads)) line += " " + shell_quote(arg);
  return line;
}

std::string seconds_text(double seconds) {
  std::ostringstream s;
  s << seconds;
  return s.str();
}

std::string slurm_script(const SweepDir& dir, const std::string& jobs_file, const std::string& script_path,
                         size_t job_count, size_t chunk, double timeout_seconds) {
  if (chunk == 0) chunk = 1;
  const size_t tasks = std::max<size_t>(1, (job_count + chunk - 1) / chunk);
  const long long minutes = std::max<long long>(1, static_cast<long long>(std::ceil(timeout_seconds * chunk / 60.0)));
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# attnsim sweep: " << job_count << " points in " << tasks << " array tasks of up to " << chunk
    << " (written by attnsim sweep --emit-slurm).\n"
    << "# Submit: sbatch " << shell_quote(script_path) << "   then: attnsim merge "
    << shell_quote(dir.root) << "\n"
    << "# Each line of the jobs file skips its point when it is done, so resubmitting is safe.\n"
    << "#SBATCH --job-name=attnsim-sweep\n"
    << "#SBATCH --array=0-" << tasks - 1 << "\n"
    << "#SBATCH --ntasks=1\n"
    << "#SBATCH --cpus-per-task=1\n"
    << "#SBATCH --time=" << minutes << "\n"
    << "#SBATCH --output=" << dir.root << "/logs/slurm-%A_%a.out\n"
    << "set -u\n"
    << "jobs_file=" << shell_quote(jobs_file) << "\n"
    << "chunk=" << chunk << "\n"
    << "task=${SLURM_ARRAY_TASK_ID:?run with sbatch, or set SLURM_ARRAY_TASK_ID}\n"
    << "first=$((task * chunk + 1))\n"
    << "last=$((first + chunk - 1))\n"
    << "status=0\n"
    << "while IFS= read -r line; do\n"
    << "  bash -c \"$line\" || status=1\n"
    << "done < <(sed -n \"${first},${last}p\" \"$jobs_file\")\n"
    << "exit $status\n";
  return s.str();
}

}  // namespace attnsim
