// zflow bench: end-to-end speed of the reference configurations (training steps, density
// evaluation, sampling, peak memory) against the matrix-product floor (docs/benchmarks.md).

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/optim/adam.h>
#include <torch/version.h>

#include "blas_kernels.h"
#include "common.h"
#include "mac_count.h"
#include "zflow/core/error.h"
#include "zflow/core/kernels.h"
#include "zflow/core/threads.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/registry.h"
#include "zflow/train/flat_adam.h"
#include "zflow/train/progress.h"

namespace zflow::cli {

namespace {

constexpr int64_t kFeatures = 8;
constexpr int64_t kTrainBatch = 512;
constexpr int64_t kEvalBatch = 10000;
constexpr int64_t kGemmSize = 1024;
// The image configuration: Fashion-MNIST's shape and the batch of its benchmark
// (docs/benchmarks.md, "Images: Glow on Fashion-MNIST").
constexpr int64_t kImageTrainBatch = 64;
constexpr int64_t kImageEvalBatch = 1000;
constexpr double kLearningRate = 1e-3;

struct BenchArgs {
  std::string config = "all";
  /// fused, reference (plain LibTorch: autograd conditioners, element-wise ops, Adam) or both.
  std::string kernels = "fused";
  std::vector<int> threads{1, 2};
  bool json = false;
  bool quick = false;
};

/// How long each measurement runs: time repetitions until `seconds` have passed and at
/// least `min_reps` were done, after `warmup` untimed ones.
struct Budget {
  int warmup;
  int min_reps;
  double seconds;
};

std::vector<int64_t> half_mask(bool first) {
  std::vector<int64_t> mask(kFeatures, 0);
  for (int64_t i = 0; i < kFeatures / 2; ++i) mask[static_cast<size_t>(first ? i : i + 4)] = 1;
  return mask;
}

Json mlp_conditioner() {
  return {{"type", "mlp"}, {"hidden", 128}, {"layers", 2}, {"activation", "relu"}};
}

/// The flow spec of a reference configuration (issue "Speed", docs/benchmarks.md).
Json reference_spec(const std::string& name) {
  Json layers = Json::array();
  if (name == "maf") {
    for (int i = 0; i < 5; ++i) {
      layers.push_back({{"type", "masked_affine_autoregressive"},
                        {"features", kFeatures},
                        {"made",
                         {{"type", "made"},
                          {"hidden", {128, 128}},
                          {"activation", "relu"},
                          {"residual", false}}}});
      if (i + 1 < 5) {
        layers.push_back({{"type", "permutation"}, {"features", kFeatures}, {"kind", "reverse"}});
      }
    }
  } else if (name == "realnvp") {
    for (int i = 0; i < 8; ++i) {
      layers.push_back({{"type", "affine_coupling"},
                        {"mask", half_mask(i % 2 == 0)},
                        {"conditioner", mlp_conditioner()}});
    }
  } else if (name == "nsf") {
    for (int i = 0; i < 4; ++i) {
      layers.push_back({{"type", "spline_coupling"},
                        {"mask", half_mask(i % 2 == 0)},
                        {"conditioner", mlp_conditioner()},
                        {"bins", 8},
                        {"tail_bound", 3.0}});
    }
  } else if (name == "glow") {
    // The Fashion-MNIST benchmark's Glow: 2 levels of 8 steps, 64 hidden channels.
    BuilderOptions o;
    o.levels = 2;
    o.steps_per_level = 8;
    o.hidden = 64;
    return build_image_flow_spec("glow", {1, 28, 28}, o);
  } else {
    throw ConfigError("unknown benchmark configuration '" + name +
                      "' (choose maf, realnvp, nsf, glow)");
  }
  return {{"type", "flow"},
          {"transform", {{"type", "composite"}, {"layers", layers}}},
          {"base", {{"type", "standard_normal"}, {"shape", {kFeatures}}}}};
}

/// The data and batch sizes of a configuration.
struct Workload {
  /// Rows to train on (cycled through) and to evaluate in one batch.
  at::Tensor data;
  int64_t train_batch = kTrainBatch;
};

Workload make_workload(const std::string& name) {
  if (name == "glow") {
    // 8-bit pixel values, as the image models take them; the speed does not depend on them.
    return {at::randint(0, 256, {kImageEvalBatch, 1, 28, 28}, at::kFloat), kImageTrainBatch};
  }
  // Random N(0, I) rows: the speed does not depend on the data.
  return {at::randn({kEvalBatch, kFeatures}, at::kFloat), kTrainBatch};
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Seconds per call of `fn`, timed as `budget` says: the median of the calls' times, so that
/// a call slowed down by another process on a shared machine does not move the result.
double time_per_call(const std::function<void()>& fn, const Budget& budget) {
  for (int i = 0; i < budget.warmup; ++i) fn();
  const auto start = std::chrono::steady_clock::now();
  std::vector<double> times;
  do {
    const auto call_start = std::chrono::steady_clock::now();
    fn();
    times.push_back(seconds_since(call_start));
  } while (static_cast<int>(times.size()) < budget.min_reps ||
           seconds_since(start) < budget.seconds);
  const auto middle = times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2);
  std::nth_element(times.begin(), middle, times.end());
  return *middle;
}

/// Peak resident set size of this process so far, in MiB.
double peak_rss_mib() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux: KiB
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(colon + 1);
        name.erase(0, name.find_first_not_of(" \t"));
        return name;
      }
    }
  }
  return "unknown";
}

