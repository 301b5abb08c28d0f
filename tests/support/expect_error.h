#pragma once

// A gtest helper for the library's one-line error messages.

#include <exception>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace zflow::testing {

/// Expects `fn` to throw E with a message containing every one of `parts`.
template <typename E, typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected an exception";
  } catch (const E& e) {
    const std::string what = e.what();
    for (const auto& part : parts) {
      EXPECT_NE(what.find(part), std::string::npos) << "message: " << what << "\nmissing: " << part;
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

}  // namespace zflow::testing
