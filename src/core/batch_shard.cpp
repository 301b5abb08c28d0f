#include "zflow/core/batch_shard.h"

#include <vector>

#include <ATen/ATen.h>

namespace zflow {

namespace {
thread_local const BatchShard* current = nullptr;
}  // namespace

BatchShardScope::BatchShardScope(BatchShard shard) : previous_(current), shard_(shard) {
  TORCH_CHECK(shard.global_rows >= 0 && shard.offset >= 0 && shard.offset <= shard.global_rows,
              "BatchShardScope: offset ", shard.offset, " outside a batch of ", shard.global_rows,
              " rows");
  current = &shard_;
}

BatchShardScope::~BatchShardScope() { current = previous_; }

const BatchShard* current_batch_shard() { return current; }

namespace {

/// Noise from `draw` (a shape and options to a tensor) shaped like `like`, per example.
template <typename Draw>
at::Tensor per_example(const at::Tensor& like, Draw draw) {
  const BatchShard* shard = current;
  std::vector<int64_t> shape(like.sizes().begin(), like.sizes().end());
  if (shard == nullptr || like.dim() == 0 || shard->global_rows == like.size(0)) {
    return draw(shape, like.options());
  }
  TORCH_CHECK(shard->offset + like.size(0) <= shard->global_rows, "per-example noise: rows ",
              shard->offset, "..", shard->offset + like.size(0), " outside a global batch of ",
              shard->global_rows);
  shape[0] = shard->global_rows;
  return draw(shape, like.options()).narrow(0, shard->offset, like.size(0));
}

}  // namespace

at::Tensor rand_per_example(const at::Tensor& like) {
  return per_example(like, [](at::IntArrayRef shape, const at::TensorOptions& options) {
    return at::rand(shape, options);
  });
}

at::Tensor randn_per_example(const at::Tensor& like) {
  return per_example(like, [](at::IntArrayRef shape, const at::TensorOptions& options) {
    return at::randn(shape, options);
  });
}

}  // namespace zflow