/// The achievable matrix-product rate.
struct GemmRate {
  int threads = 1;
  /// Plain at::mm: a single BLAS call (set_threads keeps OpenBLAS's own pool at one thread).
  double plain_gflops = 0;
  /// The output's rows split over LibTorch's thread pool, one at::mm per block.
  double split_gflops = 0;
  double best() const { return std::max(plain_gflops, split_gflops); }
};

GemmRate measure_gemm(int threads, const Budget& budget) {
  zflow::set_threads(threads);
  const int64_t n = kGemmSize;
  const at::Tensor a = at::randn({n, n}, at::kFloat);
  const at::Tensor b = at::randn({n, n}, at::kFloat);
  at::Tensor c = at::empty({n, n}, at::kFloat);
  const double flops =
      2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  GemmRate rate;
  rate.threads = threads;
  const double plain = time_per_call([&] { at::mm_out(c, a, b); }, budget);
  rate.plain_gflops = flops / plain / 1e9;
  const int64_t grain = (n + threads - 1) / threads;
  const double split = time_per_call(
      [&] {
        at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
          at::Tensor rows = c.narrow(0, begin, end - begin);
          at::mm_out(rows, a.narrow(0, begin, end - begin), b);
        });
      },
      budget);
  rate.split_gflops = flops / split / 1e9;
  return rate;
}

struct Result {
  std::string config;
  bool fused = true;
  int threads = 1;
  int64_t parameters = 0;
  int64_t train_batch = 0;
  int64_t eval_batch = 0;
  double flops_per_step = 0;
  double step_s = 0;
  double forward_s = 0;
  double backward_s = 0;
  double optimizer_s = 0;
  double final_loss = 0;
  double log_prob_per_s = 0;
  double sample_per_s = 0;
  double peak_mib = 0;
};

/// The training step's optimizer: zflow's flat-buffer Adam, or LibTorch's per-tensor Adam
/// for the reference measurements.
std::unique_ptr<torch::optim::Optimizer> make_adam(FlowImpl& flow, bool fused) {
  if (!fused) {
    return std::make_unique<torch::optim::Adam>(flow.parameters(),
                                                torch::optim::AdamOptions(kLearningRate));
  }
  train::FlatAdamOptions adam;
  adam.lr = kLearningRate;
  return std::make_unique<train::FlatAdam>(flow.parameters(), adam);
}

/// Times training steps of `flow` on batches of `w`, filling the step's fields of `r`.
void time_training(FlowImpl& flow, torch::optim::Optimizer& optimizer, const Workload& w,
                   const Budget& budget, Result& r) {
  const int64_t rows = w.data.size(0);
  int64_t offset = 0;
  double loss_value = 0;
  // Where the step's time goes: forward (log_prob and loss), backward, optimizer (with
  // zero_grad), summed over the timed and warm-up steps alike.
  double forward_s = 0, backward_s = 0, optimizer_s = 0;
  int64_t steps = 0;
  r.step_s = time_per_call(
      [&] {
        if (offset + w.train_batch > rows) offset = 0;
        const at::Tensor batch = w.data.narrow(0, offset, w.train_batch);
        offset += w.train_batch;
        const auto t0 = std::chrono::steady_clock::now();
        at::Tensor loss = -flow.log_prob(batch).mean();
        const auto t1 = std::chrono::steady_clock::now();
        loss.backward();
        const auto t2 = std::chrono::steady_clock::now();
        optimizer.step();
        optimizer.zero_grad();
        const auto t3 = std::chrono::steady_clock::now();
        loss_value = loss.item<double>();
        forward_s += std::chrono::duration<double>(t1 - t0).count();
        backward_s += std::chrono::duration<double>(t2 - t1).count();
        optimizer_s += std::chrono::duration<double>(t3 - t2).count();
        ++steps;
      },
      budget);
  r.forward_s = forward_s / static_cast<double>(steps);
  r.backward_s = backward_s / static_cast<double>(steps);
  r.optimizer_s = optimizer_s / static_cast<double>(steps);
  if (!std::isfinite(loss_value)) {
    throw Error("bench: " + r.config + " training gave a non-finite loss");
  }
  r.final_loss = loss_value;
}

