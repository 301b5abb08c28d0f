// End-to-end tests of the zflow command-line tool: they run the built binary (ZFLOW_BINARY)
// in a temporary folder and check exit codes, outputs and the one-line error messages.

#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/png_folder.h"
#include "support/required.h"
#include "zflow/io/idx.h"
#include "zflow/io/image.h"
#include "zflow/plot/color.h"

#include "support/svg_texts.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using zflow::testing::write_png_folder;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

/// A CSV with a header row: the header and the rows of numbers.
struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<double>> rows;
};

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream s(line);
  std::string field;
  while (std::getline(s, field, ',')) fields.push_back(field);
  return fields;
}

Csv read_csv(const fs::path& path) {
  Csv csv;
  const auto lines = lines_of(read_text(path));
  if (lines.empty()) return csv;
  csv.header = split(lines[0]);
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<double> row;
    for (const auto& f : split(lines[i])) row.push_back(std::stod(f));
    csv.rows.push_back(row);
  }
  return csv;
}

/// 2 correlated Gaussian columns a, b with a header.
void write_gaussian_csv(const fs::path& path, int rows, unsigned seed = 7) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::ofstream out(path);
  out.precision(17);
  out << "a,b\n";
  for (int i = 0; i < rows; ++i) {
    const double x = normal(rng);
    const double y = 0.8 * x + 0.6 * normal(rng);
    out << 3.0 + 2.0 * x << "," << -1.0 + 0.5 * y << "\n";
  }
}

/// A conditional dataset: columns c, x1, x2 with c ~ U(-2, 2) and x | c ~ N((c, -c), 0.5²).
void write_conditional_csv(const fs::path& path, int rows, bool header = true, unsigned seed = 11) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform(-2.0, 2.0);
  std::ofstream out(path);
  out.precision(17);
  if (header) out << "c,x1,x2\n";
  for (int i = 0; i < rows; ++i) {
    const double c = uniform(rng);
    out << c << "," << c + 0.5 * normal(rng) << "," << -c + 0.5 * normal(rng) << "\n";
  }
}

/// Every error is exactly one line "zflow: error: ..." on stderr.
void expect_one_error_line(const Result& r) {
  const auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << r.err;
  EXPECT_EQ(lines[0].rfind("zflow: error: ", 0), 0u) << lines[0];
  EXPECT_EQ(r.err.find("Exception raised from"), std::string::npos) << r.err;
}

// Small, quick training settings shared by the tests.
const std::string kQuick = " --steps 60 --eval-every 20 --threads 1 --layers 4 --hidden 16 ";

class CliTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    std::error_code ec;
    if (!shared_.empty()) fs::remove_all(shared_, ec);
    if (!shared_cond_.empty()) fs::remove_all(shared_cond_, ec);
  }

  void SetUp() override {
    dir_ = make_temp_dir();
    write_gaussian_csv(path("data.csv"), 500);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  /// Copies a model trained on data.csv into the test's folder as model.safetensors. It is
  /// trained once per process, by the first test that needs it (ctest runs every test in
  /// its own process, so tests that need no model should not pay for one).
  void use_model() {
    if (shared_.empty()) {
      shared_ = make_temp_dir();
      write_gaussian_csv(shared_ / "data.csv", 500);
      const Result r = run_in(shared_, "train --data data.csv --model realnvp" + kQuick +
                                           "--out model.safetensors --quiet");
      ASSERT_EQ(r.code, 0) << r.err;
    }
    fs::copy_file(shared_ / "model.safetensors", path("model.safetensors"),
                  fs::copy_options::overwrite_existing);
  }

  /// Like use_model, for a MAF conditional on column c of cond.csv (c, x1, x2): copies
  /// cond.csv and cond.safetensors into the test's folder.
  void use_conditional_model() {
    if (shared_cond_.empty()) {
      shared_cond_ = make_temp_dir();
      write_conditional_csv(shared_cond_ / "cond.csv", 400);
      const Result r = run_in(shared_cond_,
                              "train --data cond.csv --context-columns c --model maf --steps 200 "
                              "--eval-every 100 --threads 1 --layers 2 --hidden 16 --lr 3e-3 "
                              "--out cond.safetensors --quiet");
      ASSERT_EQ(r.code, 0) << r.err;
    }
    for (const char* file : {"cond.csv", "cond.safetensors"}) {
      fs::copy_file(shared_cond_ / file, path(file), fs::copy_options::overwrite_existing);
    }
  }

  static fs::path make_temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "zflow_cli_XXXXXX").string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (mkdtemp(buffer.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    return fs::path(buffer.data());
  }

  /// Runs `zflow ARGS` in `dir`, capturing stdout and stderr.
  static Result run_in(const fs::path& dir, const std::string& args) {
    const std::string command = "cd '" + dir.string() + "' && '" ZFLOW_BINARY "' " + args +
                                " > cli_stdout.txt 2> cli_stderr.txt";
    const int status = std::system(command.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_text(dir / "cli_stdout.txt");
    r.err = read_text(dir / "cli_stderr.txt");
    return r;
  }

  Result run(const std::string& args) const { return run_in(dir_, args); }
  fs::path path(const std::string& name) const { return dir_ / name; }

  static fs::path shared_;
  static fs::path shared_cond_;
  fs::path dir_;
};

fs::path CliTest::shared_;
fs::path CliTest::shared_cond_;

// ---- the happy path ---------------------------------------------------------------------------

TEST_F(CliTest, TrainWritesModelMetricsAndSummary) {
  const Result r =
      run("train --data data.csv" + kQuick + "--out trained.safetensors --metrics metrics.jsonl");
  ASSERT_EQ(r.code, 0) << r.err;
  // The default tabular model (chosen by measurement, docs/benchmarks.md).
  EXPECT_NE(r.err.find("trained nsf-coupling"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("wrote trained.safetensors"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << "train writes nothing on stdout: " << r.out;
  EXPECT_TRUE(fs::exists(path("trained.safetensors")));
  EXPECT_TRUE(fs::exists(path("trained.safetensors.state")));

  const auto metrics = lines_of(read_text(path("metrics.jsonl")));
  ASSERT_EQ(metrics.size(), 3u);  // validations at steps 20, 40, 60
  const json last = json::parse(metrics.back());
  EXPECT_EQ(last.at("step").get<int>(), 60);
  EXPECT_TRUE(std::isfinite(last.at("val_nll").get<double>()));
}

TEST_F(CliTest, SampleWritesCsvWithColumnNames) {
  use_model();
  Result r = run("sample --model model.safetensors -n 200 --seed 3 --threads 1 --out samples.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv samples = read_csv(path("samples.csv"));
  EXPECT_EQ(samples.header, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(samples.rows.size(), 200u);
  for (const auto& row : samples.rows) {
    ASSERT_EQ(row.size(), 2u);
    EXPECT_TRUE(std::isfinite(row[0]) && std::isfinite(row[1]));
  }
  // Same seed, same samples; "-" writes to stdout.
  r = run("sample --model model.safetensors -n 200 --seed 3 --threads 1 --out -");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, read_text(path("samples.csv")));
}

TEST_F(CliTest, LogProbWritesOneValuePerRow) {
  use_model();
  const Result r = run("log-prob --model model.safetensors --data data.csv --out logp.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv logp = read_csv(path("logp.csv"));
  EXPECT_EQ(logp.header, (std::vector<std::string>{"log_prob"}));
  ASSERT_EQ(logp.rows.size(), 500u);
  for (const auto& row : logp.rows) EXPECT_TRUE(std::isfinite(row.at(0)));
}

TEST_F(CliTest, EvalPrintsTextAndJson) {
  use_model();
  Result r = run("eval --model model.safetensors --data data.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("test NLL"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bits/dim"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("500 points"), std::string::npos) << r.out;

  r = run("eval --model model.safetensors --data data.csv --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json result = json::parse(r.out);
  const double nll = result.at("nll").get<double>();
  EXPECT_TRUE(std::isfinite(nll));
  EXPECT_EQ(result.at("points").get<int>(), 500);
  EXPECT_EQ(result.at("features").get<int>(), 2);
  EXPECT_GT(result.at("nll_stderr").get<double>(), 0.0);
  EXPECT_NEAR(result.at("bits_per_dim").get<double>(), nll / (2 * std::log(2.0)), 1e-9);
  // The mean NLL is the mean of -log-prob.
  ASSERT_EQ(run("log-prob --model model.safetensors --data data.csv --out logp.csv").code, 0);
  double sum = 0;
  const Csv logp = read_csv(path("logp.csv"));
  for (const auto& row : logp.rows) sum -= row[0];
  EXPECT_NEAR(nll, sum / static_cast<double>(logp.rows.size()), 1e-4);
}

TEST_F(CliTest, EncodeThenDecodeReconstructsTheData) {
  use_model();
  Result r = run("encode --model model.safetensors --data data.csv --out z.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv z = read_csv(path("z.csv"));
  EXPECT_EQ(z.header, (std::vector<std::string>{"z1", "z2"}));
  ASSERT_EQ(z.rows.size(), 500u);

  r = run("decode --model model.safetensors --data z.csv --out x.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv original = read_csv(path("data.csv"));
  const Csv decoded = read_csv(path("x.csv"));
  EXPECT_EQ(decoded.header, original.header);
  ASSERT_EQ(decoded.rows.size(), original.rows.size());
  for (size_t i = 0; i < original.rows.size(); ++i) {
    for (size_t j = 0; j < 2; ++j) {
      const double want = original.rows[i][j];
      ASSERT_NEAR(decoded.rows[i][j], want, 1e-4 * std::max(1.0, std::abs(want)))
          << "row " << i << " column " << j;
    }
  }
}

TEST_F(CliTest, InfoDescribesTheModel) {
  use_model();
  Result r = run("info --model model.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* needle : {"architecture", "1. standardize", "affine_coupling", "parameters",
                             "float32", "data.csv", "training", "standardized"}) {
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << " missing in\n" << r.out;
  }
  r = run("info --model model.safetensors --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json info = json::parse(r.out);
  EXPECT_EQ(info.at("features").get<int>(), 2);
  EXPECT_EQ(info.at("columns"), json::array({"a", "b"}));
  EXPECT_EQ(info.at("dataset").get<std::string>(), "data.csv");
  EXPECT_EQ(info.at("layers").size(), 6u);  // standardize + 4 couplings + log_tails
  EXPECT_GT(info.at("parameters").get<int>(), 0);
  EXPECT_EQ(info.at("train").at("result").at("steps").get<int>(), 60);
  EXPECT_TRUE(info.at("standardization").at("mean").is_array());
}

TEST_F(CliTest, InfoSystemAndDatasets) {
  Result r = run("info --system --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("BLAS"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("torch"), std::string::npos) << r.out;
  // scripts/setup.sh installs OpenBLAS; the reference BLAS would make LibTorch many times
  // slower, so a machine without it fails here rather than silently.
  EXPECT_NE(r.out.find("BLAS:    openblas"), std::string::npos)
      << "LibTorch is not using OpenBLAS; run scripts/setup.sh\n"
      << r.out;

  r = run("datasets --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json list = json::parse(r.out);
  ASSERT_TRUE(list.is_array());
  bool found = false;
  for (const auto& d : list) found = found || d.at("name") == "8gaussians";
  EXPECT_TRUE(found);
}

// OpenBLAS falls back to its generic SSE3 kernels ("Prescott") on CPUs it does not know;
// zflow then restarts itself with the kernels the CPU supports, unless the user chose.
TEST_F(CliTest, OpenBlasRunsTheKernelsTheCpuSupports) {
  const char* given = std::getenv("OPENBLAS_CORETYPE");
  const std::string saved = given != nullptr ? given : "";
  unsetenv("OPENBLAS_CORETYPE");
  Result r = run("info --system --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    EXPECT_EQ(r.out.find("Prescott kernels"), std::string::npos) << r.out;
  }
  EXPECT_NE(r.out.find(" kernels"), std::string::npos) << r.out;
  // The user's choice stays, even the slow one.
  setenv("OPENBLAS_CORETYPE", "Prescott", 1);
  r = run("info --system --threads 1");
  if (given != nullptr) {
    setenv("OPENBLAS_CORETYPE", saved.c_str(), 1);
  } else {
    unsetenv("OPENBLAS_CORETYPE");
  }
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Prescott kernels"), std::string::npos) << r.out;
}

TEST_F(CliTest, TrainOnToyDatasetAndEvaluateAgainstEntropy) {
  Result r = run("train --data 8gaussians --n 2000 --model nice" + kQuick +
                 "--out toy.safetensors --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << "--quiet: " << r.err;
  r = run("eval --model toy.safetensors --data 8gaussians --n 2000 --json --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  const json result = json::parse(r.out);
  const double nll = result.at("nll").get<double>();
  EXPECT_TRUE(std::isfinite(nll));
  EXPECT_EQ(result.at("points").get<int>(), 2000);
  EXPECT_NEAR(result.at("gap").get<double>(), nll - result.at("entropy").get<double>(), 1e-9);

  r = run("eval --model toy.safetensors --data 8gaussians --n 2000 --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("entropy of 8gaussians"), std::string::npos) << r.out;
}

TEST_F(CliTest, ResumeContinuesFromTheState) {
  const std::string common =
      "train --data data.csv --steps 40 --eval-every 20 --threads 1 "
      "--layers 2 --hidden 8 --out r.safetensors --metrics r.jsonl";
  Result r = run(common);
  ASSERT_EQ(r.code, 0) << r.err;
  r =
      run("train --data data.csv --steps 80 --eval-every 20 --threads 1 --layers 2 --hidden 8 "
          "--out r.safetensors --metrics r.jsonl --resume");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming"), std::string::npos) << r.err;
  std::vector<int> steps;
  for (const auto& line : lines_of(read_text(path("r.jsonl")))) {
    const json record = json::parse(line);
    if (record.contains("step")) steps.push_back(record.at("step").get<int>());
  }
  EXPECT_EQ(steps, (std::vector<int>{20, 40, 60, 80}));
  r = run("info --model r.safetensors --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("train").at("result").at("steps").get<int>(), 80);
}

TEST_F(CliTest, HelpAndVersionExitZero) {
  Result r = run("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("train"), std::string::npos);
  for (const char* sub :
       {"train", "sample", "log-prob", "eval", "encode", "decode", "info", "datasets"}) {
    r = run(std::string(sub) + " --help");
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_NE(r.out.find("Example"), std::string::npos) << sub << ":\n" << r.out;
  }
  r = run("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("zflow"), std::string::npos);
}

// ---- conditional models and the other architectures ------------------------------------------

TEST_F(CliTest, ConditionalTrainStoresTheContext) {
  use_conditional_model();
  const Result r = run("info --model cond.safetensors --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json info = json::parse(r.out);
  EXPECT_EQ(info.at("features").get<int>(), 2);
  EXPECT_EQ(info.at("columns"), json::array({"x1", "x2"}));
  EXPECT_EQ(info.at("context_features").get<int>(), 1);
  EXPECT_EQ(info.at("context_columns"), json::array({"c"}));
  EXPECT_TRUE(info.at("context_standardization").at("mean").is_array());
  EXPECT_TRUE(info.at("embedding").is_null());
  EXPECT_EQ(info.at("spec").at("context_features").get<int>(), 1);
  const Result text = run("info --model cond.safetensors");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("context:      1 context column (c)"), std::string::npos) << text.out;
}

TEST_F(CliTest, ConditionalSampleWritesContextColumnsFirst) {
  use_conditional_model();
  Result r = run("sample --model cond.safetensors -n 300 --context 1.5 --threads 1 --out s.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv high = read_csv(path("s.csv"));
  EXPECT_EQ(high.header, (std::vector<std::string>{"c", "x1", "x2"}));
  ASSERT_EQ(high.rows.size(), 300u);
  for (const auto& row : high.rows) {
    ASSERT_EQ(row.size(), 3u);
    EXPECT_EQ(row[0], 1.5);
  }
  // The model uses the context: x1 | c ≈ c, x2 | c ≈ -c.
  r = run("sample --model cond.safetensors -n 300 --context=-1.5 --threads 1 --out s2.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv low = read_csv(path("s2.csv"));
  ASSERT_EQ(low.rows.size(), 300u);
  EXPECT_EQ(low.rows[0][0], -1.5);
  auto mean = [](const Csv& csv, size_t column) {
    double sum = 0;
    for (const auto& row : csv.rows) sum += row[column];
    return sum / static_cast<double>(csv.rows.size());
  };
  EXPECT_GT(mean(high, 1) - mean(low, 1), 1.5);
  EXPECT_LT(mean(high, 2) - mean(low, 2), -1.5);

  // C contexts from a file: C·n rows, n per context in file order; --log-prob adds a column.
  write_text(path("contexts.csv"), "c\n-1\n0\n2\n");
  r =
      run("sample --model cond.safetensors -n 20 --context-file contexts.csv --log-prob "
          "--threads 1 --out s3.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv many = read_csv(path("s3.csv"));
  EXPECT_EQ(many.header, (std::vector<std::string>{"c", "x1", "x2", "log_prob"}));
  ASSERT_EQ(many.rows.size(), 60u);
  const double want[] = {-1, 0, 2};
  for (size_t i = 0; i < many.rows.size(); ++i) {
    ASSERT_EQ(many.rows[i].size(), 4u);
    EXPECT_EQ(many.rows[i][0], want[i / 20]) << "row " << i;
    EXPECT_TRUE(std::isfinite(many.rows[i][3]));
  }
}

TEST_F(CliTest, ConditionalLogProbEvalEncodeDecode) {
  use_conditional_model();
  Result r = run("log-prob --model cond.safetensors --data cond.csv --threads 1 --out logp.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv logp = read_csv(path("logp.csv"));
  ASSERT_EQ(logp.rows.size(), 400u);
  double sum = 0;
  for (const auto& row : logp.rows) {
    ASSERT_TRUE(std::isfinite(row.at(0)));
    sum -= row[0];
  }
  r = run("eval --model cond.safetensors --data cond.csv --json --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  const json result = json::parse(r.out);
  EXPECT_NEAR(result.at("nll").get<double>(), sum / 400.0, 1e-4);
  EXPECT_EQ(result.at("context_features").get<int>(), 1);
  // The true conditional entropy is 2 (0.5 + log(0.5 sqrt(2 pi))) = 0.452; a short run gets
  // well below the marginal's.
  EXPECT_LT(result.at("nll").get<double>(), 2.0);

  // A file without a header: the training column indices find the context.
  const std::string text = read_text(path("cond.csv"));
  write_text(path("bare.csv"), text.substr(text.find('\n') + 1));
  r = run("log-prob --model cond.safetensors --data bare.csv --threads 1 --out bare_logp.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_text(path("bare_logp.csv")), read_text(path("logp.csv")));
  // ... or --context-columns, with the data columns in another order.
  r =
      run("log-prob --model cond.safetensors --data bare.csv --context-columns 0 --columns 1,2 "
          "--threads 1 --out bare_logp2.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_text(path("bare_logp2.csv")), read_text(path("logp.csv")));

  // encode → decode with the per-row contexts reconstructs the file, context column first.
  r = run("encode --model cond.safetensors --data cond.csv --threads 1 --out z.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv z = read_csv(path("z.csv"));
  EXPECT_EQ(z.header, (std::vector<std::string>{"z1", "z2"}));
  ASSERT_EQ(z.rows.size(), 400u);
  r =
      run("decode --model cond.safetensors --data z.csv --context-file cond.csv --threads 1 "
          "--out x.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv original = read_csv(path("cond.csv"));
  const Csv decoded = read_csv(path("x.csv"));
  EXPECT_EQ(decoded.header, original.header);
  ASSERT_EQ(decoded.rows.size(), original.rows.size());
  for (size_t i = 0; i < original.rows.size(); ++i) {
    for (size_t j = 0; j < 3; ++j) {
      const double want = original.rows[i][j];
      ASSERT_NEAR(decoded.rows[i][j], want, 1e-4 * std::max(1.0, std::abs(want)))
          << "row " << i << " column " << j;
    }
  }
  // One context for every row.
  r = run("decode --model cond.safetensors --data z.csv --context 0.25 --threads 1 --out y.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv one = read_csv(path("y.csv"));
  ASSERT_EQ(one.rows.size(), 400u);
  for (const auto& row : one.rows) EXPECT_EQ(row.at(0), 0.25);
}

TEST_F(CliTest, ConditionalUsageErrors) {
  use_model();
  use_conditional_model();
  struct Case {
    std::string command;
    int code;
    std::vector<std::string> needles;
  };
  write_text(path("wide_ctx.csv"), "1,2\n3,4\n");
  const std::vector<Case> cases = {
      {"sample --model cond.safetensors -n 5",
       2,
       {"conditional on 1 context column (c)", "--context"}},
      {"decode --model cond.safetensors --data data.csv", 2, {"context column (c)"}},
      {"sample --model model.safetensors -n 5 --context 1", 2, {"unconditional", "--context"}},
      {"log-prob --model model.safetensors --data data.csv --context-columns a",
       2,
       {"unconditional"}},
      {"sample --model cond.safetensors -n 5 --context 1,2", 2, {"2 values", "1 context column"}},
      {"sample --model cond.safetensors -n 5 --context abc", 2, {"abc", "not a number"}},
      {"sample --model cond.safetensors -n 5 --context-file wide_ctx.csv",
       1,
       {"wide_ctx.csv", "2 columns"}},
      {"train --data 8gaussians --context-columns 0 --steps 5", 2, {"8gaussians", "context"}},
      {"train --data cond.csv --context-columns c --columns c,x1 --steps 5", 2, {"both"}},
      {"train --data cond.csv --embedding 4 --steps 5", 2, {"--context-columns"}},
      {"eval --model cond.safetensors --data data.csv", 1, {"no column c", "--context-columns"}},
      {"eval --model cond.safetensors --data 8gaussians", 2, {"built-in"}},
  };
  for (const auto& c : cases) {
    const Result r = run(c.command + " --threads 1");
    EXPECT_EQ(r.code, c.code) << c.command << ": " << r.err;
    expect_one_error_line(r);
    for (const auto& needle : c.needles) {
      EXPECT_NE(r.err.find(needle), std::string::npos) << c.command << ": " << r.err;
    }
  }
}

TEST_F(CliTest, ConditionalWithEmbeddingAndSplines) {
  write_conditional_csv(path("cond.csv"), 300);
  Result r =
      run("train --data cond.csv --context-columns c --model nsf-autoregressive --bins 4 "
          "--tail-bound 4 --embedding 3 --steps 20 --eval-every 10 --threads 1 --layers 2 "
          "--hidden 8 --out e.safetensors --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("info --model e.safetensors --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json info = json::parse(r.out);
  EXPECT_EQ(info.at("embedding").at("features").get<int>(), 3);
  EXPECT_EQ(info.at("train").at("options").at("bins").get<int>(), 4);
  r = run("info --model e.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("embedding:  mlp 1 -> 3"), std::string::npos) << r.out;
  r = run("eval --model e.safetensors --data cond.csv --json --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::isfinite(json::parse(r.out).at("nll").get<double>())) << r.out;
}

TEST_F(CliTest, EveryModelTrainsAndEvaluates) {
  for (const std::string model : {"maf", "iaf", "nsf-autoregressive", "nsf-coupling"}) {
    const std::string file = model + ".safetensors";
    Result r = run("train --data data.csv --model " + model +
                   " --steps 20 --eval-every 10 --threads 1 --layers 2 --hidden 8 --bins 4 --out " +
                   file + " --quiet");
    ASSERT_EQ(r.code, 0) << model << ": " << r.err;
    r = run("eval --model " + file + " --data data.csv --json --threads 1");
    ASSERT_EQ(r.code, 0) << model << ": " << r.err;
    EXPECT_TRUE(std::isfinite(json::parse(r.out).at("nll").get<double>())) << model << r.out;
  }
}

// Residual flows: training on the stochastic log-determinant, sampling by fixed-point
// inversion (the log-determinant then runs under inference mode), exact densities.
TEST_F(CliTest, ResidualFlowTrainsSamplesAndEvaluates) {
  Result r =
      run("train --data data.csv --model iresnet --steps 20 --eval-every 10 --threads 1 --layers 2 "
          "--hidden 8 --out ir.safetensors --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("sample --model ir.safetensors -n 50 --out ir_samples.csv --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("eval --model ir.safetensors --data ir_samples.csv --json --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::isfinite(json::parse(r.out).at("nll").get<double>())) << r.out;
}

// Neural autoregressive flows: one-pass densities, sampling by root-finding, and finite
// densities of the model's own samples.
TEST_F(CliTest, NeuralAutoregressiveFlowsTrainSampleAndEvaluate) {
  for (const std::string model : {"naf", "bnaf"}) {
    const std::string file = model + ".safetensors";
    Result r = run("train --data data.csv --model " + model +
                   " --steps 30 --eval-every 10 --threads 1 --layers 2 --hidden 8 --out " + file +
                   " --quiet");
    ASSERT_EQ(r.code, 0) << model << ": " << r.err;
    r = run("sample --model " + file + " -n 200 --seed 4 --out " + model + "_samples.csv");
    ASSERT_EQ(r.code, 0) << model << ": " << r.err;
    r = run("eval --model " + file + " --data " + model + "_samples.csv --json --threads 1");
    ASSERT_EQ(r.code, 0) << model << ": " << r.err;
    EXPECT_TRUE(std::isfinite(json::parse(r.out).at("nll").get<double>())) << model << r.out;
  }
}

TEST_F(CliTest, BatchNormModelsTrainSampleAndEvaluate) {
  for (const std::string model : {"maf", "realnvp"}) {
    const std::string file = model + "_bn.safetensors";
    Result r = run("train --data data.csv --model " + model +
                   " --batch-norm --steps 30 --eval-every 10 --threads 1 --layers 3 --hidden 8 "
                   "--out " +
                   file + " --quiet");
    ASSERT_EQ(r.code, 0) << model << ": " << r.err;
    r = run("info --model " + file + " --json");
    ASSERT_EQ(r.code, 0) << r.err;
    // Between every two of the 3 layers.
    size_t count = 0;
    for (size_t at = r.out.find("\"batch_norm\""); at != std::string::npos;
         at = r.out.find("\"batch_norm\"", at + 1)) {
      ++count;
    }
    EXPECT_GE(count, 2u) << r.out;
    r = run("eval --model " + file + " --data data.csv --json --threads 1");
    ASSERT_EQ(r.code, 0) << model << ": " << r.err;
    EXPECT_TRUE(std::isfinite(json::parse(r.out).at("nll").get<double>())) << model << r.out;
    r = run("sample --model " + file + " -n 50 --seed 3 --out s.csv");
    ASSERT_EQ(r.code, 0) << model << ": " << r.err;
  }
  Result r = run("train --data data.csv --model nsf-coupling --batch-norm --steps 5");
  EXPECT_NE(r.code, 0);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("batch norm is offered for maf and realnvp only"), std::string::npos)
      << r.err;
}

TEST_F(CliTest, CircularColumnsModelAnglesOnTheCircle) {
  Result r =
      run("train --data torus --n 2000 --circular-columns 0,1 --steps 40 --eval-every 20 "
          "--threads 1 --layers 2 --hidden 16 --bins 4 --out torus.safetensors --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("info --model torus.safetensors --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("circular_spline_coupling"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("circular_uniform"), std::string::npos) << r.out;
  r = run("sample --model torus.safetensors -n 400 --seed 2 --out angles.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(read_text(path("angles.csv")));
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || !(std::isdigit(line[0]) || line[0] == '-')) continue;
    const double a = std::stod(line), b = std::stod(line.substr(line.find(',') + 1));
    EXPECT_LE(std::abs(a), 3.1415927) << line;
    EXPECT_LE(std::abs(b), 3.1415927) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 400);
  // The same point of the circle has the same density, whichever turn names it.
  write_text(path("turns.csv"), "a,b\n1.0,-2.0\n7.283185307179586,-2.0\n");
  r = run("log-prob --model torus.safetensors --data turns.csv --out lp.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream values(read_text(path("lp.csv")));
  std::vector<double> lp;
  while (std::getline(values, line)) {
    if (!line.empty() && (std::isdigit(line[0]) || line[0] == '-')) lp.push_back(std::stod(line));
  }
  ASSERT_EQ(lp.size(), 2u);
  EXPECT_NEAR(lp[0], lp[1], 1e-4);
  for (const std::string& bad :
       {std::string("train --data torus --model maf --circular-columns 0,1 --steps 5"),
        std::string("train --data torus --circular-columns 5 --steps 5"),
        std::string("train --data torus --circular-columns 0 --base laplace --steps 5")}) {
    r = run(bad);
    EXPECT_NE(r.code, 0) << bad;
    expect_one_error_line(r);
  }
}

// ---- bad input ----------------------------------------------------------------------------------

TEST_F(CliTest, MissingDataFile) {
  const Result r = run("train --data nofile.csv --steps 5");
  EXPECT_EQ(r.code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("nofile.csv"), std::string::npos) << r.err;
}

TEST_F(CliTest, MalformedCsvNamesTheLine) {
  write_text(path("bad.csv"), "a,b\n1,2\n3,oops\n4,5\n");
  const Result r = run("train --data bad.csv --steps 5");
  EXPECT_EQ(r.code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("bad.csv"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("oops"), std::string::npos) << r.err;
}

TEST_F(CliTest, NanInTheData) {
  use_model();
  write_text(path("nan.csv"), "a,b\n1,2\n3,NaN\n4,5\n");
  for (const std::string command :
       {"train --data nan.csv --steps 5", "eval --model model.safetensors --data nan.csv"}) {
    const Result r = run(command);
    EXPECT_EQ(r.code, 1) << command;
    expect_one_error_line(r);
    EXPECT_NE(r.err.find("nan.csv"), std::string::npos) << r.err;
  }
}

TEST_F(CliTest, WidthMismatch) {
  use_model();
  write_text(path("wide.csv"), "1,2,3\n4,5,6\n7,8,9\n");
  const Result r = run("log-prob --model model.safetensors --data wide.csv");
  EXPECT_EQ(r.code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("3 columns"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("expects 2"), std::string::npos) << r.err;
}

TEST_F(CliTest, UnknownModelIsAUsageError) {
  const Result r = run("train --data data.csv --model foo");
  EXPECT_EQ(r.code, 2);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("foo"), std::string::npos) << r.err;
}

TEST_F(CliTest, UsageErrors) {
  for (const std::string command :
       {"train --data data.csv --bogus", "", "train --data data.csv --steps 0",
        "train --data data.csv --lr -1", "train --steps 5", "sample --model model.safetensors -n x",
        "info", "train --data data.csv --columns 0,nope"}) {
    const Result r = run(command);
    EXPECT_EQ(r.code, 2) << command << ": " << r.err;
    expect_one_error_line(r);
  }
  const Result r = run("train --data data.csv --bogus");
  EXPECT_NE(r.err.find("--bogus"), std::string::npos) << r.err;
}

TEST_F(CliTest, DamagedCheckpoint) {
  use_model();
  const std::string model = read_text(path("model.safetensors"));
  write_text(path("half.safetensors"), model.substr(0, model.size() / 2));
  for (const std::string command :
       {"sample --model half.safetensors -n 5", "eval --model half.safetensors --data data.csv",
        "info --model half.safetensors"}) {
    const Result r = run(command);
    EXPECT_EQ(r.code, 1) << command;
    expect_one_error_line(r);
    EXPECT_NE(r.err.find("half.safetensors"), std::string::npos) << r.err;
  }
}

TEST_F(CliTest, TextFileAsModel) {
  write_text(path("notes.txt"), "these are not the weights you are looking for\n");
  const Result r = run("sample --model notes.txt -n 5");
  EXPECT_EQ(r.code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("notes.txt"), std::string::npos) << r.err;
}

TEST_F(CliTest, MissingModelFile) {
  const Result r = run("eval --model nothing.safetensors --data data.csv");
  EXPECT_EQ(r.code, 1);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("nothing.safetensors"), std::string::npos) << r.err;
}

// ---- image models -----------------------------------------------------------------------------

/// A folder of `count` 8×8 gray PNGs: a bright bar at a random row on a dark background.
const std::string kQuickImages =
    " --model glow --hidden 8 --steps-per-level 2 --steps 40 --batch-size 16 --eval-every 20 "
    "--threads 1 ";

TEST_F(CliTest, ImageModelTrainsSamplesReconstructsAndInterpolates) {
  write_png_folder(path("pngs"), 96);
  Result r = run("train --data pngs" + kQuickImages + "--out glow.safetensors --metrics m.jsonl");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("bits/dim"), std::string::npos) << r.err;
  const json last = json::parse(lines_of(read_text(path("m.jsonl"))).back());
  EXPECT_TRUE(std::isfinite(last.at("val_bpd").get<double>())) << last.dump();

  // A 3×4 grid, pixels enlarged twice, 2-pixel padding: 4·16 + 5·2 wide, 3·16 + 4·2 high.
  r = run("sample --model glow.safetensors --grid 3x4 --scale 2 --temperature 0.7 -o s.png");
  ASSERT_EQ(r.code, 0) << r.err;
  auto image = zflow::io::read_png(path("s.png").string());
  EXPECT_EQ(image.width, 74);
  EXPECT_EQ(image.height, 56);
  EXPECT_EQ(image.channels, 1);

  // Reconstruction is exact: the message reports a largest error of 0.
  r = run("reconstruct --model glow.safetensors --data pngs --grid 2x3 --scale 1 -o r.png");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("largest pixel error 0 "), std::string::npos) << r.err;
  image = zflow::io::read_png(path("r.png").string());
  EXPECT_EQ(image.height, 4 * 8 + 5 * 2);  // 2 rows of data, each with its reconstructions
  EXPECT_EQ(image.width, 3 * 8 + 4 * 2);

  r =
      run("interpolate --model glow.safetensors --data pngs --pairs 2 --steps 5 --scale 1 "
          "-o i.png");
  ASSERT_EQ(r.code, 0) << r.err;
  image = zflow::io::read_png(path("i.png").string());
  EXPECT_EQ(image.width, 5 * 8 + 6 * 2);
  EXPECT_EQ(image.height, 2 * 8 + 3 * 2);

  r = run("eval --model glow.safetensors --data pngs --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json e = json::parse(r.out);
  EXPECT_EQ(e.at("points").get<int>(), 96);
  EXPECT_EQ(e.at("features").get<int>(), 64);
  // Better than uniform over the 256 levels, as the model has learned something.
  EXPECT_LT(e.at("bits_per_dim").get<double>(), 8.0) << r.out;

  // encode → decode gives the images back.
  r = run("encode --model glow.safetensors --data pngs -o z.npy");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("decode --model glow.safetensors --data z.npy -o x.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const Csv decoded = read_csv(path("x.csv"));
  ASSERT_EQ(decoded.rows.size(), 96u);
  ASSERT_EQ(decoded.rows[0].size(), 64u);
  const auto first = zflow::io::read_png(path("pngs/img000.png").string());
  for (size_t p = 0; p < 64; ++p) EXPECT_EQ(decoded.rows[0][p], first.pixels[p]) << p;

  r = run("info --model glow.safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("multiscale"), std::string::npos) << r.out;
}

TEST_F(CliTest, ImageUsageErrors) {
  use_model();
  write_png_folder(path("pngs"), 8);
  for (const std::string command :
       {"train --data pngs --model realnvp --steps 5",
        "train --data data.csv --model realnvp-image", "train --data pngs --columns 0 --steps 5",
        "sample --model model.safetensors --grid 2x2 -o s.png",
        "eval --model model.safetensors --data pngs", "train --data fashion-mnist:valid"}) {
    const Result r = run(command);
    EXPECT_EQ(r.code, 2) << command << ": " << r.err;
    expect_one_error_line(r);
  }
  const Result r = run("train --data pngs --model glow --levels 4 --steps 5");
  EXPECT_EQ(r.code, 2) << r.err;
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("levels"), std::string::npos) << r.err;
}

TEST_F(CliTest, DamagedImageData) {
  // A truncated IDX file, a folder of PNGs of two sizes, and a PNG that is not one.
  zflow::io::IdxArray array{{4, 8, 8}, std::vector<uint8_t>(256, 7)};
  zflow::io::write_idx(path("x-images-idx3-ubyte").string(), array);
  const std::string bytes = read_text(path("x-images-idx3-ubyte"));
  write_text(path("cut-images-idx3-ubyte"), bytes.substr(0, bytes.size() - 10));
  write_png_folder(path("mixed"), 2, 8);
  write_png_folder(path("mixed/more"), 1, 6);
  fs::rename(path("mixed/more/img000.png"), path("mixed/z.png"));
  fs::create_directories(path("broken"));
  write_text(path("broken/a.png"), "not a png");
  for (const std::string data : {"cut-images-idx3-ubyte", "mixed", "broken"}) {
    const Result r = run("train --data " + data + " --model glow --steps 5");
    EXPECT_EQ(r.code, 1) << data << ": " << r.err;
    expect_one_error_line(r);
    EXPECT_NE(r.err.find(data), std::string::npos) << r.err;
  }
}

TEST_F(CliTest, ImageModelMeetsImagesOfAnotherSize) {
  write_png_folder(path("small"), 40, 8);
  write_png_folder(path("large"), 4, 16);
  Result r =
      run("train --data small --model glow --hidden 4 --steps-per-level 1 --steps 2 "
          "--threads 1 --out g.safetensors --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("eval --model g.safetensors --data large");
  EXPECT_EQ(r.code, 1) << r.err;
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("[1, 16, 16]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[1, 8, 8]"), std::string::npos) << r.err;
}

// ---- pictures and reports -------------------------------------------------------------------

using zflow::testing::has_text;
using zflow::testing::svg_texts;

TEST_F(CliTest, PlotStepsDensityLatentAsSvg) {
  use_model();  // realnvp, 4 layers + standardisation + log_tails, on data.csv
  Result r =
      run("plot steps --model model.safetensors --data data.csv --samples 4000 -o steps.svg");
  ASSERT_EQ(r.code, 0) << r.err;
  int images = 0;
  auto texts = svg_texts(path("steps.svg"), &images);
  // 6 layers → 7 stages per row; two rows (sampling and encoding), one raster per panel.
  EXPECT_EQ(images, 14);
  EXPECT_TRUE(has_text(texts, "z ~ standard_normal")) << texts.size();
  EXPECT_TRUE(has_text(texts, "x (data)"));
  EXPECT_TRUE(has_text(texts, "1. standardize"));
  EXPECT_TRUE(has_text(texts, "affine_coupling inverse"));

  r =
      run("plot steps --model model.safetensors --data data.csv --samples 2000 --groups 2 "
          "--density -o grouped.svg");
  ASSERT_EQ(r.code, 0) << r.err;
  svg_texts(path("grouped.svg"), &images);
  EXPECT_EQ(images, 6);  // 2 groups → 3 stages per row

  r = run("plot density --model model.safetensors --data data.csv -o density.svg");
  ASSERT_EQ(r.code, 0) << r.err;
  texts = svg_texts(path("density.svg"), &images);
  EXPECT_EQ(images, 2);
  EXPECT_TRUE(has_text(texts, "model density p(x)"));
  EXPECT_TRUE(has_text(texts, "data (500 points)"));

  r = run("plot latent --model model.safetensors --data data.csv -o latent.svg");
  ASSERT_EQ(r.code, 0) << r.err;
  texts = svg_texts(path("latent.svg"));
  EXPECT_TRUE(has_text(texts, "2σ"));
  EXPECT_TRUE(has_text(texts, "contours of N(0, I)"));
}

// The density heat map of a flow trained on the checkerboard puts most of its mass on the
// 8 occupied squares: [2c, 2c+2) × [2m, 2m+2) with c + m even, for c, m in −2..1.
TEST_F(CliTest, DensityHeatMapPutsItsMassOnTheCheckerboard) {
  Result r =
      run("train --data checkerboard --n 20000 --model nsf-coupling --layers 4 --hidden 32 "
          "--bins 8 --tail-bound 4 --steps 500 --batch-size 256 --lr 3e-3 --eval-every 250 "
          "--threads 1 --metrics cb.jsonl --out cb.safetensors --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("plot density --model cb.safetensors --range -4,4,-4,4 --bins 80 -o d.png");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto image = zflow::io::read_png(path("d.png").string());
  ASSERT_EQ(image.width, 160);  // 80 cells, 2 pixels each
  ASSERT_EQ(image.height, 160);
  ASSERT_EQ(image.channels, 3);
  // Pixel → position on the viridis scale (nearest of 256 samples), i.e. the density.
  std::vector<zflow::plot::Rgb> scale;
  for (int i = 0; i < 256; ++i) scale.push_back(zflow::plot::viridis(i / 255.0));
  double inside = 0, outside = 0;
  for (int64_t row = 0; row < image.height; ++row) {
    for (int64_t col = 0; col < image.width; ++col) {
      const uint8_t* p = &image.pixels[static_cast<size_t>((row * image.width + col) * 3)];
      int best = 0;
      int best_distance = 1 << 30;
      for (int i = 0; i < 256; ++i) {
        const int d = (p[0] - scale[i].r) * (p[0] - scale[i].r) +
                      (p[1] - scale[i].g) * (p[1] - scale[i].g) +
                      (p[2] - scale[i].b) * (p[2] - scale[i].b);
        if (d < best_distance) {
          best_distance = d;
          best = i;
        }
      }
      // Pixel centre in data coordinates (row 0 is the top, y = 4).
      const double x = -4.0 + (col + 0.5) * 8.0 / 160.0;
      const double y = 4.0 - (row + 0.5) * 8.0 / 160.0;
      const int c = static_cast<int>(std::floor(x / 2.0));
      const int m = static_cast<int>(std::floor(y / 2.0));
      ((c + m) % 2 == 0 ? inside : outside) += best / 255.0;
    }
  }
  // A uniform density would give 0.5; the data put everything inside.
  EXPECT_GT(inside / (inside + outside), 0.8) << "inside " << inside << ", outside " << outside;

  r = run("plot curves --model cb.safetensors -o curves.svg");  // metrics file from the model
  ASSERT_EQ(r.code, 0) << r.err;
  const auto texts = svg_texts(path("curves.svg"));
  EXPECT_TRUE(has_text(texts, "validation"));
  EXPECT_TRUE(has_text(texts, "step"));
  EXPECT_TRUE(has_text(texts, "NLL (nats)"));
}

TEST_F(CliTest, TrainReportIsOneSelfContainedPage) {
  Result r = run("train --data data.csv --model realnvp" + kQuick +
                 "--out m.safetensors --report report.html");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string html = read_text(path("report.html"));
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  for (const std::string part : {"Training curves", "<svg", "best validation NLL", "realnvp",
                                 "data (500 points)", "affine_coupling"}) {
    EXPECT_NE(html.find(part), std::string::npos) << part;
  }
  // Nothing is fetched: no external scripts, styles or pictures.
  for (const std::string part : {"src=\"http", "href=\"http", "<script", "<link"}) {
    EXPECT_EQ(html.find(part), std::string::npos) << part;
  }
}

/// Whether a program is on the PATH.
bool on_path(const std::string& program) {
  return std::system(("command -v " + program + " > /dev/null 2>&1").c_str()) == 0;
}

// The report in a real browser: headless Chromium renders it from disk and takes a
// screenshot, whose pictures (the viridis heat maps) must be there.
TEST_F(CliTest, ReportRendersInHeadlessChromium) {
  const std::string browser = on_path("chromium")           ? "chromium"
                              : on_path("chromium-browser") ? "chromium-browser"
                                                            : "";
  if (browser.empty()) {
    ZFLOW_REQUIRED_BUT_MISSING(
        "chromium is not installed (scripts/setup.sh installs Debian's chromium)");
  }
  use_model();
  Result r = run("report --model model.safetensors --data data.csv --out report.html");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string command =
      "cd '" + dir_.string() + "' && timeout 180 " + browser +
      " --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run "
      "--user-data-dir='" +
      (dir_ / "profile").string() + "' --window-size=1280,2400 --screenshot='" +
      (dir_ / "shot.png").string() + "' 'file://" + (dir_ / "report.html").string() +
      "' > chromium.log 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << read_text(path("chromium.log"));
  const auto shot = zflow::io::read_png(path("shot.png").string());
  EXPECT_EQ(shot.width, 1280);
  EXPECT_EQ(shot.height, 2400);
  // Count pixels close to the viridis colour map (the heat maps) and distinct colours.
  std::vector<zflow::plot::Rgb> scale;
  for (int i = 0; i < 64; ++i) scale.push_back(zflow::plot::viridis(i / 63.0));
  int64_t viridis_pixels = 0;
  std::set<uint32_t> colours;
  const int64_t stride = shot.channels;
  for (int64_t i = 0; i < shot.width * shot.height; ++i) {
    const uint8_t* p = &shot.pixels[static_cast<size_t>(i * stride)];
    const uint8_t g = stride >= 3 ? p[1] : p[0], b = stride >= 3 ? p[2] : p[0];
    colours.insert((uint32_t(p[0]) << 16) | (uint32_t(g) << 8) | b);
    for (const auto& c : scale) {
      if (std::abs(p[0] - c.r) + std::abs(g - c.g) + std::abs(b - c.b) < 12) {
        ++viridis_pixels;
        break;
      }
    }
  }
  EXPECT_GT(colours.size(), 100u) << "the screenshot looks blank";
  // Each of the 14 panels is 200 × 200 px; demand at least a few panels' worth.
  EXPECT_GT(viridis_pixels, 100000) << "the pictures did not load";
}

TEST_F(CliTest, PlotUsageErrors) {
  use_model();
  use_conditional_model();
  for (const std::string command :
       {"plot steps --model cond.safetensors", "plot samples --model model.safetensors",
        "plot curves --model model.safetensors",
        "plot density --model model.safetensors "
        "--data data.csv -o d.txt",
        "plot steps --model model.safetensors --range 1,0,0,1",
        "plot nothing --model model.safetensors", "report --model model.safetensors -o r.txt",
        "plot density --model model.safetensors"}) {
    const Result r = run(command);
    EXPECT_EQ(r.code, 2) << command << ": " << r.err;
    expect_one_error_line(r);
  }
}

TEST_F(CliTest, BenchQuickJson) {
  const Result r = run("bench --config realnvp --threads 1 --quick --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("realnvp"), std::string::npos) << "no progress on stderr: " << r.err;
  const json out = json::parse(r.out);
  EXPECT_GT(out.at("machine").at("cpus").get<int>(), 0);
  EXPECT_FALSE(out.at("machine").at("blas").get<std::string>().empty());
  const double gemm = out.at("gemm_gflops").get<double>();
  EXPECT_TRUE(std::isfinite(gemm) && gemm > 0) << gemm;
  ASSERT_EQ(out.at("results").size(), 1u);
  const json& row = out.at("results")[0];
  EXPECT_EQ(row.at("config").get<std::string>(), "realnvp");
  EXPECT_EQ(row.at("threads").get<int>(), 1);
  for (const char* field :
       {"train_steps_per_s", "step_ms", "floor_ms", "floor_multiple", "flops_per_step",
        "log_prob_samples_per_s", "sample_samples_per_s", "peak_rss_mib"}) {
    const double v = row.at(field).get<double>();
    EXPECT_TRUE(std::isfinite(v) && v > 0) << field << " = " << v;
  }
  // 8 couplings with a 4 -> 128 -> 128 -> 8 conditioner: 6 * 512 * 8 * 17920 FLOPs.
  EXPECT_DOUBLE_EQ(row.at("flops_per_step").get<double>(), 6.0 * 512 * 8 * 17920);
  // The floor is at the matrix-product rate of the row's own thread count.
  const double row_gemm = row.at("gemm_gflops").get<double>();
  EXPECT_TRUE(std::isfinite(row_gemm) && row_gemm > 0 && row_gemm <= gemm) << row_gemm;
  EXPECT_NEAR(row.at("floor_ms").get<double>(),
              row.at("flops_per_step").get<double>() / (row_gemm * 1e9) * 1e3, 1e-9);
}

TEST_F(CliTest, BenchGlowCountsEveryConvolutionAtItsSize) {
  const Result r = run("bench --config glow --threads 1 --quick --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json out = json::parse(r.out);
  const json& row = out.at("results").at(0);
  EXPECT_EQ(row.at("config").get<std::string>(), "glow");
  EXPECT_EQ(row.at("train_batch").get<int>(), 64);
  // Multiply-adds per image, counted by hand from the architecture (1x28x28, 2 levels of 8
  // steps, 64 hidden channels). Level 1 runs at 14x14 on 4 channels: the coupling's
  // conditioner 2 -> 64 (3x3), 64 -> 64 (1x1), 64 -> 2*2 (3x3), and the 4x4 1x1 convolution;
  // then the learned prior of the 2 factored-out channels, a 3x3 convolution 2 -> 4. Level 2
  // runs at 7x7 on 8 channels: 4 -> 64, 64 -> 64, 64 -> 2*4, and 8x8.
  const double level1 = 8.0 * 196 * (2 * 64 * 9 + 64 * 64 + 64 * 4 * 9 + 4 * 4) + 196 * 2 * 4 * 9;
  const double level2 = 8.0 * 49 * (4 * 64 * 9 + 64 * 64 + 64 * 8 * 9 + 8 * 8);
  // Once per batch, every 1x1 convolution forms W = L U (C^3).
  const double weights = 8.0 * (4 * 4 * 4 + 8 * 8 * 8);
  EXPECT_DOUBLE_EQ(row.at("flops_per_step").get<double>(),
                   6.0 * (64 * (level1 + level2) + weights));
  for (const char* field :
       {"train_steps_per_s", "floor_multiple", "log_prob_samples_per_s", "sample_samples_per_s"}) {
    const double v = row.at(field).get<double>();
    EXPECT_TRUE(std::isfinite(v) && v > 0) << field << " = " << v;
  }
}

// ---- non-finite results and robust summaries ------------------------------------------------

/// data.csv with `row` inserted as data row `position` (1-based).
std::string with_row(const std::string& csv, const std::string& row, size_t position) {
  std::vector<std::string> lines = lines_of(csv);
  lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(position), row);
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

/// Median, worst row (1-based) and mean without the worst ⌊N/1000⌋ of NLL values.
struct NllFigures {
  double mean = 0, median = 0, trimmed = 0, worst = 0;
  int64_t worst_row = 0, trimmed_points = 0;
};

NllFigures figures_of(const std::vector<double>& nll) {
  NllFigures f;
  std::vector<double> sorted = nll;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  f.median = 0.5 * (sorted[(n - 1) / 2] + sorted[n / 2]);
  f.worst = sorted.back();
  f.worst_row = std::max_element(nll.begin(), nll.end()) - nll.begin() + 1;
  f.trimmed_points = static_cast<int64_t>(n / 1000);
  double sum = 0;
  for (double v : sorted) sum += v;
  f.mean = sum / static_cast<double>(n);
  double kept = 0;
  for (size_t i = 0; i + static_cast<size_t>(f.trimmed_points) < n; ++i) kept += sorted[i];
  f.trimmed = kept / static_cast<double>(n - static_cast<size_t>(f.trimmed_points));
  return f;
}

TEST_F(CliTest, PerRowCommandsReportNonFiniteRows) {
  use_model();
  // 1e308 is a finite float64 but overflows the model's float32.
  write_text(path("bad.csv"), with_row(read_text(path("data.csv")), "1e308,-1e308", 7));
  Result r = run("log-prob --model model.safetensors --data bad.csv --out logp.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("zflow: warning: 1 of 501 rows of logp.csv are not finite (first: row 7)"),
            std::string::npos)
      << r.err;
  const auto logp = lines_of(read_text(path("logp.csv")));
  ASSERT_EQ(logp.size(), 502u);
  EXPECT_FALSE(std::isfinite(std::stod(logp[7]))) << logp[7];  // after the header

  r = run("encode --model model.safetensors --data bad.csv --out -");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("1 of 501 rows of the output are not finite (first: row 7)"),
            std::string::npos)
      << r.err;

  write_text(path("z.csv"), "z1,z2\n0.5,0.1\n-0.2,0.3\n1e308,0\n");
  r = run("decode --model model.safetensors --data z.csv --out x.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("1 of 3 rows of x.csv are not finite (first: row 3)"), std::string::npos)
      << r.err;

  // A temperature beyond float32's range makes every sample overflow.
  r = run("sample --model model.safetensors -n 20 --temperature 1e38 --out s.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("of 20 rows of s.csv are not finite (first: row "), std::string::npos)
      << r.err;

  // Finite results: no warning.
  for (const std::string command :
       {"log-prob --model model.safetensors --data data.csv --out logp.csv",
        "encode --model model.safetensors --data data.csv --out z.csv",
        "sample --model model.safetensors -n 20 --out s.csv"}) {
    r = run(command);
    ASSERT_EQ(r.code, 0) << command << ": " << r.err;
    EXPECT_EQ(r.err.find("warning"), std::string::npos) << command << ": " << r.err;
  }
}

TEST_F(CliTest, EvalWithANonFiniteMeanFails) {
  use_model();
  write_text(path("bad.csv"), with_row(read_text(path("data.csv")), "1e308,-1e308", 7));
  for (const std::string json : {"", " --json"}) {
    const Result r = run("eval --model model.safetensors --data bad.csv" + json);
    EXPECT_EQ(r.code, 1) << r.err;
    expect_one_error_line(r);
    for (const char* part : {"mean NLL is not finite", "1 of 501 points", "(first: row 7)"}) {
      EXPECT_NE(r.err.find(part), std::string::npos) << part << " in " << r.err;
    }
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST_F(CliTest, EvalReportsMedianWorstPointAndTrimmedMean) {
  use_model();
  write_gaussian_csv(path("test.csv"), 3000, /*seed=*/8);
  Result r = run("log-prob --model model.safetensors --data test.csv --out logp.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<double> nll;
  for (const auto& row : read_csv(path("logp.csv")).rows) nll.push_back(-row.at(0));
  const NllFigures expected = figures_of(nll);
  ASSERT_EQ(expected.trimmed_points, 3);

  r = run("eval --model model.safetensors --data test.csv --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json out = json::parse(r.out);
  EXPECT_NEAR(out.at("nll").get<double>(), expected.mean, 1e-4);
  EXPECT_NEAR(out.at("nll_median").get<double>(), expected.median, 1e-4);
  EXPECT_NEAR(out.at("nll_trimmed").get<double>(), expected.trimmed, 1e-4);
  EXPECT_NEAR(out.at("worst_nll").get<double>(), expected.worst, 1e-4);
  EXPECT_EQ(out.at("worst_row").get<int64_t>(), expected.worst_row);
  EXPECT_EQ(out.at("trimmed_points").get<int64_t>(), 3);
  EXPECT_LT(out.at("nll_trimmed").get<double>(), out.at("nll").get<double>());
  // A model of these Gaussian data: no handful of points carries its mean.
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;

  r = run("eval --model model.safetensors --data test.csv");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const std::string& part : std::vector<std::string>{
           "median ", "trimmed mean ", "(worst 0.1%, 3 points, left out)",
           "worst point: row " + std::to_string(expected.worst_row) + " at "}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << " in " << r.out;
  }
}

TEST_F(CliTest, EvalWarnsWhenAHandfulOfPointsCarryTheMean) {
  use_model();
  // Two points 1000 standard deviations out among 2000.
  write_gaussian_csv(path("test.csv"), 2000, /*seed=*/9);
  std::string csv = with_row(read_text(path("test.csv")), "2003,-1", 1500);
  csv = with_row(csv, "3,499", 10);
  write_text(path("test.csv"), csv);
  const Result r = run("eval --model model.safetensors --data test.csv --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json out = json::parse(r.out);
  EXPECT_EQ(out.at("trimmed_points").get<int64_t>(), 2);
  EXPECT_GT(out.at("nll").get<double>() - out.at("nll_trimmed").get<double>(), 0.1);
  for (const char* part :
       {"zflow: warning: the worst 0.1% of the points (2 of 2002) carry the mean",
        "worst point: row "}) {
    EXPECT_NE(r.err.find(part), std::string::npos) << part << " in " << r.err;
  }
}

TEST_F(CliTest, CsvFirstRowOfTextAndNumbersAndDuplicateNames) {
  use_model();
  write_text(path("typo.csv"), "1.O,2.5\n3,4\n5,6\n");
  Result r = run("log-prob --model model.safetensors --data typo.csv");
  EXPECT_EQ(r.code, 1) << r.err;
  expect_one_error_line(r);
  for (const char* part : {"typo.csv, line 1", "\"1.O\"", "--header yes", "--header no"}) {
    EXPECT_NE(r.err.find(part), std::string::npos) << part << " in " << r.err;
  }
  r = run("log-prob --model model.safetensors --data typo.csv --header no");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("\"1.O\" is not a number"), std::string::npos) << r.err;

  write_text(path("dup.csv"), "a,b,a\n1,2,3\n4,5,6\n7,8,9\n");
  const std::string before = read_text(path("dup.csv"));
  r = run("train --data dup.csv --columns a,b" + kQuick + "--out m.safetensors");
  EXPECT_EQ(r.code, 2) << r.err;
  expect_one_error_line(r);
  for (const char* part : {"2 columns named 'a'", "indices 0 and 2"}) {
    EXPECT_NE(r.err.find(part), std::string::npos) << part << " in " << r.err;
  }
  EXPECT_FALSE(fs::exists(path("m.safetensors")));
  // By index it works.
  r = run("log-prob --model model.safetensors --data dup.csv --columns 2,1");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_text(path("dup.csv")), before);

  // A conditional model finds its columns by their stored names (c, x1, x2): a second c is
  // an error too.
  use_conditional_model();
  const auto rows = lines_of(read_text(path("cond.csv")));
  std::string twice = rows[0] + ",c\n";
  for (size_t i = 1; i < rows.size(); ++i) twice += rows[i] + ",0\n";
  write_text(path("twice.csv"), twice);
  r = run("log-prob --model cond.safetensors --data twice.csv");
  EXPECT_EQ(r.code, 2) << r.err;
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("twice.csv: the header has 2 columns named 'c' (indices 0 and 3)"),
            std::string::npos)
      << r.err;
}

}  // namespace
