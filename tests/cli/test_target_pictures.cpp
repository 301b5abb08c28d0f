// The pictures of a model fitted to a target (zflow fit-target): plot density draws the
// target beside the flow, plot weights the importance weights, and report and info show the
// estimate of log Z instead of a data NLL. One tiny u1 model is fitted for the whole suite.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/cli_test.h"
#include "support/svg_texts.h"
#include "zflow/io/image.h"

namespace {

namespace fs = std::filesystem;

using zflow::testing::Outcome;
using zflow::testing::run_zflow_in;

std::string slurp(const fs::path& path) { return zflow::testing::file_bytes(path); }

/// An SVG picture's texts and raster panels (support/svg_texts.h).
struct SvgContent {
  std::vector<std::string> texts;
  int images = 0;
  bool has(const std::string& part) const { return zflow::testing::has_text(texts, part); }
};

SvgContent parse_svg(const fs::path& path) {
  SvgContent svg;
  svg.texts = zflow::testing::svg_texts(path, &svg.images);
  return svg;
}

size_t count_of(const std::string& text, const std::string& part) {
  size_t count = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++count;
  return count;
}

class TargetPictures : public zflow::testing::TempDirTest {
 protected:
  TargetPictures() : TempDirTest("zflow_target_pictures") {}

  /// Fits the suite's model once: u1, small enough for a few seconds under the sanitizers.
  static void SetUpTestSuite() {
    shared_ = fs::temp_directory_path() / ("zflow_target_model_" + std::to_string(::getpid()));
    fs::create_directories(shared_);
    fit_ = run_zflow_in(shared_,
                        "fit-target --target u1 --steps 60 --eval-every 20 --layers 2 --hidden 16 "
                        "--batch-size 256 --final-samples 2000 --threads 1 --metrics u1.jsonl "
                        "--out u1.safetensors --quiet");
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(shared_, ec);
  }

  void SetUp() override {
    TempDirTest::SetUp();
    ASSERT_EQ(fit_.code, 0) << fit_.err;
  }

  Outcome zflow(const std::string& args) const { return run_zflow_in(dir_, args); }
  static std::string model() { return "'" + (shared_ / "u1.safetensors").string() + "'"; }
  static std::string metrics() { return "'" + (shared_ / "u1.jsonl").string() + "'"; }

  static fs::path shared_;
  static Outcome fit_;
};

fs::path TargetPictures::shared_;
Outcome TargetPictures::fit_;

TEST_F(TargetPictures, DensityDrawsTheTargetBesideTheFlow) {
  Outcome r = zflow("plot density --model " + model() + " --bins 40 -o density.svg");
  ASSERT_EQ(r.code, 0) << r.err;
  const SvgContent svg = parse_svg(path("density.svg"));
  EXPECT_EQ(svg.images, 2);  // one raster per panel
  EXPECT_TRUE(svg.has("target p(x) = p̃(x)/Z"));
  EXPECT_TRUE(svg.has("flow q(x)"));
  EXPECT_TRUE(svg.has("same colour scale"));
  // The axes are u1's plot box, [−4, 4]².
  EXPECT_TRUE(svg.has("-4"));
  EXPECT_TRUE(svg.has("4"));

  // As PNG: the flow's heat map alone over the same box, 2 pixels per cell.
  r = zflow("plot density --model " + model() + " --bins 40 -o density.png");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto image = zflow::io::read_png(path("density.png"));
  EXPECT_EQ(image.width, 80);
  EXPECT_EQ(image.height, 80);
}

TEST_F(TargetPictures, WeightsShowTheEstimates) {
  Outcome r = zflow("plot weights --model " + model() + " -n 3000 -o weights.svg");
  ASSERT_EQ(r.code, 0) << r.err;
  const SvgContent svg = parse_svg(path("weights.svg"));
  EXPECT_TRUE(svg.has("3000 samples of the flow"));
  EXPECT_TRUE(svg.has("ESS"));
  EXPECT_TRUE(svg.has("unweighting efficiency"));
  EXPECT_TRUE(svg.has("log Ẑ ="));
  EXPECT_TRUE(svg.has("exact 1.8775"));  // u1's log Z is known
  EXPECT_TRUE(svg.has("robust w_max"));

  // A target of another dimension is refused in one line.
  r = zflow("plot weights --model " + model() + " --target funnel -n 100 -o other.svg");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(count_of(r.err, "\n"), 1u) << r.err;
  EXPECT_NE(r.err.find("zflow: error: the target funnel has D = 10"), std::string::npos) << r.err;
}

TEST_F(TargetPictures, ReportShowsTheEstimateCurvesAndBothPictures) {
  const Outcome r =
      zflow("report --model " + model() + " --metrics " + metrics() + " --out report.html");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string html = slurp(path("report.html"));
  for (const std::string part :
       {"on target u1", "<th>objective</th><td>rkl</td>", "best validation loss",
        "log Z (importance sampling)", "2000 samples of the flow", "unweighting efficiency",
        "<th>exact log Z</th><td>1.8775</td>", "error of log Z", "loss (nats)", "ESS (%)",
        "target p(x) = p̃(x)/Z", "flow q(x)", "20000 samples of the flow"}) {
    EXPECT_NE(html.find(part), std::string::npos) << part;
  }
  EXPECT_EQ(count_of(html, "<svg"), 3u);  // curves, target beside flow, weights
  EXPECT_EQ(html.find("No pictures"), std::string::npos);
  // No row or axis for a data NLL (the PNG data may hold those letters anywhere).
  EXPECT_EQ(html.find("NLL<"), std::string::npos);
  EXPECT_EQ(html.find("NLL (nats)"), std::string::npos);
}

TEST_F(TargetPictures, InfoPrintsTheTargetAndTheEstimate) {
  const Outcome r = zflow("info --model " + model());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("target:       u1 (D = 2, exact log Z 1.8775)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("by rkl; best validation loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("estimate:     log Z = "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("from 2000 samples of the flow; ESS "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("nan"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("NLL"), std::string::npos) << r.out;
}

TEST_F(TargetPictures, LatentNeedsDataStepsAndCurvesDoNot) {
  Outcome r = zflow("plot latent --model " + model() + " -o latent.svg");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(count_of(r.err, "\n"), 1u) << r.err;
  EXPECT_EQ(r.err.rfind("zflow: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("give --data"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("latent.svg")));

  // steps: the sampling row alone, one panel per stage (6 layers with the standardisation
  // and the tails: 7 stages).
  r = zflow("plot steps --model " + model() + " --samples 2000 --bins 30 -o steps.svg");
  ASSERT_EQ(r.code, 0) << r.err;
  SvgContent svg = parse_svg(path("steps.svg"));
  EXPECT_EQ(svg.images, 7);
  EXPECT_FALSE(svg.has("x (data)"));

  r = zflow("plot curves --metrics " + metrics() + " -o curves.svg");
  ASSERT_EQ(r.code, 0) << r.err;
  svg = parse_svg(path("curves.svg"));
  EXPECT_TRUE(svg.has("loss (nats)"));
  EXPECT_TRUE(svg.has("ESS (%)"));
  EXPECT_TRUE(svg.has("validation"));
}

}  // namespace