Result run_config(const std::string& name, int threads, bool fused, const BenchArgs& a) {
  zflow::set_threads(threads);
  zflow::use_fused_kernels(fused);
  seed_torch(0);
  const FlowPtr flow = make_flow(reference_spec(name));
  flow->train();
  const auto optimizer = make_adam(*flow, fused);
  const Workload w = make_workload(name);
  const int64_t eval_rows = w.data.size(0);

  Result r;
  r.config = name;
  r.fused = fused;
  r.threads = threads;
  r.parameters = count_parameters(*flow);
  r.train_batch = w.train_batch;
  r.eval_batch = eval_rows;
  // The floor's arithmetic: the multiply-adds of one training forward pass as LibTorch runs
  // it (every matrix product and convolution at its own size), 2 FLOPs each forward and 4
  // backward (the gradients of both operands).
  const at::Tensor first = w.data.narrow(0, 0, w.train_batch);
  const int64_t macs = count_macs([&] { (void)flow->log_prob(first); });
  r.flops_per_step = 6.0 * static_cast<double>(macs);

  const std::string label = "bench: " + name + (fused ? "" : " (reference kernels)") + ", " +
                            std::to_string(threads) + " thread" + (threads == 1 ? "" : "s") + ": ";
  std::cerr << label << "training steps" << std::endl;
  time_training(*flow, *optimizer, w, a.quick ? Budget{2, 3, 0.3} : Budget{5, 10, 2.0}, r);

  flow->eval();
  const Budget eval_budget = a.quick ? Budget{1, 1, 0.2} : Budget{1, 3, 1.0};
  {
    // Inference mode: no autograd recording and no version-counter or view bookkeeping.
    c10::InferenceMode inference;
    std::cerr << label << "log_prob" << std::endl;
    const double lp = time_per_call([&] { (void)flow->log_prob(w.data); }, eval_budget);
    r.log_prob_per_s = static_cast<double>(eval_rows) / lp;
    std::cerr << label << "sampling" << std::endl;
    const double s = time_per_call([&] { (void)flow->sample(eval_rows); }, eval_budget);
    r.sample_per_s = static_cast<double>(eval_rows) / s;
  }
  r.peak_mib = peak_rss_mib();
  return r;
}

/// Index in `results` of the fastest training step of `config` (fused kernels when measured,
/// else the reference's).
size_t fastest(const std::vector<Result>& results, const std::string& config) {
  bool any_fused = false;
  for (const Result& r : results) any_fused = any_fused || (r.config == config && r.fused);
  size_t best = results.size();
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].config != config || results[i].fused != any_fused) continue;
    if (best == results.size() || results[i].step_s < results[best].step_s) best = i;
  }
  return best;
}

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

/// 1234567 -> "1,234,567".
std::string grouped(double value) {
  std::string digits = fixed(value, 0);
  std::string out;
  const size_t n = digits.size();
  for (size_t i = 0; i < n; ++i) {
    out += digits[i];
    if (i + 1 < n && (n - i - 1) % 3 == 0 && digits[i] != '-') out += ',';
  }
  return out;
}

/// What a bench run measured, for the JSON and the Markdown reports.
struct BenchReport {
  std::vector<std::string> configs;
  std::vector<Result> results;
  /// The matrix-product rate at each thread count measured.
  std::vector<GemmRate> gemm;
  int cpus = 1;
  std::string blas;
  const GemmRate& gemm_at(int threads) const {
    for (const GemmRate& g : gemm) {
      if (g.threads == threads) return g;
    }
    throw Error("bench: no matrix-product rate for " + std::to_string(threads) + " threads");
  }
  /// The step's floor: its FLOPs at the matrix-product rate of its own thread count.
  double floor_s(const Result& r) const {
    return r.flops_per_step / (gemm_at(r.threads).best() * 1e9);
  }
};

