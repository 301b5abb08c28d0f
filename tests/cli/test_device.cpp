// --device for the commands that run a model (sample, eval, log-prob, encode, decode): on
// a CUDA GPU, when LibTorch has CUDA and one is visible, the results agree with the CPU's;
// elsewhere `--device cuda` is one clear error line, and `--device cpu` changes nothing.

#include <cmath>
#include <string>

#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/cli_test.h"
#include "support/png_folder.h"

namespace {

using zflow::testing::Outcome;

class DeviceCliTest : public zflow::testing::CliTest {
 protected:
  DeviceCliTest() : CliTest("zflow_device") {}

  void SetUp() override {
    CliTest::SetUp();  // the test's own folder
    ASSERT_EQ(zflow("train --data moons --model realnvp --layers 2 --hidden 16 --steps 50 "
                    "--quiet --out moons.safetensors")
                  .code,
              0);
    ASSERT_EQ(zflow("sample --model moons.safetensors -n 200 --seed 3 -o points.csv").code, 0);
  }

  /// The values of a one-column-or-more CSV written by zflow, in reading order.
  std::vector<double> numbers(const std::string& file) {
    std::vector<double> out;
    std::string text = read_bytes(path(file));
    std::string cell;
    bool header = true;
    for (char ch : text + "\n") {
      if (ch == ',' || ch == '\n') {
        if (!header && !cell.empty()) out.push_back(std::stod(cell));
        if (ch == '\n') header = false;
        cell.clear();
      } else {
        cell += ch;
      }
    }
    return out;
  }
};

const char* const kCommands[] = {
    "sample --model moons.safetensors -n 10 -o {out}",
    "log-prob --model moons.safetensors --data points.csv -o {out}",
    "eval --model moons.safetensors --data points.csv --json > {out}",
    "encode --model moons.safetensors --data points.csv -o {out}",
    "decode --model moons.safetensors --data points.csv -o {out}",
};

std::string with_out(std::string command, const std::string& out) {
  command.replace(command.find("{out}"), 5, out);
  return command;
}

TEST_F(DeviceCliTest, CpuIsTheDefault) {
  for (const char* command : kCommands) {
    const std::string base = with_out(command, "a.txt");
    ASSERT_EQ(zflow(base).code, 0) << base;
    ASSERT_EQ(zflow(with_out(command, "b.txt") + " --device cpu").code, 0) << command;
    EXPECT_EQ(read_bytes(path("a.txt")), read_bytes(path("b.txt"))) << command;
  }
}

TEST_F(DeviceCliTest, CudaRunsOnTheGpuOrSaysWhyNot) {
  if (!at::hasCUDA()) {
    for (const char* command : kCommands) {
      expect_error(zflow(with_out(command, "c.txt") + " --device cuda"), 2, "--device cuda");
    }
    expect_error(zflow("sample --model moons.safetensors -n 3 --device gpu"), 2, "--device");
    GTEST_SKIP() << "no CUDA GPU: only the error lines were checked";
  }
  // log-prob, encode and decode are deterministic: the GPU's results match the CPU's.
  for (const char* command : {kCommands[1], kCommands[3], kCommands[4]}) {
    ASSERT_EQ(zflow(with_out(command, "cpu.csv")).code, 0) << command;
    const Outcome r = zflow(with_out(command, "gpu.csv") + " --device cuda");
    ASSERT_EQ(r.code, 0) << command << ": " << r.err;
    const auto cpu = numbers("cpu.csv");
    const auto gpu = numbers("gpu.csv");
    ASSERT_EQ(cpu.size(), gpu.size()) << command;
    for (size_t i = 0; i < cpu.size(); ++i) {
      EXPECT_NEAR(cpu[i], gpu[i], 1e-3 * std::max(1.0, std::abs(cpu[i]))) << command << " " << i;
    }
  }
  const Outcome eval =
      zflow("eval --model moons.safetensors --data points.csv --json --device cuda");
  ASSERT_EQ(eval.code, 0) << eval.err;
  EXPECT_TRUE(std::isfinite(nlohmann::json::parse(eval.out).at("nll").get<double>()));
  // An image model samples on the GPU: valid pixels in a picture.
  zflow::testing::write_png_folder(path("pngs"), 32);
  ASSERT_EQ(zflow("train --data pngs --model glow --hidden 8 --steps-per-level 1 --steps 10 "
                  "--quiet --out glow.safetensors")
                .code,
            0);
  const Outcome s = zflow("sample --model glow.safetensors --grid 2x2 -o s.png --device cuda");
  EXPECT_EQ(s.code, 0) << s.err;
}

}  // namespace
