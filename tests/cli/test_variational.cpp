// zflow fit-target and zflow integrate end to end: a fitted model's estimates, weighted
// samples and unweighted events; plain Monte Carlo proposals; TorchScript targets; and
// the one-line errors of bad targets and options.

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/cli_test.h"

namespace {

using zflow::testing::Outcome;

class VariationalCliTest : public zflow::testing::CliTest {
 protected:
  VariationalCliTest() : CliTest("zflow_variational") {}

  /// A small flow fitted to u1 in a few seconds, as u1.safetensors.
  void fit_u1(const std::string& extra = "") {
    const Outcome r = zflow(
        "fit-target --target u1 --steps 80 --eval-every 40 --layers 2 --hidden 16 "
        "--batch-size 256 --final-samples 4000 --out u1.safetensors " +
        extra);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("ESS"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("log Z"), std::string::npos) << r.err;
  }

  /// The rows of a CSV file after its header, split at commas.
  std::vector<std::vector<double>> csv_rows(const std::string& name, std::string* header) const {
    std::ifstream in(path(name));
    std::string line;
    std::getline(in, line);
    if (header) *header = line;
    std::vector<std::vector<double>> rows;
    while (std::getline(in, line)) {
      std::vector<double> row;
      std::istringstream cells(line);
      std::string cell;
      while (std::getline(cells, cell, ',')) row.push_back(std::stod(cell));
      rows.push_back(row);
    }
    return rows;
  }
};

TEST_F(VariationalCliTest, FitThenIntegrateWithEveryOutput) {
  fit_u1();
  const Outcome r = zflow(
      "integrate --model u1.safetensors -n 20000 --batch 3000 --json --out weighted.csv "
      "--unweighted 200 --events events.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["samples"], 20000);
  EXPECT_EQ(j["target"], "u1");  // the model remembers its target
  const double ess = j["ess"], log_z = j["log_z"], se = j["log_z_stderr"];
  EXPECT_GT(ess, 0.0);
  EXPECT_LE(ess, 1.0);
  EXPECT_GT(se, 0.0);
  // The estimate is consistent with the known log Z within its own error bar (a short fit
  // is a poor proposal, but importance sampling stays unbiased).
  EXPECT_LT(std::abs(log_z - j["exact_log_z"].get<double>()), 5 * se + 0.01) << r.out;

  std::string header;
  const auto weighted = csv_rows("weighted.csv", &header);
  EXPECT_EQ(header, "x1,x2,log_weight");
  ASSERT_EQ(weighted.size(), 20000u);
  // log Ẑ recomputed from the written log weights equals the printed one.
  double max_lw = -INFINITY;
  for (const auto& row : weighted) max_lw = std::max(max_lw, row[2]);
  double sum = 0;
  for (const auto& row : weighted) sum += std::exp(row[2] - max_lw);
  EXPECT_NEAR(max_lw + std::log(sum / weighted.size()), log_z, 1e-6);

  const auto events = csv_rows("events.csv", &header);
  EXPECT_EQ(header, "x1,x2,weight");
  ASSERT_EQ(events.size(), 200u);
  for (const auto& row : events) EXPECT_GE(row[2], 1.0);
  EXPECT_NE(r.err.find("unweighted events"), std::string::npos) << r.err;
}

// The flows of variational inference's papers: their closed form draws the samples, and
// stl evaluates log q of those samples again through forward's root-finding, under
// autograd; log-prob of given points uses it too.
TEST_F(VariationalCliTest, PlanarRadialAndSylvesterFlowsFit) {
  for (const std::string model : {"planar", "radial", "sylvester"}) {
    const Outcome fit = zflow("fit-target --target u1 --model " + model +
                              " --layers 4 --steps 40 --eval-every 20 --batch-size 256 "
                              "--objective stl --final-samples 2000 --out " +
                              model + ".safetensors");
    ASSERT_EQ(fit.code, 0) << fit.err;
    EXPECT_NE(fit.err.find("fitted " + model), std::string::npos) << fit.err;
    EXPECT_NE(fit.err.find("ESS"), std::string::npos) << fit.err;
  }
  ASSERT_EQ(zflow("sample --model sylvester.safetensors -n 100 --out s.csv").code, 0);
  const Outcome density =
      zflow("log-prob --model sylvester.safetensors --data s.csv --out logp.csv");
  EXPECT_EQ(density.code, 0) << density.err;
}

TEST_F(VariationalCliTest, PlainMonteCarloOnTheCamelIntegrand) {
  // Uniform sampling of the 2-D camel: the integral is known, and within 4 standard errors.
  const Outcome r = zflow("integrate --target camel --dim 2 --proposal uniform -n 200000 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const double exact = j["exact_log_z"], log_z = j["log_z"], se = j["log_z_stderr"];
  EXPECT_LT(std::abs(log_z - exact), 4 * se) << r.out;
  // The relative variance of uniform sampling: E[f²]/Z² − 1 = ½(a√(2π))^(−D) − 1 ≈ 6.96 for
  // Z ≈ 1 (the peaks do not overlap), with a standard error of about 0.1 here.
  EXPECT_NEAR(j["relative_variance"].get<double>(), 0.5 / (0.1 * 0.1 * 2 * M_PI) - 1, 0.5);
  const Outcome text = zflow("integrate --target camel --dim 2 --proposal uniform -n 1000");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("integral"), std::string::npos) << text.out;
}

TEST_F(VariationalCliTest, BoxTargetsGetBoxFlows) {
  const Outcome r = zflow(
      "fit-target --target camel --dim 2 --objective variance --steps 40 --eval-every 20 "
      "--layers 2 --hidden 16 --batch-size 256 --final-samples 2000 --out camel.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  const Outcome s = zflow("sample --model camel.safetensors -n 2000 --out s.csv");
  ASSERT_EQ(s.code, 0) << s.err;
  for (const auto& row : csv_rows("s.csv", nullptr)) {
    for (double v : row) {
      EXPECT_GE(v, 0.0);
      EXPECT_LE(v, 1.0);
    }
  }
}

TEST_F(VariationalCliTest, TorchScriptTargetFromPython) {
  if (shell("/usr/bin/python3 -c 'import torch'").code != 0) {
    GTEST_SKIP() << "python3-torch is not installed (scripts/setup.sh installs it)";
  }
  write_text("make_target.py",
             "import torch\n"
             "class T(torch.nn.Module):\n"
             "    dim: int\n"
             "    log_z: float\n"
             "    def __init__(self):\n"
             "        super().__init__()\n"
             "        self.dim = 3\n"
             "        self.log_z = 1.5 * 1.8378770664093453\n"
             "    def forward(self, x):\n"
             "        return -0.5 * (x * x).sum(1)\n"
             "torch.jit.script(T()).save('gauss.pt')\n");
  ASSERT_EQ(shell("/usr/bin/python3 make_target.py").code, 0);
  const Outcome r = zflow(
      "fit-target --target gauss.pt --steps 40 --eval-every 20 --layers 2 --hidden 16 "
      "--batch-size 256 --final-samples 2000 --out g.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("exact log Z"), std::string::npos) << r.err;
  const Outcome i = zflow("integrate --model g.safetensors -n 5000 --json");
  ASSERT_EQ(i.code, 0) << i.err;
  EXPECT_EQ(nlohmann::json::parse(i.out)["samples"], 5000);
}

TEST_F(VariationalCliTest, BadTargetsAndOptionsAreOneLineErrors) {
  write_bytes("garbage.pt", std::string("not a TorchScript archive\0\1\2", 29));
  expect_error(zflow("fit-target --target nosuch --out m.safetensors"), 2, "nosuch");
  expect_error(zflow("fit-target --target garbage.pt --dim 2 --out m.safetensors"), 2,
               "garbage.pt");
  expect_error(zflow("fit-target --target u1 --dim 3 --out m.safetensors"), 2, "u1");
  expect_error(zflow("fit-target --target u1 --objective alpha --alpha 1 --out m.safetensors"), 2,
               "alpha");
  expect_error(zflow("fit-target --target u1 --anneal-from 0 --out m.safetensors"), 2, "annealing");
  expect_error(zflow("fit-target --target u1 --out m.safetensors --state m.safetensors"), 2,
               "different files");
  expect_error(zflow("integrate --target u1 -n 10"), 2, "--proposal");
  expect_error(zflow("integrate --proposal uniform -n 10"), 2, "--target");
  EXPECT_FALSE(std::filesystem::exists(path("m.safetensors")));
}

TEST_F(VariationalCliTest, IntegrateRefusesAModelOfAnotherDimension) {
  fit_u1();
  expect_error(zflow("integrate --model u1.safetensors --target funnel -n 10"), 2, "D = 10");
}

}  // namespace
