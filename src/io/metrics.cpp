#include "zflow/io/metrics.h"

#include <cmath>
#include <cstdint>
#include <sstream>

#include "zflow/core/error.h"
#include "zflow/io/atomic_file.h"

namespace zflow::io {

using Json = nlohmann::json;

std::vector<Json> read_metrics(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<Json> records;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      records.push_back(Json::parse(line));
    } catch (const nlohmann::json::exception&) {
      throw DataError(path + ": line " + std::to_string(number) + " is not JSON");
    }
  }
  return records;
}

namespace {

/// The value of `key` in `record` if it is a finite number.
bool finite_number(const Json& record, const char* key, double* value) {
  const auto it = record.find(key);
  if (it == record.end() || !it->is_number()) return false;
  *value = it->get<double>();
  return std::isfinite(*value);
}

}  // namespace

MetricsCurves metrics_curves(const std::vector<Json>& records) {
  MetricsCurves curves;
  for (const auto& r : records) curves.bits_per_dim |= r.is_object() && r.contains("train_bpd");
  const char* train_key = curves.bits_per_dim ? "train_bpd" : "train_nll";
  const char* val_keys[2][2] = {{"val_nll", "train_subset_nll"}, {"val_bpd", "train_subset_bpd"}};
  for (size_t i = 0; i < records.size(); ++i) {
    const Json& r = records[i];
    if (!r.is_object() || !r.contains("step") || r.contains("event")) continue;
    double step = 0;
    if (!finite_number(r, "step", &step)) {
      throw DataError("metrics record " + std::to_string(i + 1) +
                      ": \"step\" is not a finite number (got " + r["step"].dump() + ")");
    }
    double value = 0;
    if (finite_number(r, train_key, &value)) {
      curves.steps.push_back(step);
      curves.train.push_back(value);
    }
    for (const char* key : val_keys[curves.bits_per_dim ? 1 : 0]) {
      if (finite_number(r, key, &value)) {
        curves.val_steps.push_back(step);
        curves.val.push_back(value);
        break;
      }
    }
  }
  return curves;
}

}  // namespace zflow::io
