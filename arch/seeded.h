#pragma once
// Parameters the simulator draws itself when the trace carries none (LSH directions,
// Performer features, the start directions of built trees): Gaussian, from the stream
// (seed, layer, head, purpose) of core/random.h, so a run is reproducible; and the
// float64 dot product in index order that routing and projections use.
#include "core/random.h"
#include "workloads/trace.h"

#include <cstdint>

namespace attnsim {

// rows x cols standard normal values, row-major.
inline Matrix gaussian_matrix(int rows, int cols, uint64_t seed, int layer, int head, uint64_t purpose) {
  Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.values.resize(static_cast<size_t>(rows) * cols);
  Rng rng = rng_stream(seed, layer, head, purpose);
  for (double& x : m.values) x = rng.normal();
  return m;
}

// sum_t a[t] * b[t], summed in index order (the same value wherever it is computed).
inline double dot_in_order(const double* a, const double* b, int d) {
  double s = 0;
  for (int t = 0; t < d; ++t) s += a[t] * b[t];
  return s;
}

}  // namespace attnsim
