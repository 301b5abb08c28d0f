#include "zflow/distributed/launch.h"

#include <cstdlib>
#include <string>
#include <utility>

#include "zflow/core/error.h"

namespace zflow::distributed {

namespace {

int parse_int(const std::string& name, const std::string& value, int min) {
  size_t used = 0;
  long long number = 0;
  try {
    number = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || number < min || number > 1 << 24) {
    throw ConfigError(name + "='" + value + "' is not " +
                      (min == 0 ? "a non-negative" : "a positive") + " whole number");
  }
  return static_cast<int>(number);
}

/// The variable as a number, or `fallback` when unset.
int number(const Environment& env, const std::string& name, int fallback, int min) {
  const auto value = env(name);
  return value ? parse_int(name, *value, min) : fallback;
}

struct Variables {
  const char* launcher;
  const char* rank;
  const char* size;
  const char* local_rank;
  const char* local_size;
};

// In order of precedence: a launcher that sets RANK wins over the MPI or Slurm that may
// have started it.
constexpr Variables kLaunchers[] = {
    {"environment", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    {"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"MPICH", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
    {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_STEP_TASKS_PER_NODE"},
};

}  // namespace

Environment process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

std::pair<std::string, int> parse_master(const std::string& master) {
  const auto colon = master.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == master.size()) {
    throw ConfigError("--master '" + master + "' must be HOST:PORT, e.g. node01:29500");
  }
  std::string host = master.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const int port = parse_int("the port of --master", master.substr(colon + 1), 1);
  if (port > 65535) throw ConfigError("--master '" + master + "': the port must be 1..65535");
  return {host, port};
}

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at a comma outside brackets; a bracket holds ranges "03-05,9"
  // of which the first number names the first host.
  int depth = 0;
  size_t end = 0;
  for (; end < nodelist.size(); ++end) {
    const char c = nodelist[end];
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) break;
  }
  const std::string entry = nodelist.substr(0, end);
  const auto open = entry.find('[');
  if (open == std::string::npos) return entry;
  const auto close = entry.find(']', open);
  if (close == std::string::npos)
    throw ConfigError("SLURM_JOB_NODELIST='" + nodelist + "' is damaged");
  const std::string ranges = entry.substr(open + 1, close - open - 1);
  const auto stop = ranges.find_first_of(",-");
  return entry.substr(0, open) + ranges.substr(0, stop) + entry.substr(close + 1);
}

LaunchInfo detect_launch(const Environment& env, const std::string& master) {
  LaunchInfo info;
  for (const Variables& v : kLaunchers) {
    if (!env(v.rank) || !env(v.size)) continue;
    std::string size_name = v.size;
    if (std::string(v.launcher) == "Slurm" && env("SLURM_STEP_NUM_TASKS")) {
      size_name = "SLURM_STEP_NUM_TASKS";  // the tasks of this srun, not of the allocation
    }
    info.launcher = v.launcher;
    info.world_size = parse_int(size_name, *env(size_name), 1);
    info.rank = parse_int(v.rank, *env(v.rank), 0);
    info.local_rank = number(env, v.local_rank, info.rank, 0);
    const auto local_size = env(v.local_size);
    // Slurm writes "2(x3)" for three nodes of two tasks: the leading number is ours.
    info.local_world_size =
        local_size ? parse_int(v.local_size, local_size->substr(0, local_size->find('(')), 1)
                   : info.world_size;
    break;
  }
  if (info.launcher.empty()) return info;
  if (info.launcher == "environment") {
    if (env("TORCHELASTIC_RUN_ID") || env("TORCHELASTIC_RESTART_COUNT")) info.launcher = "torchrun";
    if (env("ZFLOW_NPROC_WORKER")) info.launcher = "zflow --nproc";
  }
  if (info.rank >= info.world_size) {
    throw ConfigError("rank " + std::to_string(info.rank) + " is outside a world of " +
                      std::to_string(info.world_size) + " processes (as " + info.launcher +
                      " set them)");
  }
  if (info.local_rank >= info.local_world_size) info.local_world_size = info.local_rank + 1;
  if (!master.empty()) {
    std::tie(info.master_addr, info.master_port) = parse_master(master);
  } else {
    info.master_addr = env("MASTER_ADDR").value_or("");
    info.master_port = number(env, "MASTER_PORT", kDefaultMasterPort, 1);
    if (info.master_addr.empty() && info.launcher == "Slurm") {
      const auto nodes =
          env("SLURM_JOB_NODELIST") ? env("SLURM_JOB_NODELIST") : env("SLURM_NODELIST");
      if (nodes) info.master_addr = first_slurm_host(*nodes);
    }
  }
  if (info.master_port > 65535) {
    throw ConfigError("MASTER_PORT=" + std::to_string(info.master_port) +
                      " is not a port (1..65535)");
  }
  const auto agent = env("TORCHELASTIC_USE_AGENT_STORE");
  info.agent_store = agent && (*agent == "True" || *agent == "true" || *agent == "1");
  if (info.agent_store) {
    info.store_prefix =
        "/worker/attempt_" + std::to_string(number(env, "TORCHELASTIC_RESTART_COUNT", 0, 0));
  }
  if (info.distributed() && info.master_addr.empty()) {
    throw ConfigError(info.launcher + " started " + std::to_string(info.world_size) +
                      " processes but named no master: set MASTER_ADDR and MASTER_PORT or give "
                      "--master HOST:PORT (the host of rank 0)");
  }
  return info;
}

}  // namespace zflow::distributed
