#pragma once

// Tests that need something outside zflow (headless Chromium, Debian's Fashion-MNIST
// package) skip when it is missing, with a message naming it, except in CI: there
// scripts/setup.sh has installed both and .ci/run sets CI=true, so a missing piece is a
// failure rather than a test that silently stopped running (docs/testing.md).

#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

namespace zflow::testing {

/// Whether the tests run in CI: the environment variable CI is "true".
inline bool in_ci() {
  const char* value = std::getenv("CI");
  return value != nullptr && std::strcmp(value, "true") == 0;
}

}  // namespace zflow::testing

/// Ends the test because something it needs is missing: a skip with `message`, or a
/// failure with it when CI=true. `message` may chain with <<.
#define ZFLOW_REQUIRED_BUT_MISSING(message)                               \
  do {                                                                    \
    if (::zflow::testing::in_ci()) {                                      \
      FAIL() << message << " [CI=true: this test must run, so it fails]"; \
    } else {                                                              \
      GTEST_SKIP() << message;                                            \
    }                                                                     \
  } while (0)
