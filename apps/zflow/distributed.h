#pragma once
// zflow train across processes: the options, the local launcher of `--nproc`, and joining
// a run that torchrun, MPI or Slurm started (docs/distributed.md).

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "zflow/core/error.h"
#include "zflow/distributed/launch.h"
#include "zflow/distributed/process_group.h"

namespace zflow::cli {

struct DistributedArgs {
  /// Local worker processes to start (0: none; this process trains, or joins the run its
  /// launcher started).
  int nproc = 0;
  std::string master;
  std::string backend = "auto";
  double timeout = 300;
  int buckets = 1;
};

void add_distributed_options(CLI::App* sub, DistributedArgs* args);

/// The command line of this process (main records it), for `--nproc` to start workers
/// with the same arguments.
void set_program_arguments(int argc, char** argv);

/// Whether this process should start `--nproc` workers rather than train itself.
bool should_launch_workers(const DistributedArgs& args);

/// Starts args.nproc copies of this command as ranks 0..N-1 on this machine, forwards
/// SIGINT/SIGTERM to them, waits for all, and returns the exit code: rank 0's when it
/// failed, otherwise the first failure's (a worker killed by a signal: 1, with a line
/// naming it).
int run_local_workers(const DistributedArgs& args);

/// Workers of `--nproc` failed; they printed why. main exits with `code`.
class WorkersFailed : public Error {
 public:
  explicit WorkersFailed(int code) : Error("worker processes failed"), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

/// This process's place in the run and, when it is one of several, the connected process
/// group (nullptr in a single process).
struct DistributedRun {
  distributed::LaunchInfo launch;
  std::shared_ptr<distributed::ProcessGroupSync> sync;
  bool leader() const { return launch.rank == 0; }
};

/// Connects to the other processes of `launch` (detect_launch with args.master).
DistributedRun join_distributed_run(const DistributedArgs& args,
                                    const distributed::LaunchInfo& launch,
                                    const std::string& device);

}  // namespace zflow::cli
