#include "zflow/flows/spec_size.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <set>
#include <vector>

#include "zflow/nn/conv.h"
#include "zflow/nn/made.h"
#include "zflow/nn/mlp.h"
#include "zflow/transforms/iresnet.h"
#include "zflow/transforms/neural_autoregressive.h"
#include "zflow/transforms/transformer.h"

namespace zflow {

namespace {

/// Keys whose integer values (or integer array entries) are sizes. "layers" is a size in a
/// conditioner and an array of specs in a composite; only integers are checked.
const std::set<std::string>& size_keys() {
  static const std::set<std::string> keys = {
      "features",       "hidden",          "layers", "channels",         "bins",
      "components",     "factor",          "bits",   "context_features", "shape",
      "embedding_size", "num_reflections", "units",  "hidden_units"};
  return keys;
}

class Walker {
 public:
  SpecSize size;

  /// Every size field anywhere in the spec, whatever the type around it: a spec type that
  /// an application registered is bounded too.
  void bound(const Json& node, const std::string& path) {
    if (node.is_array()) {
      for (size_t i = 0; i < node.size(); ++i) bound(node[i], path + "[" + std::to_string(i) + "]");
      return;
    }
    if (!node.is_object()) return;
    for (const auto& item : node.items()) {
      const std::string field = path.empty() ? item.key() : path + "." + item.key();
      const Json& value = item.value();
      if (size_keys().count(item.key()) != 0) {
        if (value.is_number_integer()) {
          check(field, value);
        } else if (value.is_array() && std::all_of(value.begin(), value.end(), [](const Json& v) {
                     return v.is_number_integer();
                   })) {
          double product = 1;
          for (size_t i = 0; i < value.size(); ++i) {
            check(field + "[" + std::to_string(i) + "]", value[i]);
            product *= std::max(1.0, static_cast<double>(value[i].get<int64_t>()));
          }
          if (item.key() == "shape" && product > static_cast<double>(kMaxSpecSize)) {
            throw ConfigError("spec field '" + field + "' = " + value.dump() + " has " +
                              number(product) + " elements, more than " +
                              std::to_string(kMaxSpecSize));
          }
        }
      }
      bound(value, field);
    }
  }

