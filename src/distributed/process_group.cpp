#include "zflow/distributed/process_group.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/util/Exception.h>

#include "zflow/core/error.h"
#include "zflow/flows/flow.h"

#ifdef ZFLOW_HAVE_C10D
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

namespace zflow::distributed {

int cuda_device_for(int local_rank) {
  const int gpus = static_cast<int>(at::detail::getCUDAHooks().getNumGPUs());
  return gpus > 0 ? local_rank % gpus : 0;
}

bool distributed_available() {
#ifdef ZFLOW_HAVE_C10D
  return true;
#else
  return false;
#endif
}

std::string available_backends() {
#if defined(ZFLOW_HAVE_C10D) && defined(USE_C10D_NCCL)
  return "gloo, nccl";
#elif defined(ZFLOW_HAVE_C10D)
  return "gloo";
#else
  return "none";
#endif
}

#ifndef ZFLOW_HAVE_C10D

struct ProcessGroupSync::Impl {};

std::shared_ptr<ProcessGroupSync> ProcessGroupSync::connect(const LaunchInfo& launch,
                                                            const DistributedOptions&) {
  throw ConfigError(
      "this zflow was built without distributed training (LibTorch's c10d or "
      "the Gloo headers of libgloo-dev were not found), so it cannot join the " +
      std::to_string(launch.world_size) + " processes " + launch.launcher +
      " started; rebuild with libgloo-dev installed");
}

// Never constructed without c10d: connect throws.
ProcessGroupSync::ProcessGroupSync(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroupSync::~ProcessGroupSync() = default;
int ProcessGroupSync::rank() const { return 0; }
int ProcessGroupSync::world_size() const { return 1; }
void ProcessGroupSync::broadcast_parameters(FlowImpl&) {}
void ProcessGroupSync::attach(FlowImpl&, bool) {}
void ProcessGroupSync::synchronize_gradients(at::Tensor&) {}
double ProcessGroupSync::mean(double value) { return value; }
bool ProcessGroupSync::any(bool value) { return value; }
void ProcessGroupSync::barrier() {}
std::string ProcessGroupSync::backend() const { return "none"; }
double ProcessGroupSync::allreduce_seconds() const { return 0; }
int64_t ProcessGroupSync::allreduce_count() const { return 0; }

#else

namespace {

using Milliseconds = std::chrono::milliseconds;

/// The text of a c10d or Gloo error without the C++ backtrace and the source location.
std::string message_of(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10 ? c10->what_without_backtrace() : e.what();
  // "[./gloo/transport/tcp/pair.cc:589] Read error ..." -> "Read error ..."
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find("] ");
    if (close != std::string::npos) text = text.substr(close + 2);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const auto newline = text.find('\n');
  return newline == std::string::npos ? text : text.substr(0, newline);
}

// The collectives zflow uses, over whichever c10d class provides them: in LibTorch 1.13
// the Gloo and NCCL groups derive from ProcessGroup, in 2.x from Backend, with the same
// calls.
struct Collectives {
  virtual ~Collectives() = default;
  virtual void allreduce(std::vector<at::Tensor>& tensors, c10d::ReduceOp op) = 0;
  /// Starts a sum all-reduce; the returned function waits for it.
  virtual std::function<void()> allreduce_async(std::vector<at::Tensor>& tensors) = 0;
  virtual void broadcast(std::vector<at::Tensor>& tensors) = 0;
};

template <class Group>
struct GroupCollectives : Collectives {
  GroupCollectives(c10::intrusive_ptr<Group> g, Milliseconds t) : group(std::move(g)), timeout(t) {}
  void allreduce(std::vector<at::Tensor>& tensors, c10d::ReduceOp op) override {
    c10d::AllreduceOptions options;
    options.reduceOp = op;
    options.timeout = timeout;
    group->allreduce(tensors, options)->wait(timeout);
  }
  std::function<void()> allreduce_async(std::vector<at::Tensor>& tensors) override {
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    options.timeout = timeout;
    auto work = group->allreduce(tensors, options);
    const Milliseconds t = timeout;
    return [work, t] { work->wait(t); };
  }
  void broadcast(std::vector<at::Tensor>& tensors) override {
    c10d::BroadcastOptions options;
    options.rootRank = 0;
    options.timeout = timeout;
    group->broadcast(tensors, options)->wait(timeout);
  }
  c10::intrusive_ptr<Group> group;
  Milliseconds timeout;
};

// LibTorch 2.x's Gloo device helpers take a `lazyInit` flag that 1.13's lack: the first
// overload exists only where the two-argument form compiles.
template <class G>
auto gloo_device_for_hostname(const std::string& host, int)
    -> decltype(G::createDeviceForHostname(host, false)) {
  return G::createDeviceForHostname(host, false);
}
template <class G>
auto gloo_device_for_hostname(const std::string& host, long)
    -> decltype(G::createDeviceForHostname(host)) {
  return G::createDeviceForHostname(host);
}
template <class G>
auto gloo_device_for_interface(const std::string& name, int)
    -> decltype(G::createDeviceForInterface(name, false)) {
  return G::createDeviceForInterface(name, false);
}
template <class G>
auto gloo_device_for_interface(const std::string& name, long)
    -> decltype(G::createDeviceForInterface(name)) {
  return G::createDeviceForInterface(name);
}
template <class G>
auto gloo_default_device(int) -> decltype(G::createDefaultDevice(false)) {
  return G::createDefaultDevice(false);
}
template <class G>
auto gloo_default_device(long) -> decltype(G::createDefaultDevice()) {
  return G::createDefaultDevice();
}

/// Sends this process's stderr to /dev/null while it lives. c10d reports a failed bind or
/// connect through its own logging as well as by the exception that zflow turns into one
/// clear line; without this, two or three lines of log would precede that line.
class QuietStderr {
 public:
  QuietStderr() {
    std::fflush(stderr);
    saved_ = ::dup(2);
    const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved_ >= 0 && null >= 0) ::dup2(null, 2);
    if (null >= 0) ::close(null);
  }
  ~QuietStderr() {
    std::fflush(stderr);
    if (saved_ >= 0) {
      ::dup2(saved_, 2);
      ::close(saved_);
    }
  }
  QuietStderr(const QuietStderr&) = delete;
  QuietStderr& operator=(const QuietStderr&) = delete;

 private:
  int saved_ = -1;
};

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

/// Gloo's network device: GLOO_SOCKET_IFNAME's interface when set (as in PyTorch), the
/// loopback when the master is on this machine, otherwise the address of this host's name.
std::shared_ptr< ::gloo::transport::Device> gloo_device(const LaunchInfo& launch) {
  using G = c10d::ProcessGroupGloo;
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface) {
    return gloo_device_for_interface<G>(interface, 0);
  }
  if (is_loopback(launch.master_addr)) return gloo_device_for_hostname<G>("127.0.0.1", 0);
  return gloo_default_device<G>(0);
}

std::string where(const LaunchInfo& launch) {
  return launch.master_addr + ":" + std::to_string(launch.master_port);
}

/// The rendezvous store: rank 0 listens (unless torchrun's agent already does), the
/// others connect; every key of zflow's lives under the prefix "zflow/".
c10::intrusive_ptr<c10d::Store> rendezvous(const LaunchInfo& launch, Milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(launch.master_port);
  options.isServer = !launch.agent_store && launch.rank == 0;
  options.numWorkers = static_cast<std::size_t>(launch.world_size);
  options.waitWorkers = false;
  options.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    QuietStderr quiet;
    store = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, options);
  } catch (const std::exception& e) {
    const std::string text = message_of(e);
    if (options.isServer) {
      throw Error("rank 0 cannot host the rendezvous at " + where(launch) +
                  (text.find("in use") != std::string::npos
                       ? ": the port is in use (choose another with --master HOST:PORT or "
                         "MASTER_PORT)"
                       : ": " + text));
    }
    throw Error("rank " + std::to_string(launch.rank) + " cannot reach the master at " +
                where(launch) + " within " + std::to_string(timeout.count() / 1000) +
                " s: is rank 0 running, and are the address and port right? (" + text + ")");
  }
  if (launch.agent_store)
    store = c10::make_intrusive<c10d::PrefixStore>(launch.store_prefix, store);
  return c10::make_intrusive<c10d::PrefixStore>("zflow", store);
}

