#include "arch/activity_trace.h"

#include "core/errors.h"
#include "core/file_io.h"

#include "arch/kernel_time.h"
#include "arch/sc_threads.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <unistd.h>

namespace attnsim {

namespace {

bool all_digits(const std::string& s) {
  if (s.empty() || s.size() > 9) return false;  // 9 digits always fit an int
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// Cycles as the trace-event format's microseconds, exactly: 1 ns on the viewer = 1 cycle.
std::string micros(uint64_t cycles) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llu.%03llu", static_cast<unsigned long long>(cycles / 1000),
                static_cast<unsigned long long>(cycles % 1000));
  return buf;
}

// Labels are ours or GEMM job names; escape anyway so the JSON stays valid.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

int tid(TraceUnit u) { return static_cast<int>(u) + 1; }


// The VCD ends with the time SystemC closed it at, `end` + 1: make it end at `end`
// (drop the marker when the last value changes are already at `end`).
void end_vcd_at(const std::string& path, uint64_t end) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  if (!f) throw IoError(path + ": cannot reopen the VCD");
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - 4096);
  std::string tail(static_cast<size_t>(size - from), '\0');
  f.seekg(from);
  f.read(&tail[0], static_cast<std::streamsize>(tail.size()));
  f.close();
  const std::string closing = "#" + std::to_string(end + 1) + "\n";
  if (tail.size() < closing.size() || tail.compare(tail.size() - closing.size(), closing.size(), closing) != 0)
    return;  // not the layout expected: leave the file as SystemC wrote it
  const size_t marker = tail.size() - closing.size();
  // The newline just before the marker may start "\n#"+(end + 1) itself: search before it.
  const size_t previous = marker >= 2 ? tail.rfind("\n#", marker - 2) : std::string::npos;
  const std::string end_line = "#" + std::to_string(end) + "\n";
  const bool changes_at_end =
      previous != std::string::npos && tail.compare(previous + 1, end_line.size(), end_line) == 0;
  std::filesystem::resize_file(path, static_cast<uintmax_t>(from) + marker);
  if (!changes_at_end) std::ofstream(path, std::ios::app | std::ios::binary) << "#" << end << "\n";
}

}  // namespace

std::string TraceRange::text() const {
  if (first == 0 && last == INT_MAX) return "all";
  if (first == last) return std::to_string(first);
  if (last == INT_MAX) return std::to_string(first) + ":";
  return std::to_string(first) + ":" + std::to_string(last);
}

TraceRange parse_trace_range(const std::string& text, const std::string& flag) {
  const auto bad = [&]() {
    return std::invalid_argument(flag + ": expected A:B (inclusive), A, A:, :B or all with non-negative integers, got '" +
                                 text + "'");
  };
  if (text == "all") return {};
  const size_t colon = text.find(':');
  if (colon == std::string::npos) {
    if (!all_digits(text)) throw bad();
    const int i = std::stoi(text);
    return {i, i};
  }
  const std::string a = text.substr(0, colon), b = text.substr(colon + 1);
  if ((a.empty() && b.empty()) || (!a.empty() && !all_digits(a)) || (!b.empty() && !all_digits(b))) throw bad();
  TraceRange r;
  if (!a.empty()) r.first = std::stoi(a);
  if (!b.empty()) r.last = std::stoi(b);
  if (r.last < r.first)
    throw std::invalid_argument(flag + ": '" + text + "' is empty: the range is inclusive and B must be >= A");
  return r;
}

const char* trace_unit_name(TraceUnit u) {
  static const char* names[kTraceUnits] = {"dma",         "dram",            "qk_unit",
                                           "softmax",     "av_unit",         "writeback",
                                           "gemm_engine", "skim_controller", "candidate_unit",
                                           "tree_engine", "lsh_unit",        "lowrank_unit"};
  return names[static_cast<int>(u)];
}

const char* trace_fifo_name(TraceFifo f) {
  static const char* names[kTraceFifos] = {"heads", "scored", "normalized", "outputs"};
  return names[static_cast<int>(f)];
}

int gemm_job_layer(const std::string& name) {
  if (name.size() < 3 || name[0] != 'L') return -1;
  const size_t dot = name.find('.');
  if (dot == std::string::npos) return -1;
  const std::string digits = name.substr(1, dot - 1);
  return all_digits(digits) ? std::stoi(digits) : -1;
}

