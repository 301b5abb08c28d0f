#pragma once
/// \file
/// Checks on a spec before anything is built: a spec read from a file (or typed by hand)
/// can ask for 10^12 hidden units or 10^9 layers, which LibTorch would only discover in its
/// allocator, or not at all. make_flow, make_transform and make_distribution run these
/// checks first; the ready-made builders run them on their options.
///
/// Example:
///
///     zflow::SpecSize size = zflow::estimate_spec_size(spec);  // parameters and bytes
///     zflow::check_spec_size(spec);   // ConfigError naming the field before any allocation

#include <cstdint>
#include <string>

#include "zflow/core/spec.h"

namespace zflow {

/// The largest value a size field of a spec may take (features, hidden, layers, channels,
/// bins, components, context_features, factor, bits, every entry of a shape, and the
/// element count of a shape). Products of two sizes then fit in int64.
constexpr int64_t kMaxSpecSize = int64_t{1} << 31;

/// What a spec would build, estimated without building it.
struct SpecSize {
  /// Parameters and buffers, counted in float32 elements (int64 buffers count twice).
  double elements = 0;
  /// Transforms, networks and distributions: each costs bookkeeping beyond its tensors.
  double modules = 0;
  /// Path of the largest size field, e.g. "transform.layers[2].conditioner.hidden".
  std::string largest_field;
  /// Its value.
  int64_t largest_value = 0;

  /// Estimated bytes: 4 per element and 4 KiB per module.
  double bytes() const { return 4.0 * elements + 4096.0 * modules; }
};

/// Memory the process could use now: MemAvailable of /proc/meminfo, else the physical
/// memory (sysconf), else 2^63 when neither can be read.
uint64_t available_memory_bytes();

/// Walks a flow, transform or distribution spec. ConfigError naming the field (by its path
/// in the spec) for a size field above kMaxSpecSize; otherwise the estimate. Fields of the
/// wrong type are left to the builders, which name them too.
SpecSize estimate_spec_size(const Json& spec);

/// estimate_spec_size, then ConfigError when the estimate exceeds `budget_bytes`; the
/// message gives both sizes and names the spec's largest size field.
void check_spec_size(const Json& spec, uint64_t budget_bytes = available_memory_bytes());

/// "1.5 GB": a byte count for messages.
std::string byte_size_string(double bytes);

}  // namespace zflow
