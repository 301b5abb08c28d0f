#pragma once
/// \file
/// Who this process is in a multi-process training run, read from the environment that
/// the launcher set. One code path serves every launcher (docs/distributed.md):
///
/// | launcher                       | rank, world size                      | local rank, local
/// size                          | master                          |
/// |--------------------------------|---------------------------------------|-------------------------------------------------|---------------------------------|
/// | torchrun, `zflow train --nproc`| RANK, WORLD_SIZE                      | LOCAL_RANK,
/// LOCAL_WORLD_SIZE                    | MASTER_ADDR, MASTER_PORT        | | Open MPI (mpirun) |
/// OMPI_COMM_WORLD_RANK, _SIZE           | OMPI_COMM_WORLD_LOCAL_RANK, _LOCAL_SIZE         |
/// MASTER_ADDR/PORT or --master    | | MPICH, Intel MPI               | PMI_RANK, PMI_SIZE |
/// MPI_LOCALRANKID, MPI_LOCALNRANKS                | MASTER_ADDR/PORT or --master    | | Slurm
/// (srun)                   | SLURM_PROCID, SLURM_STEP_NUM_TASKS (or SLURM_NTASKS) | SLURM_LOCALID,
/// SLURM_STEP_TASKS_PER_NODE | first host of SLURM_JOB_NODELIST |
///
/// Under torchrun with TORCHELASTIC_USE_AGENT_STORE set, the agent already hosts the
/// rendezvous store: the workers connect to it as clients, under the prefix
/// `/worker/attempt_<TORCHELASTIC_RESTART_COUNT>`.
///
/// Example:
///
///     zflow::distributed::LaunchInfo me = zflow::distributed::detect_launch();
///     if (me.world_size > 1) { /* connect (distributed/process_group.h) */ }

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace zflow::distributed {

/// The default port of the rendezvous store when the launcher names none (torch's).
constexpr int kDefaultMasterPort = 29500;

/// This process's place in the run.
struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  /// Rank among the processes of this machine, and their number (threads are shared out
  /// among them; with CUDA, the local rank picks the GPU).
  int local_rank = 0;
  int local_world_size = 1;
  /// Where rank 0 hosts the rendezvous store (empty in a single process).
  std::string master_addr;
  int master_port = 0;
  /// "torchrun", "zflow --nproc", "Open MPI", "MPICH", "Slurm", "environment" (RANK and
  /// WORLD_SIZE set by hand) or "" (a single process, no launcher).
  std::string launcher;
  /// torchrun's agent hosts the store; connect under `store_prefix`.
  bool agent_store = false;
  std::string store_prefix;

  bool distributed() const { return world_size > 1; }
};

/// Looks up an environment variable (nullopt when unset).
using Environment = std::function<std::optional<std::string>(const std::string&)>;

/// The process's own environment.
Environment process_environment();

/// Reads the launch from `env`. `master` ("HOST:PORT", from --master) overrides
/// MASTER_ADDR/MASTER_PORT. ConfigError, naming the variable, for a value that is not a
/// number, a rank outside the world, or a multi-process launch without a master address.
LaunchInfo detect_launch(const Environment& env = process_environment(),
                         const std::string& master = "");

/// The first host of a Slurm host list: "node[03-05,9],login" → "node03".
std::string first_slurm_host(const std::string& nodelist);

/// Splits "HOST:PORT" ("[::1]:29500" for IPv6); ConfigError otherwise.
std::pair<std::string, int> parse_master(const std::string& master);

}  // namespace zflow::distributed
