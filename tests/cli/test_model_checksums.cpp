// Behaviour pinned across refactors: `zflow train` with a fixed seed writes, for every
// ready-made model, exactly the tensors (names, dtypes, shapes and bytes) it wrote when the
// checksums below were recorded.
// The learning rate is given because its default changed after the recording (the
// defaults were chosen by measurement; docs/benchmarks.md). A change that alters the
// initialisation, the minibatch order, a layer's arithmetic or a parameter's name fails here; one
// that means to must say so and record new checksums:
//
//     ZFLOW_RECORD_CHECKSUMS=1 build/tests/zflow_test_cli --gtest_filter='ModelChecksums.*'
//
// prints the table to paste. The metadata (the model card) is not hashed: it may grow.

#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "support/png_folder.h"
#include "support/temp_dir.h"
#include "zflow/io/image.h"
#include "zflow/io/safetensors.h"

namespace {

namespace fs = std::filesystem;

/// FNV-1a, 64 bits, over `size` bytes, continuing from `hash`.
uint64_t fnv1a(const void* data, size_t size, uint64_t hash) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

/// One hash of every tensor of a safetensors file: name, dtype, shape and bytes, by name.
std::string tensor_checksum(const std::string& path) {
  zflow::io::TensorFile file = zflow::io::load_safetensors(path);
  std::sort(file.tensors.begin(), file.tensors.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (const auto& [name, tensor] : file.tensors) {
    hash = fnv1a(name.data(), name.size() + 1, hash);
    const std::string dtype = std::string(c10::toString(tensor.scalar_type()));
    hash = fnv1a(dtype.data(), dtype.size() + 1, hash);
    for (int64_t s : tensor.sizes()) hash = fnv1a(&s, sizeof(s), hash);
    const at::Tensor dense = tensor.contiguous();
    hash = fnv1a(dense.data_ptr(), static_cast<size_t>(dense.nbytes()), hash);
  }
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

class ModelChecksums : public zflow::testing::TempDirTest {
 protected:
  ModelChecksums() : TempDirTest("zflow_checksums") {}

  /// Runs `zflow ARGS` in the test's folder; the exit code. The arithmetic is pinned to
  /// kernels every x86-64 CPU with AVX2 runs alike: the rounding of OpenBLAS's products,
  /// ATen's vectorised element-wise functions and oneDNN's convolutions depends on the
  /// kernels each picks for the CPU (zflow itself asks OpenBLAS for the CPU's best ones,
  /// blas_kernels.h), and the checksums pin zflow's arithmetic, not the CPU's.
  int zflow(const std::string& args) const {
    const std::string command =
        "cd '" + dir_.string() +
        "' && OPENBLAS_CORETYPE=Prescott ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 "
        "DNNL_MAX_CPU_ISA=AVX2 '" ZFLOW_BINARY "' " +
        args + " > out.txt 2> err.txt";
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

// Recorded with the zflow of issue 13, whose minibatches are epochs of a seeded permutation
// (train/batch_order.h) instead of draws with replacement, and whose ActNorm layers are
// initialised on the whole first batch before the first step: every model's tensors moved.
// Before that, the table was recorded at commit 59f725a (before issue 12's refactor) and
// held across it.
// The two image models' were recorded anew with issue 16's conv conditioner (one node with
// channels-last convolutions) and 1×1 convolution (one product with W formed once), which
// round differently; the tabular models' held.
const std::map<std::string, std::string> kRecorded = {
    {"conditional-maf", "f10034d1f87ede1e"},
    {"conditional-realnvp-embedding", "89ce10f3a5430865"},
    {"float64-realnvp", "aa6a661e8f058413"},
    {"glow", "f26affd230e75769"},
    {"glow-image", "49828fb6e3067fd3"},
    {"iaf", "aaabaa1743bfc289"},
    {"maf", "0225193e34b5d0ed"},
    {"nice", "7045df093ebb8fea"},
    {"nsf-autoregressive", "9b51babed5892298"},
    {"nsf-coupling", "1c7d845cddad8a7f"},
    {"realnvp", "d2d8da31d2fadd25"},
    {"realnvp-image", "5b22c6f0ac271954"},
};

TEST_F(ModelChecksums, EveryReadyMadeModelTrainsToTheRecordedTensors) {
  const bool record = std::getenv("ZFLOW_RECORD_CHECKSUMS") != nullptr;
  zflow::testing::write_png_folder(path("pngs"), 32);
  std::mt19937 rng(11);
  std::normal_distribution<double> normal;
  std::string csv = "x,y,c\n";
  for (int i = 0; i < 400; ++i) {
    const double c = normal(rng), x = normal(rng) + c;
    csv += std::to_string(x) + "," + std::to_string(x * c + 0.3 * normal(rng)) + "," +
           std::to_string(c) + "\n";
  }
  write_text("data.csv", csv);
  // Small but complete runs: validation, a best checkpoint, the cosine schedule, clipping.
  const std::string tabular =
      " --data moons --n 600 --layers 2 --hidden 16 --depth 2 --steps 30 --batch-size 64 "
      "--eval-every 10 --seed 7 --lr 1e-3 --threads 1 --quiet";
  const std::string images =
      " --data pngs --hidden 8 --levels 2 --steps-per-level 2 --steps 12 --batch-size 8 "
      "--eval-every 6 --seed 7 --lr 1e-3 --threads 1 --quiet";
  const std::map<std::string, std::string> runs = {
      {"realnvp", "--model realnvp" + tabular},
      {"nice", "--model nice" + tabular},
      {"glow", "--model glow" + tabular},
      {"maf", "--model maf" + tabular},
      {"iaf", "--model iaf" + tabular},
      {"nsf-coupling", "--model nsf-coupling --bins 5 --tail-bound 4" + tabular},
      {"nsf-autoregressive", "--model nsf-autoregressive --bins 5 --tail-bound 4" + tabular},
      {"conditional-maf",
       "--model maf --data data.csv --context-columns c --layers 2 --hidden 16 --steps 30 "
       "--batch-size 64 --eval-every 10 --seed 7 --lr 1e-3 --threads 1 --quiet"},
      {"conditional-realnvp-embedding",
       "--model realnvp --data data.csv --context-columns c --embedding 3 --layers 2 --hidden 16 "
       "--steps 30 --batch-size 64 --eval-every 10 --seed 7 --lr 1e-3 --threads 1 --quiet"},
      {"glow-image", "--model glow" + images},
      {"realnvp-image", "--model realnvp-image" + images},
      {"float64-realnvp", "--model realnvp --dtype float64" + tabular}};
  std::string table;
  for (const auto& [name, args] : runs) {
    SCOPED_TRACE(name);
    const std::string out = name + ".safetensors";
    ASSERT_EQ(zflow("train " + args + " --out " + out), 0) << read_bytes(path("err.txt"));
    const std::string sum = tensor_checksum(path(out));
    table += "    {\"" + name + "\", \"" + sum + "\"},\n";
    if (record) continue;
    ASSERT_TRUE(kRecorded.count(name)) << "no recorded checksum for " << name;
    EXPECT_EQ(sum, kRecorded.at(name)) << "zflow train --model " << args;
  }
  if (record) std::printf("%s", table.c_str());
}

}  // namespace
