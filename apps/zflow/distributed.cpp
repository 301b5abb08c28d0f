#include "distributed.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "common.h"
#include "signals.h"
#include "zflow/core/error.h"

extern char** environ;

namespace zflow::cli {

namespace {

std::vector<std::string>& program_arguments() {
  static std::vector<std::string> arguments;
  return arguments;
}

/// A TCP port on the loopback that nothing listens on right now.
int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("cannot open a socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(fd);
  if (!ok) throw Error(std::string("cannot find a free port: ") + std::strerror(errno));
  return ntohs(address.sin_port);
}

volatile std::sig_atomic_t forwarded_signal = 0;
void remember_signal(int signal) { forwarded_signal = signal; }

}  // namespace

void add_distributed_options(CLI::App* sub, DistributedArgs* args) {
  sub->add_option("--nproc", args->nproc,
                  "Train with this many processes on this machine (data-parallel; the batch is "
                  "split over them). torchrun, mpirun and srun start processes themselves: "
                  "then leave this out")
      ->check(CLI::Range(1, 1024));
  sub->add_option("--master", args->master,
                  "HOST:PORT where rank 0 hosts the rendezvous (default: MASTER_ADDR and "
                  "MASTER_PORT; under Slurm the first node, port 29500)");
  sub->add_option("--dist-backend", args->backend,
                  "Collectives: gloo (CPU), nccl (CUDA GPUs), or auto")
      ->check(CLI::IsMember({"auto", "gloo", "nccl"}))
      ->capture_default_str();
  sub->add_option("--dist-timeout", args->timeout,
                  "Seconds to wait for the other processes (the rendezvous, any one step) before "
                  "giving up with an error")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--dist-buckets", args->buckets,
                  "Gradient buckets: 1 all-reduces the gradients after the backward pass, N > 1 "
                  "all-reduces N buckets during it, as their gradients are ready")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
}

void set_program_arguments(int argc, char** argv) { program_arguments().assign(argv, argv + argc); }

bool should_launch_workers(const DistributedArgs& args) {
  if (args.nproc == 0 || std::getenv("ZFLOW_NPROC_WORKER") != nullptr) return false;
  if (std::getenv("RANK") != nullptr || std::getenv("OMPI_COMM_WORLD_RANK") != nullptr) {
    throw ConfigError(
        "--nproc starts processes itself: do not combine it with torchrun or mpirun "
        "(they set RANK or OMPI_COMM_WORLD_RANK)");
  }
  return true;
}

namespace {

/// The environment of worker `rank`: this process's, with the launch variables set.
std::vector<std::string> worker_environment(int rank, int nproc, const std::string& host,
                                            int port) {
  const std::vector<std::pair<std::string, std::string>> launch = {
      {"ZFLOW_NPROC_WORKER", "1"},
      {"RANK", std::to_string(rank)},
      {"LOCAL_RANK", std::to_string(rank)},
      {"WORLD_SIZE", std::to_string(nproc)},
      {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
      {"MASTER_ADDR", host},
      {"MASTER_PORT", std::to_string(port)}};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    bool replaced = false;
    for (const auto& [name, value] : launch) replaced |= entry.rfind(name + "=", 0) == 0;
    if (!replaced) env.push_back(entry);
  }
  for (const auto& [name, value] : launch) env.push_back(name + "=" + value);
  return env;
}

/// Starts one worker: this program with the same arguments and `env`. Only
/// async-signal-safe calls happen between fork and exec (LibTorch's threads may hold locks).
pid_t start_worker(const std::vector<std::string>& arguments, const std::vector<std::string>& env) {
  std::vector<char*> argv;
  for (const auto& a : arguments) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("cannot start a worker: ") + std::strerror(errno));
  if (pid == 0) {
    // The workers get SIGINT/SIGTERM from this launcher alone (a Ctrl-C in the terminal
    // would otherwise reach them twice, and a second signal ends a process at once), and
    // SIGTERM when it dies.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::execve("/proc/self/exe", argv.data(), envp.data());
    const char message[] = "zflow: error: cannot start a worker process\n";
    [[maybe_unused]] const auto ignored = ::write(2, message, sizeof(message) - 1);
    ::_exit(127);
  }
  return pid;
}

/// Waits for every worker, passing SIGINT/SIGTERM on; rank 0's exit code when it failed,
/// otherwise the first failure's.
int wait_for_workers(const std::vector<pid_t>& workers) {
  int result = 0;
  int rank0_code = 0;
  size_t running = workers.size();
  int sent = 0;
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno != EINTR) break;
      // The workers stop together at their next step.
      if (forwarded_signal != 0 && forwarded_signal != sent) {
        sent = forwarded_signal;
        for (pid_t w : workers) ::kill(w, sent);
      }
      continue;
    }
    --running;
    int rank = 0;
    while (rank < static_cast<int>(workers.size()) && workers[rank] != pid) ++rank;
    int code = 0;
    if (WIFSIGNALED(status)) {
      std::cerr << "zflow: worker rank " << rank << " was killed by signal " << WTERMSIG(status)
                << " (" << strsignal(WTERMSIG(status)) << ")" << std::endl;
      code = 1;
    } else if (WIFEXITED(status)) {
      code = WEXITSTATUS(status);
    }
    if (rank == 0) rank0_code = code;
    if (code != 0 && result == 0) result = code;
  }
  return rank0_code != 0 ? rank0_code : result;
}

}  // namespace

int run_local_workers(const DistributedArgs& args) {
  if (!distributed::distributed_available() && args.nproc > 1) {
    distributed::LaunchInfo wanted;
    wanted.world_size = args.nproc;
    wanted.launcher = "--nproc";
    distributed::ProcessGroupSync::connect(wanted, {});  // throws: says what is missing
  }
  std::string host = "127.0.0.1";
  int port = 0;
  if (!args.master.empty()) {
    std::tie(host, port) = distributed::parse_master(args.master);
  } else {
    port = free_local_port();
  }
  struct sigaction forward {};
  struct sigaction old_int {};
  struct sigaction old_term {};
  forward.sa_handler = remember_signal;
  sigemptyset(&forward.sa_mask);
  sigaction(SIGINT, &forward, &old_int);
  sigaction(SIGTERM, &forward, &old_term);
  std::vector<pid_t> workers;
  for (int rank = 0; rank < args.nproc; ++rank) {
    workers.push_back(
        start_worker(program_arguments(), worker_environment(rank, args.nproc, host, port)));
  }
  const int code = wait_for_workers(workers);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return code;
}

DistributedRun join_distributed_run(const DistributedArgs& args,
                                    const distributed::LaunchInfo& launch,
                                    const std::string& device) {
  DistributedRun run;
  run.launch = launch;
  if (args.nproc > 0 && run.launch.world_size != args.nproc) {
    throw ConfigError("--nproc " + std::to_string(args.nproc) + " but the launcher set " +
                      std::to_string(run.launch.world_size) + " processes");
  }
  if (!run.launch.distributed()) return run;
  distributed::DistributedOptions options;
  options.backend = args.backend;
  options.timeout_seconds = args.timeout;
  options.device = device;
  options.buckets = args.buckets;
  run.sync = distributed::ProcessGroupSync::connect(run.launch, options);
  return run;
}

}  // namespace zflow::cli
