// `attnsim sweep`, `attnsim report`, `attnsim merge`: design-space sweeps (docs/sweeps.md).
#include "core/file_io.h"
#include "sim/cli/commands.h"
#include "sim/cli/errors.h"
#include "sim/cli/limits.h"
#include "sim/stats.h"
#include "sim/sweep/launch.h"
#include "sim/sweep/points.h"
#include "sim/sweep/report.h"
#include "sim/sweep/runner.h"
#include "sim/sweep/spec.h"
#include "sim/sweep/sweep_dir.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace attnsim {

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

// Parses options; returns -1 to go on, otherwise the exit code (help shown or bad usage).
int parse_options(const char* command, int argc, char** argv, const po::options_description& opts,
                  const po::positional_options_description& positional, po::variables_map& vm) {
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(std::string(command) + ": " + e.what());
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return kExitOk;
  }
  return -1;
}

std::string this_binary() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

std::string final_line(const SweepRunTotals& t, size_t skipped, const SweepDir& dir) {
  const size_t done = t.done_before + t.done_now + t.done_elsewhere;
  const size_t failed = t.failed + t.failed_before;
  char wall[32];
  std::snprintf(wall, sizeof wall, "%.1f s", t.wall_seconds);
  std::ostringstream s;
  s << "sweep: " << t.runs << " runs: " << done << " done (" << t.done_now << " now, " << t.done_before << " before";
  if (t.done_elsewhere > 0) s << ", " << t.done_elsewhere << " by other runners";
  s << "), " << failed << " failed, " << (t.runs - done - failed) << " remaining; " << skipped << " points skipped; "
    << wall << "; " << dir.summary();
  return s.str();
}

// Why points are not done when their claims belong to runners on other hosts, and how to
// free the claims of runners that are gone.
std::string held_elsewhere_line(const SweepRunTotals& t, const SweepDir& dir) {
  std::vector<std::string> owners;
  for (const auto& [claim, owner] : t.held_elsewhere)
    if (std::find(owners.begin(), owners.end(), owner) == owners.end()) owners.push_back(owner);
  std::string list;
  for (const std::string& o : owners) list += (list.empty() ? "" : ", ") + o;
  const std::string hint = t.held_elsewhere.size() == 1
                               ? "remove " + t.held_elsewhere.front().first + " if that runner is gone"
                               : "remove their claims in " + dir.root + "/claims/ if those runners are gone";
  return "attnsim: sweep: " + std::to_string(t.held_elsewhere.size()) + " points not done: claimed on other hosts (" +
         list + "); rerun when they finish, or " + hint;
}

// The exit status of a finished sweep, with a line for each reason it is not 0. Not 0
// while any point lacks complete stats, so a script can rely on it.
int sweep_status(const SweepRunTotals& t, const SweepDir& dir) {
  if (t.stopped) {
    std::cerr << "attnsim: sweep: interrupted; " << t.interrupted
              << " running points were stopped and stay pending (rerun the same command to resume)\n";
    return kExitInterrupted;
  }
  const size_t failed = t.failed + t.failed_before;
  const size_t remaining = t.runs - t.done_before - t.done_now - t.done_elsewhere - failed;
  if (failed > 0) std::cerr << "attnsim: sweep: " << failed << " points failed (see " << dir.root << "/failed/)\n";
  if (!t.held_elsewhere.empty()) std::cerr << held_elsewhere_line(t, dir) << "\n";
  if (remaining > t.held_elsewhere.size())
    std::cerr << "attnsim: sweep: " << remaining - t.held_elsewhere.size() << " points not done (rerun the same command)\n";
  return failed + remaining > 0 ? kExitFailed : kExitOk;
}

void write_summary(const SweepDir& dir) {
  write_file_atomically(dir.summary(), summary_csv(collect_results(dir)));
}

void write_jobs_file(const std::string& path, const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  write_file_atomically(path, text);
}