/// Rank 0 publishes the world size; the others compare theirs, so that a launch whose
/// processes disagree fails with a message rather than a hang.
void check_world_size(c10d::Store& store, const LaunchInfo& launch) {
  const std::string mine = std::to_string(launch.world_size);
  if (launch.rank == 0) {
    store.set("world_size", std::vector<uint8_t>(mine.begin(), mine.end()));
    return;
  }
  std::vector<uint8_t> bytes;
  try {
    bytes = store.get("world_size");
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(launch.rank) + " heard nothing from rank 0 at " +
                where(launch) + " (" + message_of(e) + ")");
  }
  const std::string theirs(bytes.begin(), bytes.end());
  if (theirs != mine) {
    throw ConfigError("rank " + std::to_string(launch.rank) + " was started for " + mine +
                      " processes but rank 0 for " + theirs +
                      ": every process must be given the same world size");
  }
}

}  // namespace

/// One bucket of the flat gradient buffer: elements [begin, end), the parameters whose
/// gradients have not arrived yet in this backward pass, and the wait of its all-reduce.
struct GradientBucket {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t parameters = 0;
  int64_t pending = 0;
  std::function<void()> wait;
};

struct ProcessGroupSync::Impl {
  LaunchInfo launch;
  std::string backend;
  int buckets_wanted = 1;
  // Overlap (buckets_wanted > 1, attached): the hooked parameters, their slots in the
  // flat layout, their bucket, whether their gradient arrived; the buckets and the next
  // one to start; `comm` receives the gradients as they arrive and is all-reduced.
  std::vector<at::Tensor> hooked;
  std::vector<unsigned> hooks;
  std::vector<int64_t> offset, bucket_of;
  std::vector<char> arrived;
  std::vector<GradientBucket> buckets;
  size_t next_bucket = 0;
  at::Tensor comm;
  at::Device device{at::kCPU};
  std::unique_ptr<Collectives> group;
  double allreduce_seconds = 0;
  int64_t allreduce_count = 0;
  int64_t operations = 0;

