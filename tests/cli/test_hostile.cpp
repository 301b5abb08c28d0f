// The command-line tool against a hostile but realistic user (docs/reliability.md): outputs
// that are inputs, links, FIFOs and devices; data a flow cannot fit; signals during
// training; absurd sizes and numbers. Each case checks the exit code, the one-line message,
// and that no input or earlier file changed (their bytes before and after).

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/cli_test.h"

namespace {

namespace fs = std::filesystem;

using zflow::testing::Outcome;

class HostileTest : public zflow::testing::CliTest {
 protected:
  HostileTest() : CliTest("zflow_hostile") {}

  void SetUp() override {
    TempDirTest::SetUp();
    std::mt19937 rng(3);
    std::normal_distribution<double> normal;
    std::ostringstream csv;
    csv.precision(17);
    csv << "a,b\n";
    for (int i = 0; i < 400; ++i) csv << normal(rng) << "," << 0.5 * normal(rng) + 1 << "\n";
    write_text("data.csv", csv.str());
  }

  /// A small model trained on data.csv, as model.safetensors.
  void train_model() {
    const Outcome r = zflow(
        "train --data data.csv --steps 40 --eval-every 20 --layers 2 --hidden 8 --threads 1 "
        "--quiet --out model.safetensors");
    ASSERT_EQ(r.code, 0) << r.err;
  }

