#include "zflow/nn/conditioner.h"

namespace zflow::nn {

namespace {

class FunctionConditionerFactory : public ConditionerFactory {
 public:
  FunctionConditionerFactory(std::function<ConditionerPtr(int64_t, int64_t, int64_t)> make,
                             Json spec)
      : make_(std::move(make)), spec_(std::move(spec)) {}
  ConditionerPtr make(int64_t in_features, int64_t out_features,
                      int64_t context_features) const override {
    return make_(in_features, out_features, context_features);
  }
  Json spec() const override { return spec_; }

 private:
  std::function<ConditionerPtr(int64_t, int64_t, int64_t)> make_;
  Json spec_;
};

}  // namespace

ConditionerFactoryPtr conditioner_factory(
    std::function<ConditionerPtr(int64_t, int64_t, int64_t)> make, Json spec) {
  return std::make_shared<FunctionConditionerFactory>(std::move(make), std::move(spec));
}

}  // namespace zflow::nn