  /// Runs one collective, turning a failure into one line that says what was lost.
  template <typename Op>
  void run(const std::string& what, Op&& op) {
    ++operations;
    try {
      op();
    } catch (const std::exception& e) {
      throw Error("distributed training: the " + what + " (collective " +
                  std::to_string(operations) + ") failed on rank " + std::to_string(launch.rank) +
                  " of " + std::to_string(launch.world_size) +
                  ": another process stopped or cannot be reached (" + message_of(e) + ")");
    }
  }

  /// Starts, in bucket order, every bucket whose gradients are all there.
  void launch_ready_buckets() {
    while (next_bucket < buckets.size() && buckets[next_bucket].pending == 0) {
      GradientBucket& b = buckets[next_bucket];
      std::vector<at::Tensor> slice{comm.narrow(0, b.begin, b.end - b.begin)};
      run("all-reduce of a gradient bucket", [&] { b.wait = group->allreduce_async(slice); });
      ++next_bucket;
    }
  }

  /// The gradient hook of parameter `i` (before it is accumulated into .grad, which the
  /// trainer zeroed: the same values).
  void on_gradient(size_t i, const at::Tensor& grad) {
    if (arrived[i]) return;
    arrived[i] = 1;
    comm.narrow(0, offset[i], hooked[i].numel()).copy_(grad.reshape({-1}));
    --buckets[static_cast<size_t>(bucket_of[i])].pending;
    launch_ready_buckets();
  }

  double reduce(double value, c10d::ReduceOp op, const std::string& what) {
    std::vector<at::Tensor> t{at::full({1}, value, at::TensorOptions(at::kDouble).device(device))};
    run(what, [&] { group->allreduce(t, op); });
    return t[0].item<double>();
  }
};

