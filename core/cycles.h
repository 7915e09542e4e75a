#pragma once
// Cycles and time are distinct types (gem5's Cycles / Tick): a count of clock cycles
// never mixes with nanoseconds except through an explicit conversion with a clock.
#include <cstdint>

namespace attnsim {

class Cycles {
 public:
  constexpr Cycles() = default;
  constexpr explicit Cycles(uint64_t n) : n_(n) {}
  constexpr uint64_t count() const { return n_; }
  constexpr Cycles operator+(Cycles o) const { return Cycles(n_ + o.n_); }
  constexpr Cycles operator-(Cycles o) const { return Cycles(n_ - o.n_); }
  Cycles& operator+=(Cycles o) { n_ += o.n_; return *this; }
  constexpr bool operator==(Cycles o) const { return n_ == o.n_; }
  constexpr bool operator!=(Cycles o) const { return n_ != o.n_; }
  constexpr bool operator<(Cycles o) const { return n_ < o.n_; }
  constexpr bool operator<=(Cycles o) const { return n_ <= o.n_; }
  constexpr bool operator>(Cycles o) const { return n_ > o.n_; }
  constexpr bool operator>=(Cycles o) const { return n_ >= o.n_; }

 private:
  uint64_t n_ = 0;
};

inline Cycles max(Cycles a, Cycles b) { return a < b ? b : a; }

// Wall-clock-free simulated time in nanoseconds.
struct Nanoseconds {
  double value = 0.0;
};

// The one place cycles become time: a clock of `ghz` GHz has a period of 1/ghz ns.
class Clock {
 public:
  explicit Clock(double ghz) : ghz_(ghz) {}
  double ghz() const { return ghz_; }
  double period_ns() const { return 1.0 / ghz_; }
  Nanoseconds to_time(Cycles c) const { return {static_cast<double>(c.count()) / ghz_}; }

 private:
  double ghz_;
};

// ceil(a / b) for positive integers, the shape of nearly every timing rule here.
constexpr uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

}  // namespace attnsim
