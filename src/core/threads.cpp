#include "zflow/core/threads.h"

#include <dlfcn.h>

#include <ATen/Parallel.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

// OpenBLAS exports openblas_set_num_threads (goto_set_num_threads in old builds); other
// BLAS libraries have neither, and then there is no pool to tame.
void limit_blas_threads_to_one() {
  using SetThreads = void (*)(int);
  for (const char* name : {"openblas_set_num_threads", "goto_set_num_threads"}) {
    if (void* symbol = dlsym(RTLD_DEFAULT, name)) {
      reinterpret_cast<SetThreads>(symbol)(1);
      return;
    }
  }
}

}  // namespace

void set_threads(int n) {
  if (n < 1)
    throw ConfigError("the number of threads must be at least 1, got " + std::to_string(n));
  at::set_num_threads(n);
  limit_blas_threads_to_one();
}

int threads() { return at::get_num_threads(); }

}  // namespace zflow
