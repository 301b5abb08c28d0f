// zflow on colour image data end to end: a CIFAR-10 folder in the binary format (small files
// written here) trains an RGB glow, whose eval, sample grid and reconstruction read the test
// split; a damaged batch is one error line naming the file.

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/cli_test.h"
#include "zflow/io/image.h"

namespace {

using zflow::testing::Outcome;

class ImageDataCliTest : public zflow::testing::CliTest {
 protected:
  ImageDataCliTest() : CliTest("zflow_image_data") {}

  /// `records` CIFAR-10 records (label byte, then the red, green and blue 32×32 planes): a
  /// colour blob of class-dependent hue on a noisy background.
  void write_cifar_batch(const std::string& name, int records, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> bytes;
    for (int r = 0; r < records; ++r) {
      const auto label = static_cast<uint8_t>(rng() % 10u);
      bytes.push_back(label);
      for (int c = 0; c < 3; ++c) {
        for (int p = 0; p < 32 * 32; ++p) {
          const bool blob = (p / 32 - 16) * (p / 32 - 16) + (p % 32 - 16) * (p % 32 - 16) < 64;
          const int base = blob ? 60 + 20 * ((label + c) % 10) : 30;
          bytes.push_back(static_cast<uint8_t>(base + static_cast<int>(rng() % 30u)));
        }
      }
    }
    std::filesystem::create_directories(path("cifar"));
    std::ofstream(path("cifar/" + name), std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  }

  void write_cifar10(int per_batch) {
    for (int b = 1; b <= 5; ++b) {
      write_cifar_batch("data_batch_" + std::to_string(b) + ".bin", per_batch,
                        static_cast<unsigned>(b));
    }
    write_cifar_batch("test_batch.bin", per_batch, 99);
  }
};

TEST_F(ImageDataCliTest, Cifar10FolderTrainsAnRgbGlow) {
  write_cifar10(12);
  Outcome r = zflow(
      "train --data cifar --model glow --hidden 8 --steps-per-level 1 --steps 6 --batch-size 12 "
      "--eval-every 3 --threads 1 --out rgb.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  // The training split is the five batches: 60 images, 10 % of them held out.
  EXPECT_NE(r.err.find("cifar-10:train"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[3, 32, 32]"), std::string::npos) << r.err;

  r = zflow("eval --model rgb.safetensors --data cifar --json --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto e = nlohmann::json::parse(r.out);
  EXPECT_EQ(e["points"].get<int>(), 12);  // the test batch
  EXPECT_EQ(e["features"].get<int>(), 3 * 32 * 32);
  EXPECT_TRUE(std::isfinite(e["bits_per_dim"].get<double>()));

  r = zflow("sample --model rgb.safetensors --grid 2x2 --scale 1 -o s.png --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto image = zflow::io::read_png(path("s.png"));
  EXPECT_EQ(image.channels, 3);
  EXPECT_EQ(image.width, 2 * 32 + 3 * 2);

  r = zflow(
      "reconstruct --model rgb.safetensors --data cifar:train --grid 1x2 --scale 1 -o r.png "
      "--threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
}

TEST_F(ImageDataCliTest, DamagedCifarBatchIsOneErrorLine) {
  write_cifar10(2);
  // Five stray bytes: no longer a whole number of 3073-byte records.
  std::ofstream(path("cifar/data_batch_3.bin"), std::ios::binary | std::ios::app) << "xxxxx";
  const Outcome r = zflow("train --data cifar --model glow --steps 2 --out m.safetensors");
  expect_error(r, 1, "data_batch_3.bin");
  EXPECT_FALSE(std::filesystem::exists(path("m.safetensors")));
}

}  // namespace
