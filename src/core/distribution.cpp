#include "zflow/core/distribution.h"

namespace zflow {

std::pair<Tensor, Tensor> DistributionImpl::sample_and_log_prob(int64_t n, const Tensor& context) {
  Tensor samples = sample(n, context);
  return {samples, log_prob(samples, context)};
}

}  // namespace zflow
