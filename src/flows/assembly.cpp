#include "zflow/flows/assembly.h"

#include <iomanip>
#include <sstream>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/io/atomic_file.h"
#include "zflow/transforms/elementwise.h"

namespace zflow {

namespace {

std::string number(double value) {
  std::ostringstream s;
  s << std::setprecision(4) << value;
  return s.str();
}

/// Makes `spec` conditional on `k` context features: the flow's context size, the context
/// standardisation (`context_mean`/`context_std`, skipped when empty) and the embedding.
Json with_context(Json spec, int64_t k, const std::vector<double>& context_mean,
                  const std::vector<double>& context_std, const FlowRecipe& r) {
  const std::string where = r.spec_source.empty() ? "" : r.spec_source + ": ";
  // A builder's spec says the layers' context size, which differs with an embedding; a
  // hand-written spec must agree with the chosen columns.
  if (!r.spec.is_null() && spec.contains("context_features") &&
      spec["context_features"] != Json(k)) {
    throw ConfigError(where +
                      "the spec has \"context_features\": " + spec["context_features"].dump() +
                      ", --context-columns chose " + std::to_string(k));
  }
  spec["context_features"] = k;
  if (!context_mean.empty() && !spec.contains("context_standardize")) {
    spec["context_standardize"] = {
        {"type", "standardize"}, {"mean", context_mean}, {"std", context_std}};
  }
  if (r.embedding > 0) {
    if (spec.contains("embedding")) {
      throw ConfigError(where + "the spec has an embedding already; drop --embedding");
    }
    spec["embedding"] = {
        {"type", "mlp"},
        {"features", r.embedding},
        {"hidden", r.builder.hidden > 0 ? r.builder.hidden : kDefaultTabularHidden},
        {"layers", 1},
        {"activation", r.builder.activation}};
  }
  return spec;
}

Json base_spec(const FlowRecipe& r) {
  const bool conditional = r.context_features > 0;
  if (!r.spec.is_null()) {
    if (!conditional && r.spec.value("context_features", int64_t{0}) > 0) {
      throw ConfigError(r.spec_source + ": the spec is conditional on a context of " +
                        r.spec["context_features"].dump() +
                        " features; choose its columns with --context-columns");
    }
    return r.spec;
  }
  if (r.event_shape.size() == 3) return build_image_flow_spec(r.model, r.event_shape, r.builder);
  BuilderOptions builder = r.builder;
  builder.context_features = r.embedding > 0 ? r.embedding : r.context_features;
  int64_t features = 1;
  for (int64_t s : r.event_shape) features *= s;
  return build_flow_spec(r.model, features, builder);
}

}  // namespace

AssembledSpec assemble_flow_spec(const FlowRecipe& r, const at::Tensor& train,
                                 const at::Tensor& train_context) {
  AssembledSpec out;
  out.spec = base_spec(r);
  // Image models carry their own preprocessing (dequantisation, logit).
  if (r.standardize && r.event_shape.size() != 3) {
    const auto fitted = StandardizeImpl::fit(train);
    out.spec = with_standardization(out.spec, fitted->mean_values(), fitted->std_values());
    out.standardization = {{"mean", fitted->mean_values()}, {"std", fitted->std_values()}};
  }
  if (r.context_features > 0) {
    std::vector<double> mean;
    std::vector<double> std;
    if (r.standardize) {
      const auto fitted = StandardizeImpl::fit(train_context);
      mean = fitted->mean_values();
      std = fitted->std_values();
      out.context_standardization = {{"mean", mean}, {"std", std}};
    }
    out.spec = with_context(out.spec, r.context_features, mean, std, r);
  }
  return out;
}

Json read_flow_spec_file(const std::string& path) {
  const std::string text = io::read_file(path);
  Json spec;
  try {
    spec = Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!spec.is_object() || spec.value("type", std::string()) != "flow") {
    throw ConfigError(path + ": a flow spec must be a JSON object with \"type\": \"flow\"");
  }
  if (!spec.contains("transform") || !spec.contains("base")) {
    throw ConfigError(path + ": a flow spec needs \"transform\" and \"base\"");
  }
  // with_standardization inserts a first layer into a composite transform.
  if (!spec["transform"].is_object() ||
      spec["transform"].value("type", std::string()) != "composite") {
    spec["transform"] = Json{{"type", "composite"}, {"layers", Json::array({spec["transform"]})}};
  }
  return spec;
}

void check_trainable(const std::string& source, const std::vector<std::string>& labels,
                     const at::Tensor& all_values, const at::Tensor& train, bool standardize,
                     at::ScalarType dtype) {
  auto column_label = [&labels](int64_t j) {
    return j < static_cast<int64_t>(labels.size()) ? labels[static_cast<size_t>(j)]
                                                   : "column " + std::to_string(j + 1);
  };
  const at::Tensor lo = std::get<0>(train.min(0));
  const at::Tensor hi = std::get<0>(train.max(0));
  std::vector<std::string> constant;
  for (int64_t j = 0; j < train.size(1); ++j) {
    if (lo[j].item<double>() == hi[j].item<double>()) constant.push_back(column_label(j));
  }
  if (!constant.empty()) {
    std::string names;
    for (const auto& c : constant) names += (names.empty() ? "" : ", ") + c;
    throw DataError(source + ": " + names + (constant.size() == 1 ? " is" : " are") +
                    " constant in the training rows; a flow cannot model a fixed value: "
                    "leave it out with --columns");
  }
  const at::Tensor values = all_values.to(at::kDouble);
  at::Tensor mean = at::zeros({values.size(1)}, at::kDouble);
  at::Tensor std = at::ones({values.size(1)}, at::kDouble);
  int64_t row = -1, col = -1;
  if (standardize) {
    // A column whose own mean or spread overflows (1e308 and -1e308) has no standardisation
    // (StandardizeImpl refuses it, and its spread would floor every other column's at
    // infinity): blame that column's largest value.
    const at::Tensor rows = train.to(at::kDouble);
    const at::Tensor own_mean = rows.mean(0);
    const at::Tensor own_std =
        rows.size(0) > 1 ? rows.std(0, /*unbiased=*/false) : at::ones_like(own_mean);
    const at::Tensor broken = (~(at::isfinite(own_mean) & at::isfinite(own_std))).nonzero();
    if (broken.size(0) > 0) {
      col = broken[0][0].item<int64_t>();
      row = values.select(1, col).abs().argmax().item<int64_t>();
    } else {
      const auto fitted = StandardizeImpl::fit(train);
      mean = at::tensor(fitted->mean_values(), at::kDouble);
      std = at::tensor(fitted->std_values(), at::kDouble);
    }
  }
  // What the model's first layer sees, in the model's dtype (1e308 is no float32).
  if (row < 0) {
    const at::Tensor z = ((values - mean) / std).to(dtype);
    if (const at::Tensor bad = (~at::isfinite(z)).nonzero(); bad.size(0) > 0) {
      row = bad[0][0].item<int64_t>();
      col = bad[0][1].item<int64_t>();
    }
  }
  if (row >= 0) {
    throw DataError(source + ": row " + std::to_string(row + 1) + ", " + column_label(col) +
                    ": the value " + number(all_values[row][col].item<double>()) +
                    " overflows after standardisation (the column's mean or spread, or the "
                    "standardised value in " +
                    std::string(c10::toString(dtype)) +
                    ", is not a finite number); rescale the column or remove extreme rows");
  }
}

}  // namespace zflow
