// zflow train and fit-target with every --base: tiny flows over each base train, their model
// files rebuild the base (sample, eval and info work on them), and a base that cannot serve
// is one clear error line.

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/cli_test.h"

namespace {

using nlohmann::json;
using zflow::testing::Outcome;

// A few steps of a tiny model on 600 points of moons: seconds each.
const std::string kTiny =
    " --model realnvp --layers 2 --hidden 8 --steps 20 --eval-every 10 --batch-size 64"
    " --threads 1 --quiet";

class BaseCliTest : public zflow::testing::CliTest {
 protected:
  BaseCliTest() : CliTest("zflow_bases") {}

  json info(const std::string& model) {
    const Outcome r = zflow("info --model " + model + " --json");
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out);
  }

  /// The mean test NLL of `model` on `data` (a finite number for a working model).
  double eval_nll(const std::string& model, const std::string& data) {
    const Outcome r = zflow("eval --model " + model + " --data " + data + " --json --threads 1");
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out).at("nll").get<double>();
  }

  /// The sampled rows of `model` are finite.
  void expect_finite_samples(const std::string& model) {
    const Outcome r = zflow("sample --model " + model + " -n 50 --seed 1 --threads 1 --out -");
    ASSERT_EQ(r.code, 0) << r.err;
    std::istringstream lines(r.out);
    std::string line;
    std::getline(lines, line);  // header
    int rows = 0;
    while (std::getline(lines, line)) {
      ++rows;
      std::istringstream cells(line);
      std::string cell;
      while (std::getline(cells, cell, ',')) EXPECT_TRUE(std::isfinite(std::stod(cell))) << line;
    }
    EXPECT_EQ(rows, 50) << model;
  }
};

TEST_F(BaseCliTest, StudentTBaseTrainsAndItsModelFileRebuildsIt) {
  Outcome r = zflow("train --data moons --n 600" + kTiny +
                    " --base student_t --base-df 4 --base-learn-df --out t.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  const json card = info("t.safetensors");
  EXPECT_EQ(card.at("base"), "student_t");
  const json base = card.at("spec").at("base");
  EXPECT_EQ(base.at("df"), 4.0) << base;
  EXPECT_EQ(base.at("learn_df"), true) << base;
  EXPECT_EQ(card.at("train").at("options").at("base_df"), 4.0);
  // A heavy-tailed base has no log tails on top (builders.cpp, finish).
  EXPECT_EQ(card.at("spec").dump().find("log_tails"), std::string::npos);
  // The learned ν travels in the model file: the same NLL every time it is loaded.
  const double nll = eval_nll("t.safetensors", "moons --n 300");
  EXPECT_TRUE(std::isfinite(nll));
  EXPECT_EQ(eval_nll("t.safetensors", "moons --n 300"), nll);
  expect_finite_samples("t.safetensors");
}

TEST_F(BaseCliTest, LaplaceAndMixtureBasesTrainSampleAndEvaluate) {
  // (diagonal_normal and the default student_t go through the same path: builder tests.)
  for (const std::string base : {"laplace", "gaussian_mixture --base-components 3"}) {
    const std::string type = base.substr(0, base.find(' '));
    const std::string file = type + ".safetensors";
    Outcome r = zflow("train --data moons --n 600" + kTiny + " --base " + base + " --out " + file);
    ASSERT_EQ(r.code, 0) << base << ": " << r.err;
    const json card = info(file);
    EXPECT_EQ(card.at("base"), type);
    if (type == "gaussian_mixture") {
      EXPECT_EQ(card.at("spec").at("base").at("components"), 3);
    }
    EXPECT_TRUE(std::isfinite(eval_nll(file, "moons --n 300"))) << base;
    expect_finite_samples(file);
  }
}

TEST_F(BaseCliTest, ConditionalBaseTrainsWithAContext) {
  // y = c + noise: a context column c and two data columns.
  std::ofstream csv(path("cond.csv"));
  csv << "x1,x2,c\n";
  for (int i = 0; i < 400; ++i) {
    const double c = (i % 20) / 10.0 - 1.0;
    csv << c + 0.01 * (i % 7) << "," << -c + 0.02 * (i % 5) << "," << c << "\n";
  }
  csv.close();
  Outcome r = zflow("train --data cond.csv --context-columns c" + kTiny +
                    " --base conditional_diagonal_normal --out cond.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  const json card = info("cond.safetensors");
  EXPECT_EQ(card.at("base"), "conditional_diagonal_normal");
  EXPECT_EQ(card.at("spec").at("base").at("context_features"), 1);
  r = zflow("eval --model cond.safetensors --data cond.csv --json --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::isfinite(json::parse(r.out).at("nll").get<double>())) << r.out;
  r = zflow("sample --model cond.safetensors -n 5 --context 0.5 --threads 1 --out -");
  ASSERT_EQ(r.code, 0) << r.err;
}

TEST_F(BaseCliTest, FitTargetLearnsTheDegreesOfFreedomByReverseKl) {
  // Reverse KL differentiates through the base's samples: here through the Gamma draws.
  const Outcome r = zflow(
      "fit-target --target u1 --steps 10 --eval-every 5 --batch-size 64 --layers 2 --hidden 8 "
      "--model realnvp --final-samples 200 --threads 1 --quiet --base student_t "
      "--base-learn-df --out u1.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(info("u1.safetensors").at("spec").at("base").at("learn_df"), true);
  expect_finite_samples("u1.safetensors");
}

TEST_F(BaseCliTest, ABaseThatCannotServeIsOneErrorLine) {
  struct Case {
    std::string args;
    std::string part;
  };
  const std::string train = "train --data moons --n 300 --steps 2 --threads 1 ";
  // (Mismatched --base-components, a learned df below its floor and the image models'
  // bases are builder tests.)
  const std::vector<Case> cases = {
      {train + "--base cauchy", "'cauchy' (choose standard_normal"},
      {train + "--base box_uniform", "box_uniform cannot be the base"},
      {train + "--base conditional_diagonal_normal", "needs a context"},
      {train + "--base laplace --base-df 3", "student_t"},
      {train + "--base student_t --base-df 0", "--base-df"},
      {train + "--model cnf --base laplace", "standard_normal"},
      {"fit-target --target u1 --steps 2 --base conditional_diagonal_normal", "needs a context"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    expect_error(zflow(c.args), 2, c.part);
  }
  // The help lists the choices.
  const Outcome help = zflow("train --help");
  for (const char* name : {"student_t", "laplace", "gaussian_mixture",
                           "conditional_diagonal_normal", "--base-df", "--base-components"}) {
    EXPECT_NE(help.out.find(name), std::string::npos) << name;
  }
}

}  // namespace