  bool is_link(const std::string& name) const { return fs::is_symlink(dir_ / name); }
};

// ---- 1. outputs --------------------------------------------------------------------------

TEST_F(HostileTest, OutputThatIsAnInputIsRefusedAndTheInputKept) {
  train_model();
  const std::string data = read_bytes(path("data.csv"));
  const std::string model = read_bytes(path("model.safetensors"));
  fs::create_symlink("data.csv", dir_ / "alias.csv");
  struct Case {
    std::string args;
    std::string names;
  };
  const std::vector<Case> cases = {
      {"train --data data.csv --steps 5 --out data.csv", "--data"},
      {"train --data data.csv --steps 5 --out m.safetensors --metrics data.csv", "--data"},
      {"train --data data.csv --steps 5 --out m.safetensors --state alias.csv", "--data"},
      {"log-prob -m model.safetensors --data data.csv --out data.csv", "--data"},
      {"log-prob -m model.safetensors --data data.csv --out alias.csv", "--data"},
      {"encode -m model.safetensors --data data.csv --out ./data.csv", "--data"},
      {"decode -m model.safetensors --data data.csv --out data.csv", "--data"},
      {"sample -m model.safetensors -n 5 --out model.safetensors", "--model"},
      {"plot density -m model.safetensors --data data.csv --out model.safetensors", "--model"},
      {"report -m model.safetensors --out model.safetensors", "--model"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    expect_error(zflow(c.args), 2, c.names);
    EXPECT_EQ(read_bytes(path("data.csv")), data);
    EXPECT_EQ(read_bytes(path("model.safetensors")), model);
    EXPECT_TRUE(is_link("alias.csv"));
  }
  expect_error(zflow("train --data data.csv --steps 5 --out r.html --report r.html"), 2,
               "same file");
}

TEST_F(HostileTest, DirectoryAsOutputIsAUsageError) {
  train_model();
  fs::create_directories(dir_ / "folder");
  expect_error(zflow("sample -m model.safetensors -n 5 --out folder"), 2, "is a directory");
  expect_error(zflow("train --data data.csv --steps 5 --out folder"), 2, "is a directory");
  EXPECT_TRUE(fs::is_directory(dir_ / "folder"));
}

TEST_F(HostileTest, SymlinkOutputStaysALink) {
  train_model();
  write_text("real.csv", "old\n");
  fs::create_symlink("real.csv", dir_ / "link.csv");
  const Outcome r = zflow("sample -m model.safetensors -n 7 --out link.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(is_link("link.csv"));
  const std::string text = read_bytes(path("real.csv"));
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 8) << text;  // header + 7 rows
}

TEST_F(HostileTest, FifoOutputIsStreamedAndStaysAFifo) {
  train_model();
  ASSERT_EQ(::mkfifo(path("pipe").c_str(), 0600), 0);
  const Outcome r = shell(
      "cat pipe > got.csv & reader=$!; zflow sample -m model.safetensors -n 9 --out pipe; "
      "code=$?; wait $reader; exit $code");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string text = read_bytes(path("got.csv"));
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 10) << text;
  struct stat st {};
  ASSERT_EQ(::lstat(path("pipe").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_F(HostileTest, DeviceOutputsStayDevices) {
  train_model();
  ASSERT_EQ(zflow("sample -m model.safetensors -n 5 --out /dev/null").code, 0);
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  if (::geteuid() == 0 && ::mknod(path("node").c_str(), S_IFCHR | 0666, st.st_rdev) == 0) {
    const Outcome r = zflow("sample -m model.safetensors -n 5 --out node");
    EXPECT_EQ(r.code, 0) << r.err;
    struct stat node {};
    ASSERT_EQ(::lstat(path("node").c_str(), &node), 0);
    EXPECT_TRUE(S_ISCHR(node.st_mode));
  }
}

TEST_F(HostileTest, WriteErrorsCarryTheSystemsReason) {
  train_model();
  expect_error(zflow("sample -m model.safetensors -n 5 --out /dev/full"), 1,
               "No space left on device");
  expect_error(zflow("sample -m model.safetensors -n 5 > /dev/full"), 1, "No space left on device");
  const std::string model = read_bytes(path("model.safetensors"));
  expect_error(
      zflow("train --data data.csv --steps 40 --eval-every 20 --layers 2 --hidden 8 --threads 1 "
            "--quiet --metrics /dev/full --out model.safetensors"),
      1, "No space left on device");
  EXPECT_EQ(read_bytes(path("model.safetensors")), model);
}

// ---- 2. data a flow cannot fit, runs that produce nothing ---------------------------------

TEST_F(HostileTest, ConstantColumnIsAnErrorNamingIt) {
  write_text("const.csv", "a,flat,b\n1,5,2\n2,5,1\n3,5,0\n4,5,3\n5,5,1\n6,5,2\n");
  write_text("model.safetensors", "earlier model");
  expect_error(zflow("train --data const.csv --steps 5 --out model.safetensors"), 1,
               "'flat' (column 2) is constant");
  EXPECT_EQ(read_bytes(path("model.safetensors")), "earlier model");
}

TEST_F(HostileTest, OverflowingColumnIsAnErrorNamingRowAndColumn) {
  std::string csv = read_bytes(path("data.csv"));
  csv += "1e308,-1e308\n";
  write_text("huge.csv", csv);
  const Outcome r = zflow("train --data huge.csv --steps 5 --out model.safetensors");
  expect_error(r, 1, "row 401");
  EXPECT_FALSE(fs::exists(dir_ / "model.safetensors"));
}

TEST_F(HostileTest, ResumingAFinishedRunChangesNothing) {
  const std::string train =
      "train --data data.csv --steps 40 --eval-every 20 --layers 2 --hidden 8 --threads 1 "
      "--quiet --metrics m.jsonl --out model.safetensors";
  ASSERT_EQ(zflow(train).code, 0);
  const std::string model = read_bytes(path("model.safetensors"));
  const std::string state = read_bytes(path("model.safetensors.state"));
  const std::string metrics = read_bytes(path("m.jsonl"));
  const Outcome r = zflow(train + " --resume");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to do"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("nan"), std::string::npos) << r.err;
  EXPECT_EQ(read_bytes(path("model.safetensors")), model);
  EXPECT_EQ(read_bytes(path("model.safetensors.state")), state);
  EXPECT_EQ(read_bytes(path("m.jsonl")), metrics);
}

// ---- 7. signals ------------------------------------------------------------------------------

// A run gets the signal once its first validation is written; it must save the state and
// the best model, exit 128 + the signal within seconds, and resume from there to exactly
// the model an uninterrupted run trains (the state holds the weights, the optimizer and
// the random generator).
class SignalTest : public HostileTest {
 protected:
  const std::string train_ =
      "\"$Z\" train --data data.csv --model realnvp --steps 5000 --eval-every 25 --layers 2 "
      "--hidden 8 --batch-size 256 --threads 1 --quiet --seed 5 ";

  void expect_saved_and_resumable(const std::string& signal, int code) {
    const Outcome r =
        shell(train_ +
              "--metrics m.jsonl --out model.safetensors & pid=$!; "
              "for i in $(seq 600); do [ -s m.jsonl ] && break; sleep 0.05; done; "
              "kill -" +
              signal +
              " $pid; "
              "for i in $(seq 200); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done; "
              "if kill -0 $pid 2>/dev/null; then kill -9 $pid; echo 'still running' >&2; fi; "
              "wait $pid");
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_NE(r.err.find("interrupted by SIG" + signal), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("still running"), std::string::npos) << r.err;
    ASSERT_TRUE(fs::exists(dir_ / "model.safetensors.state"));
    const Outcome info = zflow("info -m model.safetensors");
    EXPECT_EQ(info.code, 0) << info.err;

    const Outcome resumed = shell(train_ + "--out model.safetensors --resume");
    ASSERT_EQ(resumed.code, 0) << resumed.err;
    const Outcome reference = shell(train_ + "--out reference.safetensors");
    ASSERT_EQ(reference.code, 0) << reference.err;
    ASSERT_EQ(zflow("log-prob -m model.safetensors --data data.csv --out a.csv").code, 0);
    ASSERT_EQ(zflow("log-prob -m reference.safetensors --data data.csv --out b.csv").code, 0);
    EXPECT_EQ(read_bytes(path("a.csv")), read_bytes(path("b.csv")));
  }
};

TEST_F(SignalTest, SigintSavesStateAndBestModelThenExits130) {
  expect_saved_and_resumable("INT", 130);
}

TEST_F(SignalTest, SigtermSavesStateAndBestModelThenExits143) {
  expect_saved_and_resumable("TERM", 143);
}

// A long write cut short by a signal leaves neither a half file nor its temporary file.
TEST_F(HostileTest, SignalDuringAWriteLeavesNoTemporaryFile) {
  train_model();
  write_text("samples.csv", "earlier samples\n");
  const Outcome r = shell(
      "\"$Z\" sample -m model.safetensors -n 100000000 --out samples.csv & pid=$!; "
      "for i in $(seq 600); do ls -a | grep -q '^.samples.csv.tmp' && break; sleep 0.05; done; "
      "sleep 0.2; kill -TERM $pid; wait $pid");
  EXPECT_EQ(r.code, 143) << r.err;  // (a background job ignores SIGINT: TERM it)
  EXPECT_EQ(read_bytes(path("samples.csv")), "earlier samples\n");
  for (const auto& entry : fs::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().filename().string().find(".samples.csv.tmp"), std::string::npos)
        << entry.path();
  }
}

// ---- 5, 6. sizes, numbers and messages -----------------------------------------------------

TEST_F(HostileTest, UnknownCommandNamesItselfAndListsTheCommands) {
  expect_error(zflow("frobnicate"), 2, "unknown command 'frobnicate'");
  EXPECT_NE(zflow("frobnicate").err.find("train, fit-target, integrate, sample"),
            std::string::npos);
}

TEST_F(HostileTest, NumbersOutOfRangeAreErrorsNotClamps) {
  expect_error(zflow("train --data data.csv --steps 99999999999999999999"), 2, "too large");
  train_model();
  const Outcome t = zflow("sample -m model.safetensors -n 5 -t 0");
  expect_error(t, 2, "must be positive, got 0");
  EXPECT_LT(t.err.size(), 200u) << t.err;  // no 309-digit range
  expect_error(zflow("sample -m model.safetensors -n -5"), 2, "must be positive");
}

TEST_F(HostileTest, ThreadsBeyondTheCpusAreCapped) {
  train_model();
  const Outcome r = zflow("sample -m model.safetensors -n 5 --threads 10000");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("--threads 10000 is more than"), std::string::npos) << r.err;
}

TEST_F(HostileTest, HugeSampleStreamsAndFailsAtOnceOnAFullDisk) {
  train_model();
  // Ten billion rows cannot be held in memory: the output must be opened and written in
  // pieces, so /dev/full fails at the first piece instead of after allocating.
  expect_error(zflow("sample -m model.safetensors -n 10000000000 --out /dev/full"), 1,
               "No space left on device");
}

TEST_F(HostileTest, SampleStreamsInPiecesWithTheRightRows) {
  train_model();
  ASSERT_EQ(zflow("sample -m model.safetensors -n 2500 --chunk 1000 --seed 4 --out a.csv").code, 0);
  ASSERT_EQ(zflow("sample -m model.safetensors -n 2500 --chunk 100000 --seed 4 --out b.csv").code,
            0);
  const std::string a = read_bytes(path("a.csv"));
  EXPECT_EQ(std::count(a.begin(), a.end(), '\n'), 2501);
  ASSERT_EQ(zflow("sample -m model.safetensors -n 2500 --chunk 1000 --out c.npy").code, 0);
  // 128-byte header + 2500 × 2 float32.
  EXPECT_EQ(fs::file_size(dir_ / "c.npy"), 128u + 2500u * 2u * 4u);
}

}  // namespace
