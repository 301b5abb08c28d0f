// Reading a launch from the environment: torchrun, zflow --nproc, Open MPI, MPICH, Slurm.

#include <map>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "support/expect_error.h"
#include "zflow/core/error.h"
#include "zflow/distributed/launch.h"

namespace {

using zflow::distributed::detect_launch;
using zflow::distributed::Environment;
using zflow::distributed::LaunchInfo;

Environment env(std::map<std::string, std::string> values) {
  return [values](const std::string& name) -> std::optional<std::string> {
    const auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

TEST(Launch, NoLauncherIsOneProcess) {
  const LaunchInfo info = detect_launch(env({{"PATH", "/usr/bin"}}));
  EXPECT_EQ(info.world_size, 1);
  EXPECT_EQ(info.rank, 0);
  EXPECT_FALSE(info.distributed());
  EXPECT_EQ(info.launcher, "");
}

TEST(Launch, Torchrun) {
  const LaunchInfo info = detect_launch(env({{"RANK", "3"},
                                             {"WORLD_SIZE", "8"},
                                             {"LOCAL_RANK", "1"},
                                             {"LOCAL_WORLD_SIZE", "2"},
                                             {"MASTER_ADDR", "node7"},
                                             {"MASTER_PORT", "29400"},
                                             {"TORCHELASTIC_RESTART_COUNT", "2"},
                                             {"TORCHELASTIC_USE_AGENT_STORE", "True"}}));
  EXPECT_EQ(info.launcher, "torchrun");
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.world_size, 8);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.local_world_size, 2);
  EXPECT_EQ(info.master_addr, "node7");
  EXPECT_EQ(info.master_port, 29400);
  EXPECT_TRUE(info.agent_store);
  EXPECT_EQ(info.store_prefix, "/worker/attempt_2");
}

TEST(Launch, TorchrunWithoutAgentStoreHostsItsOwn) {
  const LaunchInfo info = detect_launch(env({{"RANK", "0"},
                                             {"WORLD_SIZE", "2"},
                                             {"MASTER_ADDR", "127.0.0.1"},
                                             {"MASTER_PORT", "29400"},
                                             {"TORCHELASTIC_RESTART_COUNT", "0"},
                                             {"TORCHELASTIC_USE_AGENT_STORE", "False"}}));
  EXPECT_FALSE(info.agent_store);
  EXPECT_EQ(info.store_prefix, "");
}

TEST(Launch, OpenMpiWithMasterOption) {
  const LaunchInfo info = detect_launch(env({{"OMPI_COMM_WORLD_RANK", "5"},
                                             {"OMPI_COMM_WORLD_SIZE", "6"},
                                             {"OMPI_COMM_WORLD_LOCAL_RANK", "2"},
                                             {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}}),
                                        "head:1234");
  EXPECT_EQ(info.launcher, "Open MPI");
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.world_size, 6);
  EXPECT_EQ(info.local_rank, 2);
  EXPECT_EQ(info.local_world_size, 3);
  EXPECT_EQ(info.master_addr, "head");
  EXPECT_EQ(info.master_port, 1234);
}

TEST(Launch, MpichDefaultsThePort) {
  const LaunchInfo info =
      detect_launch(env({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.1"}}));
  EXPECT_EQ(info.launcher, "MPICH");
  EXPECT_EQ(info.master_port, zflow::distributed::kDefaultMasterPort);
}

TEST(Launch, SlurmTakesTheFirstNodeAndTheStepsTasks) {
  const LaunchInfo info = detect_launch(env({{"SLURM_PROCID", "4"},
                                             {"SLURM_NTASKS", "16"},
                                             {"SLURM_STEP_NUM_TASKS", "8"},
                                             {"SLURM_LOCALID", "0"},
                                             {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"},
                                             {"SLURM_JOB_NODELIST", "gpu[07-08,11],login1"}}));
  EXPECT_EQ(info.launcher, "Slurm");
  EXPECT_EQ(info.rank, 4);
  EXPECT_EQ(info.world_size, 8);
  EXPECT_EQ(info.local_world_size, 4);
  EXPECT_EQ(info.master_addr, "gpu07");
  EXPECT_EQ(info.master_port, zflow::distributed::kDefaultMasterPort);
}

TEST(Launch, RankSetByHandWinsOverTheMpiAroundIt) {
  const LaunchInfo info = detect_launch(env({{"RANK", "1"},
                                             {"WORLD_SIZE", "2"},
                                             {"MASTER_ADDR", "a"},
                                             {"OMPI_COMM_WORLD_RANK", "0"},
                                             {"OMPI_COMM_WORLD_SIZE", "4"}}));
  EXPECT_EQ(info.launcher, "environment");
  EXPECT_EQ(info.world_size, 2);
}

TEST(Launch, SlurmHostLists) {
  using zflow::distributed::first_slurm_host;
  EXPECT_EQ(first_slurm_host("node01"), "node01");
  EXPECT_EQ(first_slurm_host("a,b,c"), "a");
  EXPECT_EQ(first_slurm_host("n[5]"), "n5");
  EXPECT_EQ(first_slurm_host("n[003-005,9]"), "n003");
  EXPECT_EQ(first_slurm_host("rack[2,4]-ib,x"), "rack2-ib");
}

TEST(Launch, MasterOption) {
  using zflow::distributed::parse_master;
  EXPECT_EQ(parse_master("host:29500"), std::make_pair(std::string("host"), 29500));
  EXPECT_EQ(parse_master("[::1]:80"), std::make_pair(std::string("::1"), 80));
  zflow::testing::expect_error<zflow::ConfigError>([&] { parse_master("host"); }, {"HOST:PORT"});
  zflow::testing::expect_error<zflow::ConfigError>([&] { parse_master("host:port"); }, {"port"});
  zflow::testing::expect_error<zflow::ConfigError>([&] { parse_master("host:70000"); },
                                                   {"1..65535"});
}

TEST(Launch, BadValuesNameTheVariable) {
  zflow::testing::expect_error<zflow::ConfigError>(
      [&] {
        detect_launch(env({{"RANK", "x"}, {"WORLD_SIZE", "2"}}));
      },
      {"RANK='x'"});
  zflow::testing::expect_error<zflow::ConfigError>(
      [&] {
        detect_launch(env({{"RANK", "0"}, {"WORLD_SIZE", "0"}}));
      },
      {"WORLD_SIZE='0'"});
  zflow::testing::expect_error<zflow::ConfigError>(
      [&] {
        detect_launch(env({{"RANK", "2"}, {"WORLD_SIZE", "2"}}));
      },
      {"outside a world of 2"});
  zflow::testing::expect_error<zflow::ConfigError>(
      [&] {
        detect_launch(env({{"RANK", "0"}, {"WORLD_SIZE", "2"}}));
      },
      {"MASTER_ADDR"});
  zflow::testing::expect_error<zflow::ConfigError>(
      [&] {
        detect_launch(env(
            {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "99999"}}));
      },
      {"MASTER_PORT"});
}

}  // namespace