  /// The elements and modules that `spec` builds (a rough upper estimate per known type).
  void estimate(const Json& spec) {
    if (!spec.is_object()) return;
    size.modules += 1;
    const std::string type = spec_type(spec);
    const double context = integer(spec, "context_features", 0);
    if (type == "flow") {
      estimate(field(spec, "transform"));
      estimate(field(spec, "base"));
      estimate(field(spec, "context_standardize"));
      const Json embedding = field(spec, "embedding");
      if (embedding.is_object()) dense(context, integer(embedding, "features", 1), embedding);
    } else if (type == "composite") {
      for_each(field(spec, "layers"));
    } else if (type == "multiscale") {
      for_each(field(spec, "levels"));
    } else if (type == "inverse") {
      estimate(field(spec, "transform"));
    } else if (type == "affine_coupling" || type == "additive_coupling" ||
               type == "spline_coupling") {
      const double features = length(spec, "mask");
      const double per_feature = type == "affine_coupling"     ? 2
                                 : type == "additive_coupling" ? 1
                                                               : spline_params(spec);
      dense(features + context, features * per_feature, field(spec, "conditioner"));
    } else if (type == "masked_affine_autoregressive" || type == "inverse_autoregressive" ||
               type == "masked_spline_autoregressive") {
      const double features = integer(spec, "features", 1);
      const double per_feature = type == "masked_spline_autoregressive" ? spline_params(spec) : 2.0;
      made(features, per_feature, context, field(spec, "made"));
    } else if (type == "neural_autoregressive") {
      // The MADE emits 3 parameters per sigmoid unit and feature.
      const double units =
          integer(spec, "units", static_cast<double>(NeuralAutoregressiveOptions(0).units()));
      made(integer(spec, "features", 1), 3 * units, context, field(spec, "made"));
    } else if (type == "block_neural_autoregressive") {
      // Block matrices D·1 → D·a → … → D·a → D·1, each with a bias and a log-scale per row,
      // and the context's map into the first hidden layer.
      const BlockNeuralAutoregressiveOptions defaults(0);
      const double features = integer(spec, "features", 1);
      const double width =
          features * integer(spec, "hidden_units", static_cast<double>(defaults.hidden_units()));
      const double layers = integer(spec, "layers", static_cast<double>(defaults.layers()));
      size.elements += 2 * features * width + std::max(layers - 1, 0.0) * width * width +
                       2 * (layers * width + features) + width * context + 1;
    } else if (type == "permutation") {
      // int64 indices and their inverse.
      size.elements += 4 * std::max(integer(spec, "features", 0), length(spec, "indices"));
    } else if (type == "actnorm" || type == "elementwise_affine") {
      // ActNorm's "initialized" flag is one more element.
      size.elements += 2 * integer(spec, "features", 1) + 1;
    } else if (type == "lu_linear") {
      const double features = integer(spec, "features", 1);
      size.elements += 2 * features * features + 2 * features;
    } else if (type == "planar" || type == "radial") {
      size.elements += 2 * integer(spec, "features", 1) + 2;
    } else if (type == "sylvester") {
      // R, R̃ [D, D], the Householder vectors [K, D], two diagonals and the bias [D].
      const double features = integer(spec, "features", 1);
      size.elements += (2 * features + integer(spec, "num_reflections", 2) + 3) * features;
    } else if (type == "iresnet") {
      // g: D → H → … → H → D; each weight [out, in] with its bias [out] and the power
      // iteration's buffers u [out], v [in].
      const InvertibleResidualOptions defaults(0);
      const double features = integer(spec, "features", 1);
      const double hidden = integer(spec, "hidden", static_cast<double>(defaults.hidden()));
      const double layers = integer(spec, "layers", static_cast<double>(defaults.layers()));
      size.elements += (2 * features + 3) * hidden + 3 * features +
                       std::max(layers - 1, 0.0) * (hidden + 3) * hidden;
    } else if (type == "standardize") {
      size.elements += 2 * length(spec, "mean");
    } else if (type == "conv_coupling") {
      // 3x3 convolution in, 1x1 hidden, 3x3 out to (up to) twice the channels.
      const double channels = integer(spec, "channels", 1);
      const double hidden =
          integer(spec, "hidden", static_cast<double>(nn::ConvNetOptions(0, 0).hidden_channels()));
      size.elements += 9 * channels * hidden + hidden * hidden + 18 * hidden * channels +
                       2 * hidden + 2 * channels;
    } else if (type == "cnf") {
      const Json velocity = field(spec, "velocity");
      const double time = 1 + integer(velocity, "embedding_size", 16);
      if (length(spec, "shape") == 3) {
        // A U-Net: per level, blocks of two 3x3 convolutions at width hidden·2^level, and the
        // same again on the way up.
        const double hidden = integer(velocity, "hidden", 32);
        const double levels = integer(velocity, "levels", 2);
        const double blocks = integer(velocity, "blocks", 1);
        size.elements += 4 * 18 * hidden * hidden * std::pow(4.0, levels) * blocks / 3;
      } else {
        const double features = shape_elements(spec);
        dense(features + time + context, features, velocity);
      }
    } else if (type == "standard_normal") {
      size.elements += 0;
    } else if (type == "diagonal_normal") {
      size.elements += 2 * shape_elements(spec);
    } else if (type == "gaussian_mixture") {
      size.elements += integer(spec, "components", 1) * (2 * shape_elements(spec) + 1);
    } else if (type == "box_uniform") {
      size.elements += 2 * length(spec, "low");
    } else if (type == "conditional_diagonal_normal") {
      dense(context, 2 * shape_elements(spec), field(spec, "conditioner"));
    }
  }

 private:
  void check(const std::string& field, const Json& value) {
    if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(kMaxSpecSize)) {
      throw ConfigError("spec field '" + field + "' = " + value.dump() + " is too large (at most " +
                        std::to_string(kMaxSpecSize) + ")");
    }
    const int64_t v = value.is_number_unsigned() ? static_cast<int64_t>(value.get<uint64_t>())
                                                 : value.get<int64_t>();
    if (v > size.largest_value) {
      size.largest_value = v;
      size.largest_field = field;
    }
  }

  static std::string number(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", value);
    return text;
  }

  static Json field(const Json& spec, const char* key) {
    const auto it = spec.find(key);
    return it == spec.end() ? Json() : *it;
  }

