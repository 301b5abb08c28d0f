// zflow train across processes (docs/distributed.md): two processes with a global batch B
// end with the parameters one process reaches with batch B (float64, 50 steps, within
// 1e-10 relative) for realnvp, maf, nsf-coupling, a conditional flow and a small Glow,
// launched by --nproc, by the environment variables directly and by torchrun; a rank that
// is killed stops the other with a clear message and leaves a model and a state that
// resume with one process; a port in use, an unreachable master and a mismatched world
// size are clear errors within the timeout.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "support/free_port.h"
#include "support/png_folder.h"
#include "support/temp_dir.h"
#include "zflow/io/safetensors.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using zflow::testing::free_port;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class Distributed : public zflow::testing::TempDirTest {
 protected:
  Distributed() : TempDirTest("zflow_distributed") {}

  /// Runs a shell command in the test's folder; the exit code.
  int shell(const std::string& command) const {
    const int status = std::system(("cd '" + dir_.string() + "' && { " + command + "\n}").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  /// `zflow ARGS` with stderr to `err`; the exit code.
  int zflow(const std::string& args, const std::string& err = "err.txt",
            const std::string& env = "") const {
    return shell(env + " '" ZFLOW_BINARY "' " + args + " > /dev/null 2> " + err);
  }
  std::string text(const std::string& name) const { return read_bytes(path(name)); }

  /// The largest difference between the tensors of two model files, relative to the
  /// largest magnitude of each tensor; fails when their names or shapes differ.
  static double max_relative_difference(const fs::path& a, const fs::path& b) {
    const auto fa = zflow::io::load_safetensors(a.string());
    const auto fb = zflow::io::load_safetensors(b.string());
    EXPECT_EQ(fa.tensors.size(), fb.tensors.size());
    double worst = 0;
    for (const auto& [name, ta] : fa.tensors) {
      const at::Tensor tb = fb.at(name);
      EXPECT_EQ(ta.sizes(), tb.sizes()) << name;
      if (ta.numel() == 0 || !ta.is_floating_point()) continue;
      const double scale = std::max(ta.abs().max().item<double>(), 1e-300);
      worst = std::max(worst, (ta - tb).abs().max().item<double>() / scale);
    }
    return worst;
  }

  /// Trains `args` in one process (one.safetensors) and with `launch` (two.safetensors).
  void expect_two_processes_like_one(const std::string& args, const std::string& launch) {
    ASSERT_EQ(zflow("train " + args + " --out one.safetensors -q", "one.err"), 0)
        << text("one.err");
    ASSERT_EQ(shell(launch), 0) << text("two.err") << text("two1.err");
    EXPECT_LT(max_relative_difference(path("one.safetensors"), path("two.safetensors")), 1e-10)
        << args;
  }

  void write_conditional_csv(const std::string& name, int rows) const {
    std::ofstream out(path(name));
    out << "c,x1,x2\n";
    std::mt19937 rng(3);
    std::normal_distribution<double> normal;
    for (int i = 0; i < rows; ++i) {
      const double c = normal(rng);
      out << c << "," << c + 0.3 * normal(rng) << "," << c * c + 0.3 * normal(rng) << "\n";
    }
  }
};

const std::string kCommon =
    " --steps 50 --batch-size 64 --eval-every 50 --dtype float64 --threads 1 --seed 4";
const std::string kTabular = " --data moons -n 2000 --layers 2 --hidden 16" + kCommon;

std::string nproc_launch(const std::string& args) {
  return "'" ZFLOW_BINARY "' train " + args + " --nproc 2 --out two.safetensors -q 2> two.err";
}

TEST_F(Distributed, TwoProcessesTrainLikeOne_RealNVP) {
  const std::string args = "--model realnvp" + kTabular;
  expect_two_processes_like_one(args, nproc_launch(args));
}

TEST_F(Distributed, TwoProcessesTrainLikeOne_MAF) {
  const std::string args = "--model maf" + kTabular;
  expect_two_processes_like_one(args, nproc_launch(args));
}

TEST_F(Distributed, TwoProcessesTrainLikeOne_NSFCoupling) {
  const std::string args = "--model nsf-coupling" + kTabular;
  expect_two_processes_like_one(args, nproc_launch(args));
}

TEST_F(Distributed, TwoProcessesTrainLikeOne_Conditional) {
  write_conditional_csv("cond.csv", 600);
  const std::string args =
      "--data cond.csv --context-columns c --model maf --layers 2 --hidden 16" + kCommon;
  expect_two_processes_like_one(args, nproc_launch(args));
}

// Glow: ActNorm's data-dependent initialisation and the dequantization noise must be those
// of the single process.
TEST_F(Distributed, TwoProcessesTrainLikeOne_Glow) {
  zflow::testing::write_png_folder(path("images"), 96);
  const std::string args =
      "--data images --model glow --levels 2 --steps-per-level 2 --hidden 8 --batch-size 16 "
      "--steps 50 --eval-every 50 --dtype float64 --threads 1 --seed 4";
  expect_two_processes_like_one(args, nproc_launch(args));
}

// Gradient buckets all-reduced during the backward pass give the same parameters.
TEST_F(Distributed, OverlappedGradientBucketsTrainLikeOne) {
  zflow::testing::write_png_folder(path("images"), 64);
  const std::string args =
      "--data images --model glow --levels 2 --steps-per-level 2 --hidden 8 --batch-size 16 "
      "--steps 30 --eval-every 30 --dtype float64 --threads 1 --seed 4";
  expect_two_processes_like_one(args, nproc_launch(args + " --dist-buckets 5"));
}

// An uneven split (a batch of 63 over 2) weights each process's loss by its share.
TEST_F(Distributed, AnOddBatchSplitsUnevenlyAndStillMatches) {
  const std::string args =
      "--model realnvp --data moons -n 2000 --layers 2 --hidden 16 "
      "--steps 50 --batch-size 63 --eval-every 25 --dtype float64 "
      "--threads 1";
  expect_two_processes_like_one(args, nproc_launch(args));
}

TEST_F(Distributed, LaunchedThroughTheEnvironmentVariables) {
  const std::string args = "train --model realnvp" + kTabular + " --out two.safetensors -q";
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) +
                          " WORLD_SIZE=2 LOCAL_WORLD_SIZE=2";
  expect_two_processes_like_one("--model realnvp" + kTabular,
                                "(" + env + " RANK=1 LOCAL_RANK=1 '" ZFLOW_BINARY "' " + args +
                                    " 2> two1.err & " + env +
                                    " RANK=0 LOCAL_RANK=0 '" ZFLOW_BINARY "' " + args +
                                    " 2> two.err; code=$?; wait $! "
                                    "&& exit $code)");
  // Rank 0 alone wrote the files and printed.
  EXPECT_EQ(text("two1.err"), "");
}

