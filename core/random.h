#pragma once
// Our own pseudo-random numbers, the same on every machine and standard library:
// splitmix64 seeding xoshiro256**, uniforms from the top 53 bits, normals by Box-Muller
// (never std::normal_distribution, whose output differs between standard libraries).
// Synthetic traces and the simulator's seeded parameters (built trees, LSH directions,
// Performer features) draw from independent streams, one per (seed, layer, head, purpose).
#include <cmath>
#include <cstdint>

namespace attnsim {

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& w : s_) w = splitmix64(seed);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int below(int n) { return static_cast<int>(uniform() * n); }  // 0..n-1
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    constexpr double kTwoPi = 6.283185307179586476925286766559;
    spare_ = r * std::sin(kTwoPi * u2);
    has_spare_ = true;
    return r * std::cos(kTwoPi * u2);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

// One independent stream per (seed, layer, head, purpose).
inline Rng rng_stream(uint64_t seed, int layer, int head, uint64_t purpose) {
  uint64_t s = seed;
  uint64_t mixed = splitmix64(s);
  mixed ^= 0x632be59bd9b4e019ULL * static_cast<uint64_t>(layer + 1);
  mixed ^= 0x8cb92ba72f3d8dd7ULL * static_cast<uint64_t>(head + 2);
  mixed ^= 0xd1b54a32d192ed03ULL * (purpose + 3);
  return Rng(splitmix64(mixed));
}

}  // namespace attnsim