// --emit-jobs / --emit-slurm: the points as shell lines for other engines; nothing runs.
int emit(const po::variables_map& vm, const SweepDir& dir, const std::vector<SweepPoint>& points,
         const std::string& binary, int threads, double timeout) {
  std::vector<std::string> lines;
  for (const SweepPoint* p : unique_runnable(points)) lines.push_back(point_job_line(binary, dir, *p, threads, timeout));
  std::string jobs = vm.count("emit-jobs") ? vm["emit-jobs"].as<std::string>() : dir.root + "/jobs.txt";
  jobs = fs::absolute(jobs).lexically_normal().string();
  write_jobs_file(jobs, lines);
  std::cout << "jobs      " << jobs << " (" << lines.size() << " lines)\n";
  if (vm.count("emit-slurm")) {
    const std::string sbatch = fs::absolute(vm["emit-slurm"].as<std::string>()).lexically_normal().string();
    write_file_atomically(sbatch, slurm_script(dir, jobs, sbatch, lines.size(), vm["chunk"].as<size_t>(), timeout));
    std::cout << "slurm     " << sbatch << "  (sbatch " << sbatch << ")\n";
  }
  std::cout << "then      attnsim merge " << dir.root << "\n";
  return 0;
}

void print_points(const std::vector<SweepPoint>& points) {
  for (const SweepPoint& p : points) {
    std::cout << (p.hash.empty() ? std::string(16, '-') : p.hash) << "  " << p.role << "  " << p.trace;
    for (const auto& [k, v] : p.values) std::cout << "  " << k << "=" << v.dump();
    if (!p.skipped.empty()) std::cout << "  SKIPPED: " << p.skipped;
    std::cout << "\n";
  }
}

// ---- report ------------------------------------------------------------------------------

std::string number_text(double x) {
  if (std::isnan(x)) return "-";
  char buf[32];
  if (std::floor(x) == x && std::fabs(x) < 1e12) std::snprintf(buf, sizeof buf, "%.0f", x);
  else std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

std::string value_text(const ResultRow& row, const std::string& key) {
  for (const auto& [k, v] : row.values)
    if (k == key) return v.is_null() ? "-" : v.is_string() ? v.get<std::string>() : v.dump();
  return "-";
}

void print_table(std::ostream& os, const SweepResults& r, const std::vector<size_t>& order,
                 const std::vector<std::string>& metrics) {
  std::vector<std::vector<std::string>> cells;
  std::vector<std::string> header = {"hash", "status", "trace"};
  for (const std::string& k : r.keys) header.push_back(k);
  for (const std::string& m : metrics) header.push_back(m);
  cells.push_back(header);
  for (size_t i : order) {
    const ResultRow& row = r.rows[i];
    std::vector<std::string> line = {row.hash.empty() ? "-" : row.hash,
                                     row.role == "baseline" ? row.status + "*" : row.status, row.trace};
    for (const std::string& k : r.keys) line.push_back(value_text(row, k));
    for (const std::string& m : metrics) line.push_back(number_text(row.metric(m)));
    cells.push_back(line);
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& line : cells)
    for (size_t c = 0; c < line.size(); ++c) width[c] = std::max(width[c], line[c].size());
  for (const auto& line : cells) {
    std::string text;
    for (size_t c = 0; c < line.size(); ++c) {
      const bool left = c < 3 + r.keys.size() && c != 1;
      const std::string pad(width[c] - line[c].size(), ' ');
      text += (c ? "  " : "") + (left ? line[c] + pad : pad + line[c]);
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    os << text << "\n";
  }
}

void check_metric(const std::string& m) {
  const auto& names = sweep_metric_names();
  if (std::find(names.begin(), names.end(), m) == names.end()) {
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    throw UsageError("unknown metric '" + m + "' (one of " + list + ")");
  }
}

// Sorted best first (ascending, or descending for larger-is-better metrics); unknown last.
std::vector<size_t> sorted_rows(const SweepResults& r, const std::string& metric, bool reverse,
                                const std::string& trace) {
  std::vector<size_t> order;
  for (size_t i = 0; i < r.rows.size(); ++i)
    if (trace.empty() || r.rows[i].trace == trace) order.push_back(i);
  const bool descending = metric_larger_is_better(metric) != reverse;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const double x = r.rows[a].metric(metric), y = r.rows[b].metric(metric);
    if (std::isnan(x) || std::isnan(y)) return !std::isnan(x) && std::isnan(y);
    return descending ? x > y : x < y;
  });
  return order;
}

}  // namespace

