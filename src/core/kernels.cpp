#include "zflow/core/kernels.h"

#include <atomic>

namespace zflow {

namespace {
std::atomic<bool> fused_enabled{true};
}  // namespace

void use_fused_kernels(bool fused) { fused_enabled.store(fused, std::memory_order_relaxed); }

bool fused_kernels() { return fused_enabled.load(std::memory_order_relaxed); }

}  // namespace zflow