void print_bench_json(const BenchArgs& a, const BenchReport& b) {
  const auto& results = b.results;
  const auto& gemm = b.gemm;
  const int cpus = b.cpus;
  const std::string& blas = b.blas;
  auto floor_s = [&b](const Result& r) { return b.floor_s(r); };
  Json gemm_rows = Json::array();
  double best_gflops = 0;
  for (const GemmRate& g : gemm) {
    gemm_rows.push_back({{"size", kGemmSize},
                         {"threads", g.threads},
                         {"gflops", g.best()},
                         {"plain_mm_gflops", g.plain_gflops},
                         {"row_split_gflops", g.split_gflops}});
    best_gflops = std::max(best_gflops, g.best());
  }
  Json rows = Json::array();
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    rows.push_back({{"config", r.config},
                    {"kernels", r.fused ? "fused" : "reference"},
                    {"threads", r.threads},
                    {"parameters", r.parameters},
                    {"train_batch", r.train_batch},
                    {"eval_batch", r.eval_batch},
                    {"flops_per_step", r.flops_per_step},
                    {"train_steps_per_s", 1.0 / r.step_s},
                    {"step_ms", r.step_s * 1e3},
                    {"forward_ms", r.forward_s * 1e3},
                    {"backward_ms", r.backward_s * 1e3},
                    {"optimizer_ms", r.optimizer_s * 1e3},
                    {"gemm_gflops", b.gemm_at(r.threads).best()},
                    {"floor_ms", floor_s(r) * 1e3},
                    {"floor_multiple", r.step_s / floor_s(r)},
                    {"fastest", fastest(results, r.config) == i},
                    {"final_loss", r.final_loss},
                    {"log_prob_samples_per_s", r.log_prob_per_s},
                    {"sample_samples_per_s", r.sample_per_s},
                    {"peak_rss_mib", r.peak_mib}});
  }
  Json out = {{"machine",
               {{"cpus", cpus},
                {"cpu_model", cpu_model()},
                {"blas", blas},
                {"torch_version", TORCH_VERSION}}},
              {"gemm_gflops", best_gflops},
              {"gemm", gemm_rows},
              {"quick", a.quick},
              {"results", rows}};
  std::cout << out.dump(2) << std::endl;
}

void print_bench_tables(const BenchReport& b) {
  const auto& results = b.results;
  const auto& gemm = b.gemm;
  auto floor_s = [&b](const Result& r) { return b.floor_s(r); };
  std::cout << "Machine: " << cpu_model() << ", " << b.cpus << " CPUs, torch " << TORCH_VERSION
            << ", " << b.blas << "\n";
  for (const GemmRate& g : gemm) {
    std::cout << "Matrix-product rate (" << kGemmSize << "^3 float32, " << g.threads << " thread"
              << (g.threads == 1 ? "" : "s") << "): " << fixed(g.best(), 1)
              << " GFLOP/s (plain at::mm " << fixed(g.plain_gflops, 1)
              << ", rows split over the threads " << fixed(g.split_gflops, 1) << ")\n";
  }
  std::cout << "\n";
  std::cout << "| config | kernels | threads | train steps/s | step ms | floor ms | × floor | "
               "log_prob samples/s | sample samples/s | peak MiB |\n"
            << "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const Result& r : results) {
    std::cout << "| " << r.config << " | " << (r.fused ? "fused" : "reference") << " | "
              << r.threads << " | " << fixed(1.0 / r.step_s, 1) << " | " << fixed(r.step_s * 1e3, 2)
              << " | " << fixed(floor_s(r) * 1e3, 2) << " | " << fixed(r.step_s / floor_s(r), 1)
              << " | " << grouped(r.log_prob_per_s) << " | " << grouped(r.sample_per_s) << " | "
              << fixed(r.peak_mib, 0) << " |\n";
  }
  std::cout << "\nWhere a training step's time goes (ms):\n\n"
            << "| config | kernels | threads | forward | backward | optimizer |\n"
            << "|---|---|---:|---:|---:|---:|\n";
  for (const Result& r : results) {
    std::cout << "| " << r.config << " | " << (r.fused ? "fused" : "reference") << " | "
              << r.threads << " | " << fixed(r.forward_s * 1e3, 2) << " | "
              << fixed(r.backward_s * 1e3, 2) << " | " << fixed(r.optimizer_s * 1e3, 2) << " |\n";
  }
}