int cmd_sweep(int argc, char** argv) {
  po::options_description opts(
      "usage: attnsim sweep SWEEP.json --out DIR [-j N] [--timeout S]\n"
      "       attnsim sweep SWEEP.json --out DIR --emit-jobs DIR/jobs.txt [--emit-slurm DIR/sweep.sbatch]\n\n"
      "Runs every point of a sweep file (schema attnsim.sweep/1: base config, traces, grid, zip,\n"
      "skip_if) as its own `attnsim run` child process, at most N at a time. Stats go to\n"
      "DIR/points/<hash>.json, failures to DIR/failed/<hash>.json, the table to DIR/summary.csv.\n"
      "A rerun skips finished points. See docs/sweeps.md.\n\noptions");
  std::string sweep_file, out;
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  opts.add_options()("help,h", "show this help")("sweep", po::value(&sweep_file), "sweep file (JSON)")(
      "out,o", po::value(&out), "sweep directory (created; reused by reruns)")(
      "jobs,j", po::value<int>()->default_value(std::min(int(cores), kMaxThreads)),
      "points run at a time (default: the number of cores; at most 1024)")(
      "timeout", po::value<double>()->default_value(3600), "seconds per point; a point over it is killed and recorded as failed")(
      "threads-per-point", po::value<int>()->default_value(1), "`attnsim run --threads` of each point")(
      "no-retry-failed", "keep earlier failure records instead of rerunning those points")(
      "emit-jobs", po::value<std::string>(), "write one shell line per point to this file and run nothing")(
      "emit-slurm", po::value<std::string>(), "write a Slurm job-array script (and DIR/jobs.txt) and run nothing")(
      "chunk", po::value<size_t>()->default_value(1), "points per Slurm array task")(
      "binary", po::value<std::string>(), "attnsim binary the points run (default: this one)")(
      "dry-run", "list the points (hash, trace, values, skip reasons) and run nothing");
  po::positional_options_description positional;
  positional.add("sweep", 1);
  po::variables_map vm;
  if (const int code = parse_options("sweep", argc, argv, opts, positional, vm); code >= 0) return code;
  if (sweep_file.empty()) return usage_error("sweep: a sweep file is required (attnsim sweep SWEEP.json --out DIR)");
  if (out.empty() && !vm.count("dry-run")) return usage_error("sweep: --out DIR is required");
  const double timeout = vm["timeout"].as<double>();
  const int threads = vm["threads-per-point"].as<int>();
  if (!(timeout > 0)) return usage_error("sweep: --timeout must be > 0");
  for (const std::string& bad : {count_problem("--jobs", vm["jobs"].as<int>(), 1),
                                 count_problem("--threads-per-point", threads, 0)})
    if (!bad.empty()) return usage_error("sweep: " + bad);
  try {
    const SweepSpec spec = load_sweep(sweep_file);
    const std::vector<SweepPoint> points = expand_sweep(spec);
    const size_t skipped = std::count_if(points.begin(), points.end(), [](const SweepPoint& p) { return !p.skipped.empty(); });
    if (vm.count("dry-run")) {
      print_points(points);
      std::cout << points.size() << " points, " << unique_runnable(points).size() << " runs, " << skipped << " skipped\n";
      return 0;
    }
    const SweepDir dir = sweep_dir(out);
    prepare_sweep_dir(dir, spec, points);
    const std::string binary = fs::absolute(vm.count("binary") ? vm["binary"].as<std::string>() : this_binary()).string();
    if (vm.count("emit-jobs") || vm.count("emit-slurm")) {
      emit(vm, dir, points, binary, threads, timeout);
      write_summary(dir);
      return 0;
    }
    SweepRunOptions options;
    options.jobs = vm["jobs"].as<int>();
    options.timeout_seconds = timeout;
    options.threads_per_point = threads;
    options.binary = binary;
    options.retry_failed = !vm.count("no-retry-failed");
    options.progress = isatty(STDERR_FILENO) != 0;
    const SweepRunTotals totals = run_sweep(dir, points, options);
    write_summary(dir);
    std::cerr << final_line(totals, skipped, dir) << "\n";
    return sweep_status(totals, dir);
  } catch (const std::exception& e) {
    return report_error(e);
  }
  return 0;
}

