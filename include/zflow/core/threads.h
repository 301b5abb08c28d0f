#pragma once
/// \file
/// Thread settings for CPU work: one call sets LibTorch's intra-op pool and keeps
/// OpenBLAS's own pool out of its way.
///
/// Example:
///
///     zflow::set_threads(4);         // ConfigError for n < 1
///     int used = zflow::threads();   // 4

namespace zflow {

/// Uses `n` intra-op threads in LibTorch and keeps the BLAS library's own thread pool at
/// one thread. LibTorch parallelises around its BLAS calls with its own pool; OpenBLAS
/// built with pthreads starts a second pool of the same size, and the two pools then
/// fight over the cores. Measured on a 2-core machine, training a small RealNVP took
/// 8.8 s with both pools at 2 threads and 2.6 s with OpenBLAS at 1 (docs/benchmarks.md).
void set_threads(int n);

/// The number of threads LibTorch uses for intra-op parallelism.
int threads();

}  // namespace zflow
