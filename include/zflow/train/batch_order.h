#pragma once
/// \file
/// Which training rows each optimizer step uses, and which of them each process takes.
///
/// The rows are visited in epochs: epoch e is a random permutation of 0..N-1 drawn from a
/// generator seeded by (seed, e) alone, and step s takes the next B rows of it (the last
/// N mod B rows of an epoch are left out, as PyTorch's DataLoader does with drop_last).
/// The order therefore depends only on the seed and the step: it is the same in every
/// process of a data-parallel run, the same after a resume, and the same whatever the
/// number of processes. In a run of W processes, rank r takes the r-th of W contiguous,
/// near-equal slices of each global batch (`shard`), so that W processes see together
/// exactly the rows one process would (docs/distributed.md).
///
/// Example:
///
///     zflow::train::BatchOrder order(/*rows=*/10000, /*batch_size=*/512, /*seed=*/0);
///     at::Tensor rows = order.rows(/*step=*/7);            // [512] row indices
///     auto [offset, count] = zflow::train::shard(512, /*rank=*/1, /*world=*/2);  // 256, 256

#include <cstdint>
#include <utility>

#include <ATen/core/Tensor.h>

namespace zflow::train {

/// The global minibatches of a training run.
class BatchOrder {
 public:
  /// `rows` > 0 training rows in global batches of min(batch_size, rows).
  BatchOrder(int64_t rows, int64_t batch_size, uint64_t seed);
  /// Rows of one global batch.
  int64_t batch_size() const { return batch_; }
  /// The row indices [batch_size] (int64, CPU) of the global batch of `step` (from 0).
  at::Tensor rows(int64_t step);

 private:
  int64_t n_;
  int64_t batch_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  at::Tensor permutation_;
};

/// Rank `rank`'s slice of `total` items over `world` processes: {offset, count}. The
/// first total mod world ranks take one item more than the others.
std::pair<int64_t, int64_t> shard(int64_t total, int rank, int world);

}  // namespace zflow::train