  /// An integer field as a double, `fallback` when absent, negative or not an integer (the
  /// builder reports those).
  static double integer(const Json& spec, const char* key, double fallback) {
    const auto it = spec.find(key);
    if (it == spec.end() || !it->is_number_integer()) return fallback;
    if (it->is_number_unsigned()) return static_cast<double>(it->get<uint64_t>());
    return std::max(0.0, static_cast<double>(it->get<int64_t>()));
  }

  static double length(const Json& spec, const char* key) {
    const auto it = spec.find(key);
    return it != spec.end() && it->is_array() ? static_cast<double>(it->size()) : 0.0;
  }

  static double shape_elements(const Json& spec) {
    const auto it = spec.find("shape");
    if (it == spec.end() || !it->is_array()) return 1;
    double product = 1;
    for (const auto& d : *it) {
      if (d.is_number_integer()) product *= std::max(1.0, static_cast<double>(d.get<int64_t>()));
    }
    return product;
  }

  /// Parameters per feature of a rational-quadratic spline: widths, heights, derivatives.
  static double spline_params(const Json& spec) {
    return 3 * integer(spec, "bins", static_cast<double>(SplineTransformerOptions().bins())) + 1;
  }

  void for_each(const Json& specs) {
    if (!specs.is_array()) return;
    for (const auto& s : specs) estimate(s);
  }

  /// An MLP conditioner ("mlp" or "resmlp") from `in` to `out` features.
  void dense(double in, double out, const Json& net) {
    const Json s = net.is_object() ? net : Json::object();
    const nn::MLPOptions defaults(0, 0);
    const double hidden = integer(s, "hidden", static_cast<double>(defaults.hidden_features()));
    const double layers = integer(s, "layers", static_cast<double>(defaults.num_layers()));
    const double blocks = spec_type(s) == "resmlp" ? 2 * layers : std::max(layers - 1, 0.0);
    size.elements += (in + 1) * hidden + blocks * (hidden + 1) * hidden + (hidden + 1) * out;
    size.modules += 2 + blocks;
  }

  /// A MADE: masked layers through `hidden` widths, each weight with its mask.
  void made(double features, double per_feature, double context, const Json& net) {
    const Json s = net.is_object() ? net : Json::object();
    const auto default_widths = nn::MADEOptions(0, 0).hidden();
    std::vector<double> widths(default_widths.begin(), default_widths.end());
    const auto it = s.find("hidden");
    if (it != s.end() && it->is_array()) {
      widths.clear();
      for (const auto& h : *it) {
        if (h.is_number_integer())
          widths.push_back(std::max(0.0, static_cast<double>(h.get<int64_t>())));
      }
    }
    double in = features + context;
    for (double width : widths) {
      size.elements += 2 * in * width + width;
      in = width;
    }
    size.elements += 2 * in * features * per_feature + features * per_feature;
    size.modules += 1 + static_cast<double>(widths.size());
  }
};

}  // namespace

uint64_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    unsigned long long kib = 0;
    if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kib) == 1) return kib * 1024ULL;
  }
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) {
    return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
  }
  return static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

std::string byte_size_string(double bytes) {
  const char* units[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
  size_t unit = 0;
  while (bytes >= 1000 && unit + 1 < sizeof units / sizeof units[0]) {
    bytes /= 1000;
    ++unit;
  }
  char text[64];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.3g %s", bytes, units[unit]);
  return text;
}

SpecSize estimate_spec_size(const Json& spec) {
  Walker walker;
  walker.bound(spec, "");
  walker.estimate(spec);
  return walker.size;
}

void check_spec_size(const Json& spec, uint64_t budget_bytes) {
  const SpecSize size = estimate_spec_size(spec);
  if (size.bytes() <= static_cast<double>(budget_bytes)) return;
  std::string message = "the spec of type '" + spec_type(spec) + "' needs about " +
                        byte_size_string(size.bytes()) + " for its parameters, more than the " +
                        byte_size_string(static_cast<double>(budget_bytes)) +
                        " of memory available";
  if (!size.largest_field.empty()) {
    message += "; its largest size is '" + size.largest_field +
               "' = " + std::to_string(size.largest_value);
  }
  throw ConfigError(message);
}

}  // namespace zflow
