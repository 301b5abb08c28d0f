#include "zflow/flows/assembly.h"

#include <iomanip>
#include <sstream>

#include <ATen/ATen.h>

#include "zflow/core/column_moments.h"
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
        {"activation", r.builder.activation.empty() ? "relu" : r.builder.activation}};
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
  if (r.event_shape.size() == 3) {
    // The context of an image model is its one-hot class (builders.h).
    BuilderOptions builder = r.builder;
    builder.context_features = r.context_features;
    return build_image_flow_spec(r.model, r.event_shape, builder);
  }
  BuilderOptions builder = r.builder;
  builder.context_features = r.embedding > 0 ? r.embedding : r.context_features;
  int64_t features = 1;
  for (int64_t s : r.event_shape) features *= s;
  return build_flow_spec(r.model, features, builder);
}

/// StandardizeImpl::fit over `rows` of `table` (all when undefined), in chunks.
std::shared_ptr<StandardizeImpl> fit_standardization(const at::Tensor& table,
                                                     const at::Tensor& rows) {
  TORCH_CHECK(table.dim() == 2, "standardize: fit needs data [N, D], got ", table.sizes());
  const ColumnMoments m = column_moments(table, rows);
  return StandardizeImpl::from_moments(m.mean, m.count > 1 ? m.std : at::ones_like(m.mean));
}

}  // namespace

AssembledSpec assemble_flow_spec(const FlowRecipe& r, const at::Tensor& train,
                                 const at::Tensor& train_context, const at::Tensor& train_rows) {
  AssembledSpec out;
  out.spec = base_spec(r);
  // Image models carry their own preprocessing (dequantisation, logit).
  if (r.standardize && r.event_shape.size() != 3) {
    const auto fitted = fit_standardization(train, train_rows);
    std::vector<double> mean = fitted->mean_values(), std = fitted->std_values();
    // Angles stay as they are: a shift or scale would break their period 2π.
    for (size_t j = 0; j < r.builder.circular.size() && j < mean.size(); ++j) {
      if (r.builder.circular[j] == 1) {
        mean[j] = 0.0;
        std[j] = 1.0;
      }
    }
    out.spec = with_standardization(out.spec, mean, std);
    out.standardization = {{"mean", mean}, {"std", std}};
  }
  if (r.context_features > 0) {
    std::vector<double> mean;
    std::vector<double> std;
    // An image model's context is a one-hot class, which the layers take as it is.
    if (r.standardize && r.event_shape.size() != 3) {
      const auto fitted = fit_standardization(train_context, train_rows);
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
                     at::ScalarType dtype, const at::Tensor& train_rows) {
  auto column_label = [&labels](int64_t j) {
    return j < static_cast<int64_t>(labels.size()) ? labels[static_cast<size_t>(j)]
                                                   : "column " + std::to_string(j + 1);
  };
  const ColumnMoments moments = column_moments(train, train_rows);
  std::vector<std::string> constant;
  for (int64_t j = 0; j < train.size(1); ++j) {
    if (moments.min[j].item<double>() == moments.max[j].item<double>()) {
      constant.push_back(column_label(j));
    }
  }
  if (!constant.empty()) {
    std::string names;
    for (const auto& c : constant) names += (names.empty() ? "" : ", ") + c;
    throw DataError(source + ": " + names + (constant.size() == 1 ? " is" : " are") +
                    " constant in the training rows; a flow cannot model a fixed value: "
                    "leave it out with --columns");
  }
  at::Tensor mean = at::zeros({all_values.size(1)}, at::kDouble);
  at::Tensor std = at::ones({all_values.size(1)}, at::kDouble);
  int64_t row = -1, col = -1;
  if (standardize) {
    // A column whose own mean or spread overflows (1e308 and -1e308) has no standardisation
    // (StandardizeImpl refuses it, and its spread would floor every other column's at
    // infinity): blame that column's largest value.
    const at::Tensor own_std = moments.count > 1 ? moments.std : at::ones_like(moments.mean);
    const at::Tensor broken = (~(at::isfinite(moments.mean) & at::isfinite(own_std))).nonzero();
    if (broken.size(0) > 0) {
      col = broken[0][0].item<int64_t>();
      row = all_values.select(1, col).to(at::kDouble).abs().argmax().item<int64_t>();
    } else {
      const auto fitted = StandardizeImpl::from_moments(moments.mean, own_std);
      mean = at::tensor(fitted->mean_values(), at::kDouble);
      std = at::tensor(fitted->std_values(), at::kDouble);
    }
  }
  // What the model's first layer sees, in the model's dtype (1e308 is no float32), a
  // chunk of rows at a time.
  constexpr int64_t kChunk = int64_t{1} << 18;
  for (int64_t begin = 0; row < 0 && begin < all_values.size(0); begin += kChunk) {
    const int64_t count = std::min(kChunk, all_values.size(0) - begin);
    const at::Tensor chunk = all_values.narrow(0, begin, count).to(at::kDouble);
    const at::Tensor z = ((chunk - mean) / std).to(dtype);
    if (const at::Tensor bad = (~at::isfinite(z)).nonzero(); bad.size(0) > 0) {
      row = begin + bad[0][0].item<int64_t>();
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
