// Entry point of zflow_micro_bench: Google Benchmark's own flags plus two of ours, parsed
// and removed before benchmark::Initialize sees the command line.
//   --zflow_threads=N       LibTorch intra-op threads (default 1; BLAS stays at 1)
//   --zflow_system_malloc   keep glibc's default of returning large freed blocks to the
//                           kernel (by default the process keeps them, as the zflow CLI
//                           does, so that the timings measure arithmetic, not page faults)

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <benchmark/benchmark.h>

#include "zflow/core/threads.h"

int main(int argc, char** argv) {
  int threads = 1;
  bool system_malloc = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (std::strncmp(arg, "--zflow_threads=", 16) == 0) {
      threads = std::atoi(arg + 16);
      if (threads < 1) {
        std::fprintf(stderr, "zflow_micro_bench: --zflow_threads needs a positive number\n");
        return 2;
      }
    } else if (std::strcmp(arg, "--zflow_system_malloc") == 0) {
      system_malloc = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;

#ifdef __GLIBC__
  if (!system_malloc) {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
  }
#endif
  zflow::set_threads(threads);

  benchmark::AddCustomContext("zflow_threads", std::to_string(threads));
  benchmark::AddCustomContext("zflow_malloc", system_malloc ? "system" : "keep_freed");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
