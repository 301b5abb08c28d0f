#pragma once
// Counting the multiply-adds of the matrix products and convolutions that a piece of code
// runs, as LibTorch executes them: the arithmetic floor of `zflow bench` (docs/benchmarks.md).

#include <cstdint>
#include <functional>

namespace zflow::cli {

/// Multiply-adds of every matrix product (mm, addmm, bmm) and convolution that `fn` runs on
/// this thread, each counted at its own shapes (a convolution at its output's spatial size).
/// Operations nested inside a counted one (a convolution computed by matrix products) are
/// not counted again.
int64_t count_macs(const std::function<void()>& fn);

}  // namespace zflow::cli