ActivityRecorder::ActivityRecorder(sc_core::sc_module_name name, const TraceOptions& options,
                                   std::vector<TraceUnit> units)
    : sc_module(name), options_(options), units_(std::move(units)) {
  SC_HAS_PROCESS(ActivityRecorder);
  SC_METHOD(apply_due);
  sensitive << wake_;
  dont_initialize();
}

ActivityRecorder::~ActivityRecorder() {
  if (vcd_) {  // the run failed before finish(): leave no partial file behind
    sc_core::sc_close_vcd_trace_file(vcd_);
    std::remove((vcd_tmp_base_ + ".vcd").c_str());
  }
}

void ActivityRecorder::start() {
  if (options_.vcd_path.empty()) return;
  const std::filesystem::path target(options_.vcd_path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  // SystemC appends ".vcd" to the name it is given.
  vcd_tmp_base_ = temp_path_for(options_.vcd_path);
  vcd_ = sc_core::sc_create_vcd_trace_file(vcd_tmp_base_.c_str());
  if (!vcd_) throw IoError(options_.vcd_path + ": cannot create the VCD file");
  // 1 time unit = 1 ns = 1 cycle; SystemC would announce it on the console.
  sc_core::sc_report_handler::set_actions("tracing timescale unit set", sc_core::SC_DO_NOTHING);
  vcd_->set_time_unit(1, sc_core::SC_NS);
  for (TraceUnit u : units_)
    sc_core::sc_trace(vcd_, state_[static_cast<int>(u)], std::string("unit.") + trace_unit_name(u), 2);
  for (int f = 0; f < kTraceFifos; ++f)
    if (watched_[f])
      sc_core::sc_trace(vcd_, level_[f], std::string("fifo.") + trace_fifo_name(static_cast<TraceFifo>(f)), 32);
}

void ActivityRecorder::finish() {
  if (finished_) return;
  finished_ = true;
  for (TraceUnit u : units_) close(u);
  flush(now_cycles().count());
  if (vcd_) {
    // This SystemC writes a time step's values when time moves on: step one cycle past
    // the end so the last cycle's values are written (nothing else is left to run), then
    // end the file at the run's last cycle.
    const uint64_t end = now_cycles().count();
    run_kernel(Cycles(1));
    sc_core::sc_close_vcd_trace_file(vcd_);
    vcd_ = nullptr;
    const std::string written = vcd_tmp_base_ + ".vcd";
    end_vcd_at(written, end);
    commit_file(written, options_.vcd_path);
  }
  if (!options_.timeline_path.empty()) write_file_atomically(options_.timeline_path, timeline_json());
}

// Changes are applied in (time, call order): a span's end scheduled earlier is applied
// before a new state entered at the same cycle, so the signal ends in the newer state.
void ActivityRecorder::set_state_at(TraceUnit unit, int value, Cycles at) {
  const uint64_t now = now_cycles().count();
  if (at.count() <= now) {
    flush(now);
    state_[static_cast<int>(unit)] = static_cast<unsigned>(value);
    return;
  }
  pending_.push({at.count(), seq_++, static_cast<int>(unit), value});
  wake_.notify(to_sc_time(Cycles(at.count() - now)));  // an earlier pending wake-up wins
}

void ActivityRecorder::flush(uint64_t now) {
  while (!pending_.empty() && pending_.top().at <= now) {
    state_[pending_.top().unit] = static_cast<unsigned>(pending_.top().value);
    pending_.pop();
  }
}

void ActivityRecorder::apply_due() {
  const uint64_t now = now_cycles().count();
  flush(now);
  if (!pending_.empty()) wake_.notify(to_sc_time(Cycles(pending_.top().at - now)));
}

void ActivityRecorder::interval(TraceUnit unit, UnitState state, Cycles begin, Cycles end,
                                std::string what, const TraceTag& tag) {
  if (end <= begin) return;
  spans_.push_back({unit, state, begin.count(), end.count(), std::move(what), tag});
  set_state_at(unit, state, begin);
  set_state_at(unit, kIdle, end);
}

void ActivityRecorder::open(TraceUnit unit, UnitState state, std::string what, const TraceTag& tag) {
  close(unit);
  open_[static_cast<int>(unit)] = {true, state, now_cycles().count(), std::move(what), tag};
  set_state_at(unit, state, now_cycles());
}

void ActivityRecorder::close(TraceUnit unit) {
  OpenSpan& o = open_[static_cast<int>(unit)];
  if (!o.active) return;
  o.active = false;
  const uint64_t now = now_cycles().count();
  if (now > o.begin) spans_.push_back({unit, o.state, o.begin, now, std::move(o.what), o.tag});
  set_state_at(unit, kIdle, now_cycles());
}

void ActivityRecorder::head_enters() {
  if (heads_inside_++ > 0) return;
  for (int f = 0; f < kTraceFifos; ++f)
    if (watched_[f]) record_level(static_cast<TraceFifo>(f), level_of_[f]());
}

void ActivityRecorder::head_leaves() {
  if (heads_inside_ == 0 || --heads_inside_ > 0) return;
  for (int f = 0; f < kTraceFifos; ++f)
    if (watched_[f]) record_level(static_cast<TraceFifo>(f), 0);  // outside the window: 0
}

void ActivityRecorder::sample_fifo(TraceFifo f) {
  if (heads_inside_ > 0) record_level(f, level_of_[static_cast<int>(f)]());
}

void ActivityRecorder::record_level(TraceFifo f, int value) {
  const int i = static_cast<int>(f);
  level_[i] = static_cast<unsigned>(value);
  const uint64_t now = now_cycles().count();
  std::vector<Level>& v = levels_[i];
  // Only the level at the end of a cycle counts (a row written and read in the same cycle
  // never shows), and only changes are kept.
  if (!v.empty() && v.back().at == now) {
    v.back().value = value;
    if (v.size() >= 2 && v[v.size() - 2].value == value) v.pop_back();
    return;
  }
  if (!v.empty() && v.back().value == value) return;
  v.push_back({f, now, value});
}

std::string ActivityRecorder::timeline_json() const {
  std::string out;
  size_t levels = 0;
  for (const auto& v : levels_) levels += v.size();
  out.reserve(128 * (spans_.size() + levels) + 4096);
  out += "{\"displayTimeUnit\":\"ns\",\n\"otherData\":{\"tool\":\"attnsim\",\"time_axis\":\"1 ns = 1 cycle\",";
  out += "\"layers\":" + quoted(options_.layers.text()) + ",\"heads\":" + quoted(options_.heads.text()) + "},\n";
  out += "\"traceEvents\":[\n";
  out += "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"attnsim\"}}";
  for (TraceUnit u : units_) {
    const std::string t = std::to_string(tid(u));
    out += ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":" + t + ",\"args\":{\"name\":\"" +
           trace_unit_name(u) + "\"}}";
    out += ",\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":" + t +
           ",\"args\":{\"sort_index\":" + t + "}}";
  }
  for (const Span& s : spans_) {
    out += ",\n{\"name\":" + quoted(s.what) + ",\"cat\":\"" + (s.state == kStall ? "stall" : "busy") +
           "\",\"ph\":\"X\",\"ts\":" + micros(s.begin) + ",\"dur\":" + micros(s.end - s.begin) +
           ",\"pid\":1,\"tid\":" + std::to_string(tid(s.unit)) + ",\"args\":{\"cycles\":" +
           std::to_string(s.end - s.begin);
    if (s.tag.layer >= 0) out += ",\"layer\":" + std::to_string(s.tag.layer);
    if (s.tag.head >= 0) out += ",\"head\":" + std::to_string(s.tag.head);
    if (s.tag.row >= 0) out += ",\"row\":" + std::to_string(s.tag.row);
    out += "}}";
  }
  for (const auto& v : levels_) {
    for (const Level& l : v) {
      out += ",\n{\"name\":\"fifo ";
      out += trace_fifo_name(l.fifo);
      out += "\",\"ph\":\"C\",\"ts\":" + micros(l.at) + ",\"pid\":1,\"args\":{\"" +
             (l.fifo == TraceFifo::heads ? "heads" : "rows") + "\":" + std::to_string(l.value) + "}}";
    }
  }
  out += "\n]}\n";
  return out;
}

}  // namespace attnsim
