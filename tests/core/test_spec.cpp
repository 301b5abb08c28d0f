// The spec helpers (core/spec.h) and the error family (core/error.h): which JSON values a
// field accepts, and the messages and types of the errors for the others.

#include "zflow/core/spec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "support/expect_error.h"
#include "zflow/core/error.h"

namespace {

using zflow::ConfigError;
using zflow::Json;
using zflow::testing::expect_error;

TEST(Errors, EveryErrorIsAZflowErrorAndARuntimeError) {
  EXPECT_THROW(throw zflow::ConfigError("c"), zflow::Error);
  EXPECT_THROW(throw zflow::IOError("i"), zflow::Error);
  EXPECT_THROW(throw zflow::DataError("d"), zflow::Error);
  EXPECT_THROW(throw zflow::NotInvertibleError("n"), zflow::Error);
  EXPECT_THROW(throw zflow::IOError("i"), std::runtime_error);
  EXPECT_STREQ(zflow::DataError("row 3: NaN").what(), "row 3: NaN");
}

TEST(SpecType, NamesTheTypeOrAQuestionMark) {
  EXPECT_EQ(zflow::spec_type(Json{{"type", "affine"}}), "affine");
  EXPECT_EQ(zflow::spec_type(Json{{"features", 2}}), "?");
  EXPECT_EQ(zflow::spec_type(Json{{"type", 3}}), "?");
  EXPECT_EQ(zflow::spec_type(Json::array({1, 2})), "?");
}

TEST(SpecRequired, ReadsFieldsOfTheirType) {
  const Json spec = {{"type", "t"},    {"n", 3},          {"x", 2.5},
                     {"name", "relu"}, {"sizes", {4, 5}}, {"flag", true}};
  EXPECT_EQ(zflow::spec_required<int64_t>(spec, "n"), 3);
  EXPECT_EQ(zflow::spec_required<double>(spec, "x"), 2.5);
  EXPECT_EQ(zflow::spec_required<double>(spec, "n"), 3.0);  // an integer is a number
  EXPECT_EQ(zflow::spec_required<std::string>(spec, "name"), "relu");
  EXPECT_EQ(zflow::spec_required<std::vector<int64_t>>(spec, "sizes"),
            (std::vector<int64_t>{4, 5}));
  EXPECT_TRUE(zflow::spec_required<bool>(spec, "flag"));
}

TEST(SpecRequired, MissingAndWrongFieldsAreConfigErrorsNamingThem) {
  const Json spec = {{"type", "coupling"}, {"n", 2.7},  {"big", 300},
                     {"neg", -1},          {"name", 4}, {"sizes", {1, 2.5}}};
  expect_error<ConfigError>([&] { zflow::spec_required<int64_t>(spec, "hidden"); },
                            {"coupling", "missing", "'hidden'"});
  expect_error<ConfigError>([&] { zflow::spec_required<int64_t>(spec, "n"); },
                            {"'n'", "must be an integer", "2.7"});
  expect_error<ConfigError>([&] { zflow::spec_required<uint8_t>(spec, "big"); },
                            {"'big'", "out of range", "300"});
  expect_error<ConfigError>([&] { zflow::spec_required<uint32_t>(spec, "neg"); },
                            {"'neg'", "out of range"});
  expect_error<ConfigError>([&] { zflow::spec_required<std::string>(spec, "name"); },
                            {"'name'", "wrong type"});
  expect_error<ConfigError>([&] { zflow::spec_required<std::vector<int64_t>>(spec, "sizes"); },
                            {"'sizes'", "array of integers"});
  expect_error<ConfigError>([&] { zflow::spec_required<int64_t>(Json::array(), "n"); },
                            {"missing", "'n'"});
}

TEST(SpecOptional, FallbackOnlyWhenAbsentOrNull) {
  const Json spec = {{"type", "t"}, {"n", 5}, {"none", nullptr}, {"bad", "x"}};
  EXPECT_EQ(zflow::spec_optional<int64_t>(spec, "n", 1), 5);
  EXPECT_EQ(zflow::spec_optional<int64_t>(spec, "absent", 1), 1);
  EXPECT_EQ(zflow::spec_optional<int64_t>(spec, "none", 1), 1);
  EXPECT_THROW(zflow::spec_optional<int64_t>(spec, "bad", 1), ConfigError);
}

TEST(SpecChecks, ShapesPositiveValuesAndUnknownFields) {
  EXPECT_EQ(zflow::shape_string({1, 28, 28}), "[1, 28, 28]");
  EXPECT_EQ(zflow::shape_string({}), "[]");
  EXPECT_NO_THROW(zflow::require_positive("bins", 1));
  expect_error<ConfigError>([] { zflow::require_positive("bins", 0); }, {"bins", "positive", "0"});
  expect_error<ConfigError>([] { zflow::require_positive("layers", -3); }, {"layers", "-3"});
  const Json spec = {{"type", "mlp"}, {"hidden", 8}, {"hiden", 8}, {"layer", 2}};
  EXPECT_NO_THROW(zflow::reject_unknown_fields(spec, {"hidden", "hiden", "layer"}));
  expect_error<ConfigError>(
      [&] {
        zflow::reject_unknown_fields(spec, {"hidden", "layers"});
      },
      {"mlp", "unknown", "hiden", "layer"});
  EXPECT_THROW(zflow::reject_unknown_fields(Json::array(), {}), ConfigError);
}

}  // namespace