TEST_F(Distributed, LaunchedThroughTorchrun) {
  const std::string torchrun = std::string(ZFLOW_TEST_DATA_DIR) + "/../../scripts/torchrun.py";
  if (shell("/usr/bin/python3 -c 'import torch.distributed.run' 2> /dev/null") != 0) {
    if (std::getenv("CI") != nullptr) FAIL() << "python3-torch (torchrun) is not installed";
    GTEST_SKIP() << "python3-torch (torchrun) is not installed";
  }
  const std::string args = "--model maf" + kTabular;
  expect_two_processes_like_one(
      args, "/usr/bin/python3 '" + torchrun + "' --nproc_per_node 2 --master_port " +
                std::to_string(free_port()) + " --no_python '" ZFLOW_BINARY "' train " + args +
                " --out two.safetensors -q > torchrun.log 2> two.err");
}

// kill -9 of rank 1 mid-run: rank 0 stops at once with a line saying what was lost, saves
// the best model so far, and the state of its last checkpoint resumes in one process.
TEST_F(Distributed, AKilledRankStopsTheOtherAndTheRunResumesWithOneProcess) {
  const std::string args =
      "train --model realnvp --data moons -n 2000 --layers 2 --hidden 16 "
      "--steps 100000 --eval-every 20 --batch-size 64 --dist-timeout 30 "
      "--threads 1 --out m.safetensors";
  const std::string env =
      "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " WORLD_SIZE=2";
  const std::string script = "(" + env + " RANK=1 '" ZFLOW_BINARY "' " + args +
                             " -q 2> r1.err & echo $! > r1.pid; " + env +
                             " RANK=0 '" ZFLOW_BINARY "' " + args +
                             " 2> r0.err; echo $? > r0.code) > /dev/null 2>&1 &";
  ASSERT_EQ(shell(script), 0);
  const auto start = Clock::now();
  while (!fs::exists(path("m.safetensors.state")) && seconds_since(start) < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(fs::exists(path("m.safetensors.state"))) << text("r0.err");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(shell("kill -9 $(cat r1.pid)"), 0);
  const auto killed = Clock::now();
  while (!fs::exists(path("r0.code")) && seconds_since(killed) < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_LT(seconds_since(killed), 30.0);  // within --dist-timeout
  EXPECT_EQ(text("r0.code"), "1\n");
  const std::string err = text("r0.err");
  EXPECT_NE(err.find("zflow: error: distributed training: the "), std::string::npos) << err;
  EXPECT_NE(err.find("another process stopped"), std::string::npos) << err;
  EXPECT_NE(err.find("saved the best model so far"), std::string::npos) << err;
  // The model loads and evaluates; the run resumes with one process and finishes.
  ASSERT_EQ(zflow("eval --model m.safetensors --data moons --n 500", "eval.err"), 0)
      << text("eval.err");
  const std::string resume =
      "train --model realnvp --data moons -n 2000 --layers 2 --hidden 16 "
      "--eval-every 20 --batch-size 64 --threads 1 --out m.safetensors "
      "--resume --steps ";
  // Forty steps more than the state holds.
  const auto state = zflow::io::load_safetensors(path("m.safetensors.state"));
  const int64_t step = std::stoll(state.metadata.at("step"));
  EXPECT_GE(step, 20);
  ASSERT_EQ(zflow(resume + std::to_string(step + 40), "resume.err"), 0) << text("resume.err");
  EXPECT_NE(text("resume.err").find("for " + std::to_string(step + 40) + " steps"),
            std::string::npos)
      << text("resume.err");
  EXPECT_EQ(zflow("eval --model m.safetensors --data moons --n 500", "eval2.err"), 0);
}

// SIGINT to the --nproc launcher reaches every worker once: they stop at the same step,
// rank 0 saves the state and the best model, and the exit code is 130, with the notice
// printed once.
TEST_F(Distributed, SigintToTheLauncherStopsEveryWorker) {
  const std::string script =
      "('" ZFLOW_BINARY
      "' train --model realnvp --data moons -n 2000 --layers 2 --hidden 16 "
      "--steps 100000 --eval-every 20 --threads 1 --nproc 2 --out s.safetensors -q 2> s.err & "
      "echo $! > s.pid; wait $!; echo $? > s.code) > /dev/null 2>&1 &";
  ASSERT_EQ(shell(script), 0);
  const auto start = Clock::now();
  while (!fs::exists(path("s.safetensors.state")) && seconds_since(start) < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(fs::exists(path("s.safetensors.state"))) << text("s.err");
  ASSERT_EQ(shell("kill -INT $(cat s.pid)"), 0);
  const auto sent = Clock::now();
  while (!fs::exists(path("s.code")) && seconds_since(sent) < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(text("s.code"), "130\n") << text("s.err");
  const std::string err = text("s.err");
  size_t notices = 0;
  for (size_t at = err.find("stopping at the next step"); at != std::string::npos;
       at = err.find("stopping at the next step", at + 1)) {
    ++notices;
  }
  EXPECT_EQ(notices, 1u) << err;
  EXPECT_NE(err.find("interrupted by SIGINT at step"), std::string::npos) << err;
  EXPECT_EQ(zflow("eval --model s.safetensors --data moons --n 500", "eval.err"), 0)
      << text("eval.err");
}

TEST_F(Distributed, APortInUseIsAClearError) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<uint16_t>(free_port()));
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(ntohs(a.sin_port)) +
                          " WORLD_SIZE=2 RANK=0";
  const auto start = Clock::now();
  EXPECT_EQ(zflow("train --data moons --steps 5 --dist-timeout 10", "err.txt", env), 1);
  EXPECT_LT(seconds_since(start), 10.0);
  ::close(fd);
  const std::string err = text("err.txt");
  EXPECT_NE(err.find("the port is in use"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;  // one line, no c10d log
}

TEST_F(Distributed, AnUnreachableMasterIsAClearErrorWithinTheTimeout) {
  const std::string env =
      "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " WORLD_SIZE=2 RANK=1";
  const auto start = Clock::now();
  EXPECT_EQ(zflow("train --data moons --steps 5 --dist-timeout 3", "err.txt", env), 1);
  EXPECT_LT(seconds_since(start), 20.0);
  const std::string err = text("err.txt");
  EXPECT_NE(err.find("cannot reach the master at 127.0.0.1:"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST_F(Distributed, AMismatchedWorldSizeIsAClearError) {
  const std::string base = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port());
  const std::string args = "train --data moons --steps 5 --dist-timeout 5 -q";
  const auto start = Clock::now();
  const int code = shell("(" + base + " WORLD_SIZE=3 RANK=1 '" ZFLOW_BINARY "' " + args +
                         " 2> r1.err; echo $? > r1.code) & " + base + " WORLD_SIZE=2 RANK=0 '" +
                         ZFLOW_BINARY "' " + args + " 2> r0.err; code=$?; wait; exit $code");
  EXPECT_EQ(code, 1) << text("r0.err");
  EXPECT_LT(seconds_since(start), 30.0);
  EXPECT_EQ(text("r1.code"), "2\n");
  EXPECT_NE(text("r1.err").find("started for 3 processes but rank 0 for 2"), std::string::npos)
      << text("r1.err");
  EXPECT_NE(text("r0.err").find("could not connect to the other process"), std::string::npos)
      << text("r0.err");
}

TEST_F(Distributed, UsageErrors) {
  EXPECT_EQ(zflow("train --data moons --nproc 2 --batch-size 1 --steps 5"), 2);
  EXPECT_NE(text("err.txt").find("must be at least the number of processes (2)"), std::string::npos)
      << text("err.txt");
  EXPECT_EQ(zflow("train --data moons --steps 5", "err.txt", "RANK=2 WORLD_SIZE=2"), 2);
  EXPECT_NE(text("err.txt").find("rank 2 is outside a world of 2"), std::string::npos);
  EXPECT_EQ(zflow("train --data moons --steps 5", "err.txt", "RANK=0 WORLD_SIZE=2"), 2);
  EXPECT_NE(text("err.txt").find("MASTER_ADDR"), std::string::npos);
  EXPECT_EQ(zflow("train --data moons --steps 5 --nproc 2 --master nohost"), 2);
  EXPECT_NE(text("err.txt").find("HOST:PORT"), std::string::npos) << text("err.txt");
  // Every process reads the data: not from a stream.
  EXPECT_EQ(shell("printf '1,2\\n3,4\\n' | '" ZFLOW_BINARY "' train --data - --nproc 2 --steps 5 "
                  "2> err.txt"),
            2);
  EXPECT_NE(text("err.txt").find("a stream cannot be read twice"), std::string::npos)
      << text("err.txt");
  EXPECT_EQ(zflow("train --data moons --steps 5 --nproc 2", "err.txt", "RANK=0 WORLD_SIZE=2"), 2);
  EXPECT_NE(text("err.txt").find("do not combine it with torchrun"), std::string::npos)
      << text("err.txt");
}

}  // namespace
