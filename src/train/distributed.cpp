// c10d process groups. Gloo's headers come from Debian's libgloo-dev; without them the build still
// compiles and a multi-process run fails with a clear message. NCCL needs a CUDA libtorch:
// compiled when EMLAB_WITH_NCCL is defined, which CMake does for a CUDA libtorch (Debian's is CPU-only).
#include "train/distributed.h"

#include <cstdlib>

#include "emlab/error.h"

#if __has_include(<gloo/context.h>)
#define EMLAB_HAVE_GLOO 1
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef EMLAB_WITH_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <torch/version.h>

namespace emlab::train_detail {

// libtorch 2.x made Gloo and NCCL "backends" of a ProcessGroup; 1.13's are ProcessGroups. Both
// have the allreduce used here.
#if TORCH_VERSION_MAJOR >= 2
using GroupImpl = c10d::Backend;
#else
using GroupImpl = c10d::ProcessGroup;
#endif

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<GroupImpl> group;
};

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0') throw InputError(std::string("environment variable ") + name + "='" + v + "' is not an integer");
  return static_cast<int>(x);
}

std::unique_ptr<Distributed> Distributed::from_env(const torch::Device& device) {
  std::unique_ptr<Distributed> d(new Distributed());
  d->world_ = env_int("WORLD_SIZE", 1);
  d->rank_ = env_int("RANK", 0);
  if (d->world_ < 1) throw InputError("WORLD_SIZE must be >= 1");
  if (d->rank_ < 0 || d->rank_ >= d->world_)
    throw InputError("RANK=" + std::to_string(d->rank_) + " is outside 0..WORLD_SIZE-1 (WORLD_SIZE=" +
                     std::to_string(d->world_) + ")");
  if (d->world_ == 1) return d;

  const char* addr_env = std::getenv("MASTER_ADDR");
  const std::string addr = addr_env && *addr_env ? addr_env : "127.0.0.1";
  const int port = env_int("MASTER_PORT", 29500);
  if (port <= 0 || port > 65535) throw InputError("MASTER_PORT=" + std::to_string(port) + " is not a port");
  d->impl_ = std::make_unique<Impl>();
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = d->rank_ == 0;
  so.numWorkers = static_cast<std::size_t>(d->world_);
  so.waitWorkers = true;
  so.timeout = std::chrono::seconds(env_int("EMLAB_DIST_TIMEOUT", 300));
  d->impl_->store = c10::make_intrusive<c10d::TCPStore>(addr, so);

  if (device.is_cuda()) {
#ifdef EMLAB_WITH_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    d->impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(d->impl_->store, d->rank_, d->world_, opts);
    return d;
#else
    throw InputError("data parallel on CUDA needs NCCL, and this build has none (EMLAB_WITH_NCCL is not defined); "
                     "use --device cpu or a CUDA libtorch");
#endif
  }
#ifdef EMLAB_HAVE_GLOO
  auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(env_int("EMLAB_DIST_TIMEOUT", 300)));
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname)
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (addr == "localhost" || addr.rfind("127.", 0) == 0)
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  opts->threads = 2;
  d->impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(d->impl_->store, d->rank_, d->world_, opts);
  return d;
#else
  throw InputError("data parallel on the CPU needs Gloo, and this build found no gloo headers (install "
                   "libgloo-dev and rebuild)");
#endif
}

Distributed::~Distributed() = default;

void Distributed::all_reduce_sum(torch::Tensor& t) {
  if (world_ == 1) return;
  std::vector<torch::Tensor> ts{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  impl_->group->allreduce(ts, o)->wait();
}

void Distributed::barrier() {
  if (world_ == 1) return;
  impl_->group->barrier()->wait();
}

}  // namespace emlab::train_detail

namespace emlab {

bool distributed_cpu_available() {
#ifdef EMLAB_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

}  // namespace emlab
