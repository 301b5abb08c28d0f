// zflow train --init: a run that starts from a model file's flow and weights (fine-tuning,
// e.g. a flow-matching cnf by likelihood), what its model card records, and the one-line
// errors of an --init that cannot apply.

#include <cmath>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/cli_test.h"

namespace {

using zflow::testing::Outcome;

class InitCliTest : public zflow::testing::CliTest {
 protected:
  InitCliTest() : CliTest("zflow_init") {}

  /// Test NLL of a model on 1000 fresh moons points (the same points for every model).
  double moons_nll(const std::string& model) {
    const Outcome r = zflow("eval --model " + model + " --data moons --n 1000 --json");
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out)["nll"].get<double>();
  }

  nlohmann::json card_options(const std::string& model) {
    const Outcome r = zflow("info --model " + model + " --json");
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out)["train"]["options"];
  }
};

TEST_F(InitCliTest, StartsFromTheWeightsOfTheModelFile) {
  const std::string small = "--layers 2 --hidden 16 --n 2000 --batch-size 256";
  ASSERT_EQ(
      zflow("train --data moons --model realnvp " + small + " --steps 300 --out a.safetensors")
          .code,
      0);
  // One step of a vanishing learning rate: the model stays the one it started from, which
  // a fresh initialisation (the same run without --init) is far from.
  const std::string still = " --steps 1 --lr 1e-12 --eval-every 1";
  Outcome r =
      zflow("train --data moons --n 2000 --init a.safetensors" + still + " --out b.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("starting from a.safetensors"), std::string::npos) << r.err;
  ASSERT_EQ(
      zflow("train --data moons --model realnvp " + small + still + " --out c.safetensors").code,
      0);
  const double trained = moons_nll("a.safetensors");
  EXPECT_NEAR(moons_nll("b.safetensors"), trained, 1e-4);
  EXPECT_GT(moons_nll("c.safetensors"), trained + 0.1);

  const auto options = card_options("b.safetensors");
  EXPECT_EQ(options["init"], "a.safetensors");
  EXPECT_EQ(options["model"], "realnvp");
  EXPECT_FALSE(options.contains("hidden")) << options.dump();  // not this run's choice

  // A fine-tune that trains lowers the NLL further.
  r = zflow(
      "train --data moons --n 2000 --init a.safetensors --steps 200 --lr 1e-3 "
      "--out d.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_LT(moons_nll("d.safetensors"), trained);
}

TEST_F(InitCliTest, FlowMatchingCnfIsFineTunedByLikelihood) {
  ASSERT_EQ(zflow("train --data moons --n 2000 --model cnf --hidden 16 --steps 100 "
                  "--batch-size 256 --out fm.safetensors")
                .code,
            0);
  const Outcome r = zflow(
      "train --data moons --n 2000 --init fm.safetensors --objective likelihood --solver rk4 "
      "--ode-steps 4 --steps 10 --batch-size 128 --eval-every 5 --out ml.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("NLL"), std::string::npos) << r.err;
  const auto options = card_options("ml.safetensors");
  EXPECT_EQ(options["model"], "cnf");
  EXPECT_EQ(options["objective"], "likelihood");
  // The solver given for training is the model's own afterwards.
  const Outcome e = zflow("eval --model ml.safetensors --data moons --n 200 --json");
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(e.out)["nfe_per_sample"].get<double>(), 16.0);
}

TEST_F(InitCliTest, AnInitThatCannotApplyIsAOneLineError) {
  ASSERT_EQ(
      zflow("train --data moons --n 500 --layers 1 --hidden 8 --steps 5 --out a.safetensors").code,
      0);
  // The model file is the architecture: options describing another one are refused.
  Outcome r = zflow("train --data moons --init a.safetensors --hidden 32 --steps 5");
  expect_error(r, 2, "--hidden");
  r = zflow("train --data moons --init a.safetensors --model maf --steps 5");
  expect_error(r, 2, "--model");
  // The model is an input: training never overwrites it.
  r = zflow("train --data moons --init a.safetensors --steps 5 --out a.safetensors");
  expect_error(r, 2, "--init");
  r = zflow("train --data moons --init missing.safetensors --steps 5 --out m.safetensors");
  expect_error(r, 1, "missing.safetensors");
  ASSERT_EQ(shell("{ echo a,b,c; for i in $(seq 1 60); do echo $i,$((i * 7 % 13)),$((i * 5 % 11)); "
                  "done; } > three.csv")
                .code,
            0);
  r = zflow("train --data three.csv --init a.safetensors --steps 5 --out t.safetensors");
  expect_error(r, 2, "3 columns");
  EXPECT_FALSE(std::filesystem::exists(path("t.safetensors")));
}

}  // namespace
