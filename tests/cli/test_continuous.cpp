// zflow with continuous flows end to end: train --model cnf by flow matching and by
// likelihood, eval/sample/log-prob/encode/decode with solver options and their NFE lines,
// plot steps as a film strip in time, and the one-line errors of misused options.

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/cli_test.h"
#include "support/png_folder.h"

namespace {

using zflow::testing::Outcome;

class ContinuousCliTest : public zflow::testing::CliTest {
 protected:
  ContinuousCliTest() : CliTest("zflow_continuous") {}

  /// A small cnf trained by flow matching on moons in a few seconds, as cnf.safetensors.
  void train_cnf(const std::string& extra = "") {
    const Outcome r = zflow(
        "train --data moons --n 4000 --model cnf --hidden 32 --steps 200 --batch-size 256 "
        "--eval-every 100 --out cnf.safetensors " +
        extra);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("flow-matching loss"), std::string::npos) << r.err;
  }

  /// Every number of a CSV file after its header row.
  std::vector<double> csv_values(const std::string& name) const {
    std::istringstream in(read_bytes(path(name)));
    std::string line;
    std::getline(in, line);
    std::vector<double> values;
    while (std::getline(in, line)) {
      std::istringstream cells(line);
      std::string cell;
      while (std::getline(cells, cell, ',')) values.push_back(std::stod(cell));
    }
    return values;
  }
};

TEST_F(ContinuousCliTest, FlowMatchingModelIsScoredSampledAndCodedBySolvers) {
  train_cnf("--metrics metrics.jsonl --report report.html");
  EXPECT_NE(read_bytes(path("metrics.jsonl")).find("val_fm_loss"), std::string::npos);
  const std::string report = read_bytes(path("report.html"));
  EXPECT_NE(report.find("NFE per sample, sampling"), std::string::npos);
  EXPECT_NE(report.find("flow-matching loss"), std::string::npos);

  Outcome r = zflow("eval --model cnf.safetensors --data moons --n 2000 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(std::isfinite(j["nll"].get<double>()));
  EXPECT_GT(j["nfe_per_sample"].get<double>(), 8);  // dopri5: 2 + 6 per step

  // A fixed-step solver: exactly steps × evaluations per step.
  r = zflow("eval --model cnf.safetensors --data moons --n 500 --solver rk4 --ode-steps 5");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("rk4 with 5 steps: 20 evaluations"), std::string::npos) << r.out;

  r = zflow("sample --model cnf.safetensors -n 300 --solver euler --ode-steps 7 --out s.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("euler with 7 steps: 7 evaluations"), std::string::npos) << r.err;

  r = zflow(
      "log-prob --model cnf.safetensors --data moons --n 100 --out lp.csv --trace hutchinson");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("evaluations of the velocity field"), std::string::npos) << r.err;

  // encode then decode at a tight tolerance gives the points back.
  r = zflow("encode --model cnf.safetensors --data s.csv --atol 1e-7 --rtol 1e-7 --out z.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  r = zflow("decode --model cnf.safetensors --data z.csv --atol 1e-7 --rtol 1e-7 --out x.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto before = csv_values("s.csv");
  const auto after = csv_values("x.csv");
  ASSERT_EQ(before.size(), 600u);
  ASSERT_EQ(after.size(), before.size());
  double worst = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    worst = std::max(worst, std::abs(before[i] - after[i]));
  }
  EXPECT_LT(worst, 1e-3);

  r = zflow("info --model cnf.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("cnf"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("flow-matching"), std::string::npos) << r.out;
}

TEST_F(ContinuousCliTest, PlotStepsShowsTheFlowAtEvenlySpacedTimes) {
  train_cnf();
  const Outcome r =
      zflow("plot steps --model cnf.safetensors --times 4 --samples 2000 --out steps.svg");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string svg = read_bytes(path("steps.svg"));
  for (const char* label : {"t = 0.25", "t = 0.5", "t = 0.75", "t = 1"}) {
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  }
}

TEST_F(ContinuousCliTest, LikelihoodTrainingThroughTheSolver) {
  const Outcome r = zflow(
      "train --data moons --n 2000 --model cnf --objective likelihood --solver rk4 --ode-steps 4 "
      "--hidden 16 --steps 20 --batch-size 128 --eval-every 10 --out ffjord.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("NLL"), std::string::npos) << r.err;
}

TEST_F(ContinuousCliTest, ImageCnfPicturesTakeTheSolverOptions) {
  zflow::testing::write_png_folder(path("pngs"), 64);
  Outcome r = zflow(
      "train --data pngs --model cnf --hidden 8 --steps 4 --batch-size 16 --eval-every 2 "
      "--threads 1 --out icnf.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  // Each picture command codes by the solver given and says what it cost.
  for (const std::string command :
       {"reconstruct --model icnf.safetensors --data pngs --grid 1x2 --scale 1 -o r.png",
        "interpolate --model icnf.safetensors --data pngs --pairs 1 --steps 3 --scale 1 -o i.png",
        "sample --model icnf.safetensors --grid 1x2 --scale 1 -o s.png"}) {
    r = zflow(command + " --solver rk4 --ode-steps 2 --threads 1");
    ASSERT_EQ(r.code, 0) << command << "\n" << r.err;
    EXPECT_NE(r.err.find("rk4 with 2 steps: 8 evaluations"), std::string::npos) << command << "\n"
                                                                                << r.err;
  }
}

TEST_F(ContinuousCliTest, MisusedOptionsAreOneLineErrors) {
  Outcome r = zflow("train --data moons --model realnvp --objective flow-matching --steps 5");
  expect_error(r, 2, "--model cnf");
  r = zflow("train --data moons --model cnf --ode-steps 0 --steps 5");
  EXPECT_EQ(r.code, 2) << r.err;
  r = zflow("train --data moons --model cnf --solver rk45 --steps 5");
  EXPECT_EQ(r.code, 2) << r.err;
  r = zflow("train --data moons --model cnf --sigma-min 1.5 --steps 5");
  expect_error(r, 2, "sigma_min");
  ASSERT_EQ(
      zflow("train --data moons --n 500 --layers 1 --hidden 8 --steps 5 --out r.safetensors").code,
      0);
  r = zflow("eval --model r.safetensors --data moons --n 100 --solver rk4");
  expect_error(r, 2, "no continuous layer");
}

}  // namespace