void print_bench_summary(const BenchReport& b) {
  const auto& results = b.results;
  auto floor_s = [&b](const Result& r) { return b.floor_s(r); };
  std::cout << "\n";
  for (const auto& config : b.configs) {
    const Result& r = results[fastest(results, config)];
    std::cout << config << ": fastest with " << r.threads << " thread"
              << (r.threads == 1 ? "" : "s") << ", " << fixed(r.step_s * 1e3, 2)
              << " ms per step = " << fixed(r.step_s / floor_s(r), 1) << " × the floor of "
              << fixed(floor_s(r) * 1e3, 2) << " ms (" << fixed(r.flops_per_step / 1e6, 1)
              << " MFLOP per step)\n";
  }
  // Fused against reference at the same thread count.
  for (const Result& f : results) {
    if (!f.fused) continue;
    for (const Result& r : results) {
      if (r.fused || r.config != f.config || r.threads != f.threads) continue;
      std::cout << f.config << ", " << f.threads << " thread" << (f.threads == 1 ? "" : "s")
                << ": the fused kernels are " << fixed(r.step_s / f.step_s, 2)
                << "× as fast as the reference in training, "
                << fixed(f.log_prob_per_s / r.log_prob_per_s, 2) << "× in log_prob, "
                << fixed(f.sample_per_s / r.sample_per_s, 2) << "× in sampling\n";
    }
  }
  std::cout.flush();
}

void run_bench(const BenchArgs& a) {
  BenchReport b;
  b.configs = a.config == "all" ? std::vector<std::string>{"maf", "realnvp", "nsf", "glow"}
                                : std::vector<std::string>{a.config};
  b.cpus = train::available_cpus();
  b.blas = active_blas();

  std::vector<int> thread_counts;  // as given, without repeats
  for (int t : a.threads) {
    if (std::find(thread_counts.begin(), thread_counts.end(), t) == thread_counts.end()) {
      thread_counts.push_back(t);
    }
  }
  const Budget gemm_budget = a.quick ? Budget{1, 3, 0.2} : Budget{2, 5, 1.0};
  for (int threads : thread_counts) {
    std::cerr << "bench: " << kGemmSize << "^3 float32 matrix product on " << threads << " thread"
              << (threads == 1 ? "" : "s") << std::endl;
    b.gemm.push_back(measure_gemm(threads, gemm_budget));
  }
  std::vector<bool> kernel_choices;
  if (a.kernels != "reference") kernel_choices.push_back(true);
  if (a.kernels != "fused") kernel_choices.push_back(false);
  for (const auto& config : b.configs) {
    for (bool fused : kernel_choices) {
      for (int threads : thread_counts) b.results.push_back(run_config(config, threads, fused, a));
    }
  }
  zflow::use_fused_kernels(true);
  if (a.json) {
    print_bench_json(a, b);
    return;
  }
  print_bench_tables(b);
  print_bench_summary(b);
}

}  // namespace

void add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub =
      app.add_subcommand("bench",
                         "Speed of the reference flows (train, log_prob, sample) against the "
                         "matrix-product floor");
  set_example(sub,
              "zflow bench\n"
              "  zflow bench --config nsf --threads 1,2 --json > nsf.json");
  sub->add_option("--config", a->config,
                  "Reference configuration: maf, realnvp, nsf (8 features, batches of 512), glow "
                  "(Fashion-MNIST's 1x28x28 images, 2 levels of 8 steps, 64 hidden channels, "
                  "batches of 64) or all")
      ->check(CLI::IsMember({"maf", "realnvp", "nsf", "glow", "all"}))
      ->capture_default_str();
  sub->add_option("--threads", a->threads,
                  "Thread counts to measure, repeatable or a list like 1,2 (default: 1 and 2)")
      ->delimiter(',')
      ->check(positive());
  sub->add_option("--kernels", a->kernels,
                  "fused (zflow's kernels), reference (plain LibTorch: autograd conditioners, "
                  "element-wise operations, torch::optim::Adam) or both, to compare in one run")
      ->check(CLI::IsMember({"fused", "reference", "both"}))
      ->capture_default_str();
  sub->add_flag("--json", a->json, "Print JSON instead of a table");
  sub->add_flag("--quick", a->quick, "Shorter timings (a smoke test; the numbers are noisier)");
  sub->callback([a] { run_bench(*a); });
}

}  // namespace zflow::cli
