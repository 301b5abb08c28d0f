// Class-conditional image flows end to end: a glow trained with --class-conditional on PNG
// class folders of three clearly different kinds of 8×8 images ranks the true class first
// by log p(x | y) for most test images, samples of --class K look like class K, a sample
// grid has one row per class, and the misuses are one error line each.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/cli_test.h"
#include "support/png_folder.h"
#include "zflow/io/image.h"

namespace {

using zflow::testing::Outcome;

// The classes, in the order of their folders' names: a dark, a middle and a bright
// background with noise; each class's images also carry a brighter bar at a random row.
const std::vector<std::string> kClasses = {"a_dark", "b_mid", "c_bright"};
const std::vector<int> kLevels = {40, 120, 200};

class ClassConditionalCliTest : public zflow::testing::CliTest {
 protected:
  ClassConditionalCliTest() : CliTest("zflow_class_conditional") {}

  /// `per_class` images of each class under dir/<class>/.
  void write_classes(const std::string& dir, int per_class, unsigned seed) {
    std::mt19937 rng(seed);
    for (size_t k = 0; k < kClasses.size(); ++k) {
      const std::filesystem::path folder = path(dir + "/" + kClasses[k]);
      std::filesystem::create_directories(folder);
      for (int i = 0; i < per_class; ++i) {
        zflow::io::Image image;
        image.width = image.height = 8;
        image.channels = 1;
        image.pixels.resize(64);
        const int bar = static_cast<int>(rng() % 8u);
        for (int p = 0; p < 64; ++p) {
          const int value = kLevels[k] + (p / 8 == bar ? 30 : 0) + static_cast<int>(rng() % 25u);
          image.pixels[static_cast<size_t>(p)] = static_cast<uint8_t>(value);
        }
        char name[32];
        std::snprintf(name, sizeof(name), "img%03d.png", i);
        zflow::io::write_png((folder / name).string(), image);
      }
    }
  }

  /// Trains the class-conditional glow on train/ (once per test that needs it).
  void train_model() {
    write_classes("train", 48, 1);
    write_classes("test", 12, 2);
    const Outcome r = zflow(
        "train --data train --model glow --class-conditional --levels 2 --steps-per-level 2 "
        "--hidden 16 --steps 200 --batch-size 48 --lr 1e-2 --eval-every 50 --threads 1 "
        "--quiet --out c.safetensors");
    ASSERT_EQ(r.code, 0) << r.err;
  }

  /// Mean pixel value of the images in a CSV of samples (a header row, then C·H·W values a
  /// row).
  double mean_pixel(const std::string& csv) const {
    std::ifstream in(path(csv));
    std::string line;
    std::getline(in, line);  // header
    double sum = 0;
    int64_t count = 0;
    while (std::getline(in, line)) {
      std::stringstream fields(line);
      std::string value;
      while (std::getline(fields, value, ',')) {
        sum += std::stod(value);
        ++count;
      }
    }
    EXPECT_GT(count, 0);
    return count > 0 ? sum / static_cast<double>(count) : NAN;
  }
};

TEST_F(ClassConditionalCliTest, RanksTheTrueClassFirstAndSamplesTheRequestedClass) {
  train_model();
  Outcome r = zflow("info --model c.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;

  r = zflow("eval --model c.safetensors --data test --json --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto e = nlohmann::json::parse(r.out);
  EXPECT_EQ(e["points"].get<int>(), 36);
  EXPECT_EQ(e["classes"].get<int>(), 3);
  EXPECT_TRUE(std::isfinite(e["bits_per_dim"].get<double>()));
  // −log p(x) = −log Σ_y p(x | y)/K exceeds −log p(x | y) by at most log K per image.
  const double gap = e["bits_per_dim_marginal"].get<double>() - e["bits_per_dim"].get<double>();
  EXPECT_LE(gap, std::log2(3.0) / 64 + 1e-9);
  // Chance is 1/3; a model that ignored the class would be at chance.
  EXPECT_GE(e["classification_accuracy"].get<double>(), 0.7) << r.out;

  r = zflow("eval --model c.safetensors --data test --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("accuracy"), std::string::npos) << r.out;

  // Samples of each class have about its mean intensity: nearer to it than to any other.
  for (size_t k = 0; k < kClasses.size(); ++k) {
    // By name for one class, by number for the others.
    const std::string cls = k == 1 ? kClasses[k] : std::to_string(k);
    r = zflow("sample --model c.safetensors --class " + cls + " -n 40 --temperature 0.7 " +
              "--seed 3 --threads 1 -o s" + std::to_string(k) + ".csv");
    ASSERT_EQ(r.code, 0) << r.err;
    const double mean = mean_pixel("s" + std::to_string(k) + ".csv");
    const double expected = kLevels[k] + 30.0 / 8 + 12;  // background, bar and noise
    for (size_t j = 0; j < kClasses.size(); ++j) {
      if (j == k) continue;
      const double other = kLevels[j] + 30.0 / 8 + 12;
      EXPECT_LT(std::abs(mean - expected), std::abs(mean - other))
          << "samples of class " << k << " have mean " << mean;
    }
  }

  // Without --class, a grid has one row per class.
  r = zflow("sample --model c.safetensors --grid 2x5 --scale 1 --threads 1 -o grid.png");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto grid = zflow::io::read_png(path("grid.png"));
  EXPECT_EQ(grid.height, 3 * 8 + 4 * 2);
  EXPECT_EQ(grid.width, 5 * 8 + 6 * 2);
  r = zflow("plot samples --model c.safetensors --grid 4x4 --scale 1 -o p.png --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(zflow::io::read_png(path("p.png")).height, 3 * 8 + 4 * 2);
  r = zflow("reconstruct --model c.safetensors --data test --grid 1x4 -o r.png --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("largest pixel error"), std::string::npos);

  // The class must exist, and a class-conditional model takes --class, not --context.
  expect_error(zflow("sample --model c.safetensors --class 3 -n 2 -o x.csv"), 2, "3 classes");
  expect_error(zflow("sample --model c.safetensors --class nope -n 2 -o x.csv"), 2, "b_mid");
  expect_error(zflow("sample --model c.safetensors --context 0,1,0 -n 2 -o x.csv"), 2, "--class");
  expect_error(zflow("sample --model c.safetensors -n 2 -o x.csv"), 2, "--class");
}

TEST_F(ClassConditionalCliTest, DataWithoutLabelsAndUnconditionalModelsAreRefused) {
  zflow::testing::write_png_folder(path("flat"), 16);
  Outcome r = zflow(
      "train --data flat --model glow --class-conditional --steps 2 --threads 1 "
      "--out m.safetensors");
  expect_error(r, 2, "no labels");
  EXPECT_FALSE(std::filesystem::exists(path("m.safetensors")));
  expect_error(zflow("train --data moons --class-conditional --steps 2 --out m.safetensors"), 2,
               "--class-conditional");

  r = zflow(
      "train --data flat --model glow --levels 1 --steps-per-level 1 --hidden 4 --steps 2 "
      "--threads 1 --quiet --out u.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  expect_error(zflow("sample --model u.safetensors --class 0 -n 2 -o x.csv"), 2,
               "not a class-conditional");

  // A class-conditional model needs labelled test data.
  write_classes("train", 4, 1);
  r = zflow(
      "train --data train --model glow --class-conditional --levels 1 --steps-per-level 1 "
      "--hidden 4 --steps 2 --threads 1 --quiet --out c.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  expect_error(zflow("eval --model c.safetensors --data flat"), 2, "no labels");
}

}  // namespace
