#include "blas_kernels.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>

namespace zflow::cli {

namespace {

/// Set in the restarted process, so that it never restarts again.
constexpr const char* kRestarted = "ZFLOW_BLAS_KERNELS_SELECTED";

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

/// The OpenBLAS kernels this CPU runs best, or nullptr when OpenBLAS's choice cannot be
/// bettered by naming one.
const char* supported_kernels() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

}  // namespace

std::string openblas_kernels() {
  using CoreName = char* (*)();
  auto core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (core_name == nullptr) return "";
  const char* name = core_name();
  return name == nullptr ? "" : name;
}

void select_blas_kernels(char** argv) {
  // The user's choice, even an empty one, and a process that was restarted already stay.
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv(kRestarted) != nullptr) return;
  // Prescott is OpenBLAS's fallback for a CPU it does not recognise.
  if (lower(openblas_kernels()) != "prescott") return;
  const char* kernels = supported_kernels();
  if (kernels == nullptr) return;
  if (setenv("OPENBLAS_CORETYPE", kernels, 1) != 0 || setenv(kRestarted, "1", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: the restart failed; go on with the generic kernels.
  unsetenv("OPENBLAS_CORETYPE");
}

}  // namespace zflow::cli
