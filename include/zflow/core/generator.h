#pragma once
/// \file
/// Scoped seeding of torch's default CPU generator: draws that must repeat (the same
/// validation samples at every evaluation) without shifting the stream that training draws
/// from.
///
/// Example:
///
///     double score = zflow::with_generator_seed(7, [&] { return
///     at::randn({4}).sum().item<double>(); });
///     // the same number every call; at::randn afterwards continues as if nothing was drawn

#include <cstdint>
#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>

namespace zflow {

/// Runs `work` with torch's CPU generator seeded by `seed`, then puts the generator back
/// as it was (also when `work` throws): what `work` draws does not shift the caller's stream.
template <typename Work>
auto with_generator_seed(uint64_t seed, Work&& work) {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  at::Tensor saved;
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    saved = generator.get_state();
    generator.set_current_seed(seed);
  }
  struct Restore {
    at::Generator& generator;
    const at::Tensor& saved;
    ~Restore() {
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(saved);
    }
  } restore{generator, saved};
  return work();
}

}  // namespace zflow
