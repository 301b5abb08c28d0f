#pragma once
/// \file
/// One process's share of a global minibatch, for randomness drawn once per example.
///
/// In data-parallel training (docs/distributed.md) every process computes the loss of a
/// slice of the global minibatch. A layer that draws noise for each example (the uniform
/// dequantization of image flows) must give the example the noise that a single process
/// training on the whole batch would give it, or the runs with 1 and W processes part ways
/// after the first step. While a BatchShardScope is active, `rand_per_example` therefore
/// draws the noise of the whole global batch from torch's generator (which every process
/// seeds alike) and keeps this process's rows; with no scope it is `at::rand_like`.
///
/// Example:
///
///     // Rank 1 of 2 with a global batch of 64 holds rows 32..63:
///     zflow::BatchShardScope scope({/*global_rows=*/64, /*offset=*/32});
///     at::Tensor u = zflow::rand_per_example(x);  // x: [32, ...]; rows 32..63 of the draw

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace zflow {

/// Which rows of the global minibatch this process holds.
struct BatchShard {
  /// Rows of the whole minibatch over all processes.
  int64_t global_rows = 0;
  /// The first of this process's rows within it.
  int64_t offset = 0;
};

/// Makes `shard` the current one on this thread while the scope lives (scopes nest).
class BatchShardScope {
 public:
  explicit BatchShardScope(BatchShard shard);
  ~BatchShardScope();
  BatchShardScope(const BatchShardScope&) = delete;
  BatchShardScope& operator=(const BatchShardScope&) = delete;

 private:
  const BatchShard* previous_;
  BatchShard shard_;
};

/// The current shard on this thread, or nullptr.
const BatchShard* current_batch_shard();

/// Uniform noise on [0, 1) shaped like `like` ([B, ...], one row per example). Under a
/// shard whose rows cover B examples at `offset`, the noise of the whole global batch is
/// drawn and rows [offset, offset + B) are returned; otherwise at::rand_like(like).
at::Tensor rand_per_example(const at::Tensor& like);
/// Standard normal noise shaped like `like`, per example in the same way.
at::Tensor randn_per_example(const at::Tensor& like);

}  // namespace zflow