int cmd_merge(int argc, char** argv) {
  po::options_description opts(
      "usage: attnsim merge DIR\n\n"
      "Builds DIR/summary.csv from whatever points finished (stats in DIR/points, failure\n"
      "records in DIR/failed), e.g. after GNU parallel or a Slurm array ran DIR/jobs.txt.\n\noptions");
  std::string out;
  opts.add_options()("help,h", "show this help")("dir", po::value(&out), "sweep directory");
  po::positional_options_description positional;
  positional.add("dir", 1);
  po::variables_map vm;
  if (const int code = parse_options("merge", argc, argv, opts, positional, vm); code >= 0) return code;
  if (out.empty()) return usage_error("merge: a sweep directory is required");
  try {
    const SweepDir dir = sweep_dir(out);
    const SweepResults results = collect_results(dir);
    write_file_atomically(dir.summary(), summary_csv(results));
    std::cout << "merge: " << results.rows.size() << " points:";
    const char* sep = " ";
    for (const auto& [status, count] : status_counts(results)) {
      std::cout << sep << count << " " << status;
      sep = ", ";
    }
    std::cout << "; " << dir.summary() << "\n";
  } catch (const std::exception& e) {
    return report_error(e);
  }
  return 0;
}

int cmd_report(int argc, char** argv) {
  po::options_description opts(
      "usage: attnsim report DIR [--sort METRIC] [--pareto X,Y] [--trace T] [--limit N]\n\n"
      "Prints the sweep's points sorted by a metric (best first) and the Pareto front of two\n"
      "metrics per trace. Metrics: cycles, energy_pj, filtered_ratio, exact_ratio, rel_error,\n"
      "mass_recall, wall_seconds, speedup, energy_reduction (larger is better for mass_recall,\n"
      "speedup, energy_reduction and filtered_ratio; smaller for the others).\n\noptions");
  std::string out, sort_by, pareto, trace;
  opts.add_options()("help,h", "show this help")("dir", po::value(&out), "sweep directory")(
      "sort", po::value(&sort_by)->default_value("cycles"), "metric to sort by")(
      "reverse", "sort worst first")(
      "pareto", po::value(&pareto)->default_value("cycles,rel_error"), "two metrics X,Y for the Pareto front")(
      "trace", po::value(&trace), "only the points of this trace (as written in the sweep file)")(
      "limit", po::value<size_t>()->default_value(0), "print at most N rows of the table (0 = all)");
  po::positional_options_description positional;
  positional.add("dir", 1);
  po::variables_map vm;
  if (const int code = parse_options("report", argc, argv, opts, positional, vm); code >= 0) return code;
  if (out.empty()) return usage_error("report: a sweep directory is required");
  try {
    const size_t comma = pareto.find(',');
    if (comma == std::string::npos) throw UsageError("report: --pareto takes two metrics X,Y");
    const std::string px = pareto.substr(0, comma), py = pareto.substr(comma + 1);
    check_metric(sort_by);
    check_metric(px);
    check_metric(py);
    const SweepResults results = collect_results(sweep_dir(out));
    std::vector<size_t> order = sorted_rows(results, sort_by, vm.count("reverse") != 0, trace);
    const size_t limit = vm["limit"].as<size_t>();
    if (limit > 0 && order.size() > limit) order.resize(limit);
    std::vector<std::string> metrics = sweep_metric_names();
    metrics.erase(std::remove(metrics.begin(), metrics.end(), "wall_seconds"), metrics.end());
    std::cout << "points sorted by " << sort_by << " (" << (metric_larger_is_better(sort_by) ? "largest" : "smallest")
              << " first" << (vm.count("reverse") ? ", reversed" : "") << "; * = baseline):\n";
    print_table(std::cout, results, order, metrics);
    std::vector<size_t> front;
    for (size_t i : pareto_front(results, px, py))
      if (trace.empty() || results.rows[i].trace == trace) front.push_back(i);
    std::cout << "\nPareto front of " << px << " (" << (metric_larger_is_better(px) ? "max" : "min") << ") and " << py
              << " (" << (metric_larger_is_better(py) ? "max" : "min") << "), per trace: " << front.size()
              << " points\n";
    print_table(std::cout, results, front, metrics);
    const auto counts = status_counts(results);
    std::cout << "\n" << results.rows.size() << " points:";
    const char* sep = " ";
    for (const auto& [status, count] : counts) {
      std::cout << sep << count << " " << status;
      sep = ", ";
    }
    std::cout << "\n";
  } catch (const std::exception& e) {
    return report_error(e);
  }
  return 0;
}

}  // namespace attnsim