ProcessGroupSync::ProcessGroupSync(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroupSync::~ProcessGroupSync() = default;

std::shared_ptr<ProcessGroupSync> ProcessGroupSync::connect(const LaunchInfo& launch,
                                                            const DistributedOptions& options) {
  if (!(options.timeout_seconds > 0)) throw ConfigError("the distributed timeout must be positive");
  if (options.device != "cpu" && options.device != "cuda") {
    throw ConfigError("distributed training runs on cpu or cuda, not '" + options.device + "'");
  }
  std::string backend = options.backend;
  if (backend == "auto") {
#ifdef USE_C10D_NCCL
    backend = options.device == "cuda" ? "nccl" : "gloo";
#else
    backend = "gloo";
#endif
  }
  if (backend != "gloo" && backend != "nccl") {
    throw ConfigError("unknown distributed backend '" + backend + "' (choose auto, gloo or nccl)");
  }
#ifndef USE_C10D_NCCL
  if (backend == "nccl") {
    throw ConfigError(
        "this LibTorch has no NCCL (it comes with CUDA builds of LibTorch); use "
        "--dist-backend gloo");
  }
#endif
  if (backend == "nccl" && options.device != "cuda") {
    throw ConfigError("the NCCL backend reduces CUDA tensors: use it with --device cuda");
  }
  auto impl = std::make_unique<Impl>();
  impl->launch = launch;
  impl->backend = backend;
  if (options.buckets < 1) throw ConfigError("the number of gradient buckets must be >= 1");
  impl->buckets_wanted = options.buckets;
  if (backend == "nccl")
    impl->device = at::Device(at::kCUDA, static_cast<int8_t>(cuda_device_for(launch.local_rank)));
  const auto timeout = Milliseconds(static_cast<int64_t>(options.timeout_seconds * 1000.0 + 0.5));
  c10::intrusive_ptr<c10d::Store> store = rendezvous(launch, timeout);
  check_world_size(*store, launch);
  try {
    QuietStderr quiet;
    if (backend == "gloo") {
      auto gloo_options = c10d::ProcessGroupGloo::Options::create();
      gloo_options->timeout = timeout;
      gloo_options->devices.push_back(gloo_device(launch));
      impl->group = std::make_unique<GroupCollectives<c10d::ProcessGroupGloo> >(
          c10::make_intrusive<c10d::ProcessGroupGloo>(store, launch.rank, launch.world_size,
                                                      gloo_options),
          timeout);
    }
#ifdef USE_C10D_NCCL
    if (backend == "nccl") {
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      impl->group = std::make_unique<GroupCollectives<c10d::ProcessGroupNCCL> >(
          c10::make_intrusive<c10d::ProcessGroupNCCL>(store, launch.rank, launch.world_size,
                                                      nccl_options),
          timeout);
    }
#endif
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(launch.rank) + " could not connect to " +
                (launch.world_size == 2
                     ? std::string("the other process")
                     : "the other " + std::to_string(launch.world_size - 1) + " processes") +
                " within " + std::to_string(timeout.count() / 1000) + " s (" + message_of(e) +
                "): were all of them started, with the same world size?");
  }
  std::shared_ptr<ProcessGroupSync> sync(new ProcessGroupSync(std::move(impl)));
  // Everyone is connected once a first collective completes.
  sync->barrier();
  return sync;
}

int ProcessGroupSync::rank() const { return impl_->launch.rank; }
int ProcessGroupSync::world_size() const { return impl_->launch.world_size; }
std::string ProcessGroupSync::backend() const { return impl_->backend; }
double ProcessGroupSync::allreduce_seconds() const { return impl_->allreduce_seconds; }
int64_t ProcessGroupSync::allreduce_count() const { return impl_->allreduce_count; }

void ProcessGroupSync::barrier() { impl_->reduce(0.0, c10d::ReduceOp::SUM, "barrier"); }

