#include "zflow/flows/model_card.h"

namespace zflow {

namespace {

// The entry parsed as JSON, or null when absent or not JSON.
Json entry(const std::map<std::string, std::string>& metadata, const std::string& key) {
  const auto it = metadata.find(key);
  if (it == metadata.end()) return nullptr;
  try {
    return Json::parse(it->second);
  } catch (const nlohmann::json::exception&) {
    return nullptr;
  }
}

std::string text(const std::map<std::string, std::string>& metadata, const std::string& key) {
  const auto it = metadata.find(key);
  return it == metadata.end() ? std::string() : it->second;
}

std::vector<std::string> names(const Json& stored, int64_t expected) {
  std::vector<std::string> out;
  if (!stored.is_array() || static_cast<int64_t>(stored.size()) != expected) return out;
  for (const auto& c : stored) out.push_back(c.is_string() ? c.get<std::string>() : "");
  return out;
}

std::vector<int64_t> indices(const Json& stored, int64_t expected) {
  std::vector<int64_t> out;
  if (!stored.is_array() || static_cast<int64_t>(stored.size()) != expected) return out;
  for (const auto& i : stored) {
    if (!i.is_number_integer() || i.get<int64_t>() < 0) return {};
    out.push_back(i.get<int64_t>());
  }
  return out;
}

}  // namespace

std::map<std::string, std::string> ModelCard::to_metadata() const {
  std::map<std::string, std::string> m = {
      {"model_card", std::to_string(version)},
      {"dataset", dataset},
      {"model", model},
      {"features", std::to_string(features)},
      {"columns", Json(columns).dump()},
      {"data_column_indices", Json(column_indices).dump()},
      {"context_features", std::to_string(context_features)},
      {"context_columns", Json(context_columns).dump()},
      {"standardization", standardization.dump()},
      {"context_standardization", context_standardization.dump()},
      {"train", train.dump()}};
  if (context_features > 0) m["context_column_indices"] = Json(context_column_indices).dump();
  if (!image_shape.empty()) m["image_shape"] = Json(image_shape).dump();
  if (!class_names.empty()) m["class_names"] = Json(class_names).dump();
  if (!metrics_file.empty()) m["metrics_file"] = Json(metrics_file).dump();
  return m;
}

ModelCard ModelCard::from_metadata(const std::map<std::string, std::string>& metadata,
                                   int64_t features, int64_t context_features) {
  ModelCard card;
  const Json version = entry(metadata, "model_card");
  card.version = version.is_number_integer() ? version.get<int>() : 0;
  card.dataset = text(metadata, "dataset");
  card.model = text(metadata, "model");
  card.features = features;
  card.columns = names(entry(metadata, "columns"), features);
  card.column_indices = indices(entry(metadata, "data_column_indices"), features);
  card.context_features = context_features;
  card.context_columns = names(entry(metadata, "context_columns"), context_features);
  card.context_column_indices =
      indices(entry(metadata, "context_column_indices"), context_features);
  const Json shape = entry(metadata, "image_shape");
  if (shape.is_array() && shape.size() == 3) card.image_shape = indices(shape, 3);
  if (!card.image_shape.empty()) {
    card.class_names = names(entry(metadata, "class_names"), context_features);
  }
  card.standardization = entry(metadata, "standardization");
  card.context_standardization = entry(metadata, "context_standardization");
  card.train = entry(metadata, "train");
  const Json metrics = entry(metadata, "metrics_file");
  if (metrics.is_string()) card.metrics_file = metrics.get<std::string>();
  return card;
}

}  // namespace zflow
