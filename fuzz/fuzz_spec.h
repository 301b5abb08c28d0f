#pragma once
// Building from an untrusted spec under a fuzzer: the size checks run with a small budget
// first, so that a valid but large spec is skipped rather than allocated (libFuzzer would
// report it as an out-of-memory crash).

#include <cstdint>

#include "zflow/core/error.h"
#include "zflow/flows/spec_size.h"

namespace zflow::fuzz {

/// Parameter bytes a fuzzed spec may ask for.
constexpr uint64_t kSpecBudget = uint64_t{16} << 20;

/// Whether `spec` passes the size checks within kSpecBudget.
inline bool small_enough(const Json& spec) {
  try {
    check_spec_size(spec, kSpecBudget);
    return true;
  } catch (const ConfigError&) {
    return false;
  }
}

}  // namespace zflow::fuzz