void ProcessGroupSync::broadcast_parameters(FlowImpl& flow) {
  // Parameters and buffers (ActNorm's initialisation flags, running statistics), one
  // flat buffer per dtype, from rank 0.
  at::NoGradGuard no_grad;
  std::map<at::ScalarType, std::vector<at::Tensor> > by_dtype;
  for (const auto& p : flow.parameters()) by_dtype[p.scalar_type()].push_back(p);
  for (const auto& b : flow.buffers()) by_dtype[b.scalar_type()].push_back(b);
  for (auto& [dtype, tensors] : by_dtype) {
    std::vector<at::Tensor> flat_parts;
    for (const auto& t : tensors) flat_parts.push_back(t.detach().reshape({-1}).to(impl_->device));
    std::vector<at::Tensor> flat{at::cat(flat_parts)};
    impl_->run("broadcast of the parameters", [&] { impl_->group->broadcast(flat); });
    int64_t offset = 0;
    for (auto& t : tensors) {
      t.detach().copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

void ProcessGroupSync::attach(FlowImpl& flow, bool attach) {
  Impl& m = *impl_;
  for (size_t i = 0; i < m.hooks.size(); ++i) m.hooked[i].remove_hook(m.hooks[i]);
  m.hooked.clear();
  m.hooks.clear();
  m.buckets.clear();
  m.offset.clear();
  if (!attach || m.buckets_wanted <= 1) return;
  // The flat layout of FlatAdam: the parameters that require gradients, in order.
  int64_t total = 0;
  for (const auto& p : flow.parameters()) {
    if (!p.requires_grad()) continue;
    m.hooked.push_back(p);
    m.offset.push_back(total);
    total += p.numel();
  }
  if (m.hooked.empty()) return;
  m.comm = at::zeros({total}, m.hooked[0].options().requires_grad(false));
  m.arrived.assign(m.hooked.size(), 0);
  m.bucket_of.assign(m.hooked.size(), 0);
  // Buckets of about total / N elements from the last parameter backwards.
  const int64_t target = std::max<int64_t>(1, (total + m.buckets_wanted - 1) / m.buckets_wanted);
  for (size_t j = m.hooked.size(); j-- > 0;) {
    if (m.buckets.empty() || m.buckets.back().end - m.buckets.back().begin >= target) {
      GradientBucket b;
      b.end = m.offset[j] + m.hooked[j].numel();
      b.begin = b.end;
      m.buckets.push_back(b);
    }
    GradientBucket& b = m.buckets.back();
    b.begin = m.offset[j];
    ++b.parameters;
    m.bucket_of[j] = static_cast<int64_t>(m.buckets.size() - 1);
  }
  for (auto& b : m.buckets) b.pending = b.parameters;
  m.next_bucket = 0;
  for (size_t i = 0; i < m.hooked.size(); ++i) {
    Impl* impl = impl_.get();
    m.hooks.push_back(m.hooked[i].register_hook(
        [impl, i](const at::Tensor& grad) { impl->on_gradient(i, grad); }));
  }
}

void ProcessGroupSync::synchronize_gradients(at::Tensor& flat_gradients) {
  const auto start = std::chrono::steady_clock::now();
  Impl& m = *impl_;
  if (!m.buckets.empty()) {
    // Gradients that never passed a hook (a parameter without a gradient this step) are
    // taken from the flat buffer; then every bucket is started, in order, and awaited.
    TORCH_CHECK(flat_gradients.numel() == m.comm.numel(), "gradient sync: ", flat_gradients.numel(),
                " gradients for ", m.comm.numel(), " hooked");
    for (size_t i = 0; i < m.hooked.size(); ++i) {
      if (m.arrived[i]) continue;
      m.arrived[i] = 1;
      m.comm.narrow(0, m.offset[i], m.hooked[i].numel())
          .copy_(flat_gradients.narrow(0, m.offset[i], m.hooked[i].numel()));
      --m.buckets[static_cast<size_t>(m.bucket_of[i])].pending;
    }
    m.launch_ready_buckets();
    for (auto& b : m.buckets) {
      m.run("all-reduce of a gradient bucket", [&] { b.wait(); });
      b.wait = nullptr;
      b.pending = b.parameters;
    }
    std::fill(m.arrived.begin(), m.arrived.end(), 0);
    m.next_bucket = 0;
    flat_gradients.copy_(m.comm).div_(static_cast<double>(m.launch.world_size));
    m.allreduce_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++m.allreduce_count;
    return;
  }
  const bool moved = flat_gradients.device() != impl_->device;
  std::vector<at::Tensor> buffer{moved ? flat_gradients.to(impl_->device) : flat_gradients};
  impl_->run("all-reduce of the gradients",
             [&] { impl_->group->allreduce(buffer, c10d::ReduceOp::SUM); });
  buffer[0].div_(static_cast<double>(impl_->launch.world_size));
  if (moved) flat_gradients.copy_(buffer[0]);
  impl_->allreduce_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++impl_->allreduce_count;
}

double ProcessGroupSync::mean(double value) {
  return impl_->reduce(value, c10d::ReduceOp::SUM, "reduction of a score") /
         static_cast<double>(impl_->launch.world_size);
}

bool ProcessGroupSync::any(bool value) {
  return impl_->reduce(value ? 1.0 : 0.0, c10d::ReduceOp::MAX, "agreement on a decision") > 0.0;
}

#endif

}  // namespace zflow::distributed
