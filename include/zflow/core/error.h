#pragma once
/// \file
/// zflow's exception family. The library throws and never prints or exits; the CLI maps
/// these to one line on stderr and an exit code (see docs/conventions.md). Every class
/// derives from zflow::Error (a std::runtime_error), so one handler catches them all;
/// violated tensor contracts (shapes, dtypes) are c10::Error from TORCH_CHECK instead.
///
/// Example:
///
///     try {
///       zflow::FlowPtr flow = zflow::make_flow(spec);  // zflow/flows/registry.h
///     } catch (const zflow::ConfigError& e) {
///       std::cerr << "bad spec: " << e.what() << '\n';
///     } catch (const zflow::Error& e) { std::cerr << e.what() << '\n'; }

#include <stdexcept>
#include <string>

namespace zflow {

/// Base class of every error zflow throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A spec, an option value or an argument that makes no sense (unknown type, bad size).
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A file that cannot be opened, read or written, or whose format is damaged.
class IOError : public Error {
 public:
  using Error::Error;
};

/// Data that cannot be used: malformed rows, NaN/Inf values, a width that does not match.
class DataError : public Error {
 public:
  using Error::Error;
};

/// A transform without an analytic inverse was asked for one.
class NotInvertibleError : public Error {
 public:
  using Error::Error;
};

}  // namespace zflow
