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

at::Tensor rand_per_example(const at::Tensor& like) {
  const BatchShard* shard = current;
  if (shard == nullptr || like.dim() == 0 || shard->global_rows == like.size(0)) {
    return at::rand_like(like);
  }
  TORCH_CHECK(shard->offset + like.size(0) <= shard->global_rows, "rand_per_example: rows ",
              shard->offset, "..", shard->offset + like.size(0), " outside a global batch of ",
              shard->global_rows);
  std::vector<int64_t> shape(like.sizes().begin(), like.sizes().end());
  shape[0] = shard->global_rows;
  return at::rand(shape, like.options()).narrow(0, shard->offset, like.size(0));
}

}  // namespace zflow
