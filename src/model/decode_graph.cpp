// CUDA-graph decoding steps (emlab/decode_graph.h). Compiled with EMLAB_WITH_CUDA (CMake defines it
// on this file for a CUDA libtorch); elsewhere a step is the plain forward.
#include "emlab/decode_graph.h"

#ifdef EMLAB_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace emlab {

struct DecodeGraph::Impl {
  explicit Impl(const CausalLM& m) : model(m) {}
  const CausalLM& model;
  int64_t captures = 0;
#ifdef EMLAB_WITH_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  // The graph's inputs and output: fixed storage, refilled before each replay.
  torch::Tensor ids;             // (B, 1) int64
  torch::Tensor pos;             // (B, 1) int64 position ids
  torch::Tensor mask;            // (B, capacity) int64 attention mask (columns past the step are masked anyway)
  torch::Tensor cache_position;  // (1) int64: the cache index the step writes
  torch::Tensor out;             // (B, 1, V) logits
  int64_t batch = -1;
  const void* storage = nullptr;  // cache.k[0]'s data: the cache the graph reads and writes
  bool adapters = true;
#endif
};

DecodeGraph::DecodeGraph(const CausalLM& model) : impl_(std::make_unique<Impl>(model)) {}
DecodeGraph::~DecodeGraph() = default;
int64_t DecodeGraph::captures() const { return impl_->captures; }

bool DecodeGraph::available(const CausalLM& model) {
#ifdef EMLAB_WITH_CUDA
  return model.device().is_cuda();
#else
  (void)model;
  return false;
#endif
}

torch::Tensor DecodeGraph::step(const torch::Tensor& ids, const torch::Tensor& position_ids,
                                const torch::Tensor& attention_mask, KVCache& cache, bool adapters) {
  const CausalLM& model = impl_->model;
  ForwardArgs args;
  args.cache = &cache;
  args.last_logits_only = true;
  args.adapters = adapters;
  if (!available(model) || cache.k.empty() || cache.rows.defined() || cache.prefix_rows.defined() ||
      cache.length + 1 > cache.k[0].size(2)) {
    args.position_ids = position_ids;
    args.attention_mask = attention_mask;
    return model.forward(ids, args);  // (B, 1, V)
  }
#ifdef EMLAB_WITH_CUDA
  Impl& g = *impl_;
  const torch::Device device = model.device();
  const int64_t B = ids.size(0), capacity = cache.k[0].size(2), S = cache.length + 1;
  TORCH_CHECK(ids.dim() == 2 && ids.size(1) == 1 && position_ids.sizes() == ids.sizes(),
              "decode step: ids and position_ids must be (B, 1), got ", ids.sizes(), " and ", position_ids.sizes());
  TORCH_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == S,
              "decode step: attention_mask must be (B, cache length + 1) = (", B, ", ", S, "), got ",
              attention_mask.sizes());
  if (g.graph && g.batch == B && g.storage == cache.k[0].data_ptr() && g.adapters == adapters &&
      g.mask.size(1) == capacity) {
    g.ids.copy_(ids);
    g.pos.copy_(position_ids);
    g.mask.narrow(1, 0, S).copy_(attention_mask);
    g.cache_position.fill_(cache.length);
    g.graph->replay();
    cache.length = S;
    return g.out.clone();  // the graph's output is overwritten by the next replay
  }
  // (Re)capture. The inputs move into fixed storage; the step runs for real on a side stream (which
  // also warms up what a capture must not initialise), then the same step is recorded: its kernels
  // read the position from cache_position, so the graph replays any later step.
  g.graph.reset();
  g.out = torch::Tensor();
  const auto lopts = torch::TensorOptions().dtype(torch::kLong).device(device);
  g.ids = ids.to(lopts).clone();
  g.pos = position_ids.to(lopts).clone();
  g.mask = torch::zeros({B, capacity}, lopts);
  g.mask.narrow(1, 0, S).copy_(attention_mask.to(lopts));
  g.cache_position = torch::full({1}, cache.length, lopts);
  args.position_ids = g.pos;
  args.attention_mask = g.mask;
  args.cache_position = g.cache_position;
  torch::Tensor result;
  {
    c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device.index());
    torch::cuda::synchronize(device.index());  // what was queued before is done
    c10::cuda::CUDAStreamGuard guard(side);
    const int64_t past = cache.length;
    result = model.forward(g.ids, args);  // this step
    cache.length = past;                  // recording runs forward's host side once more
    g.graph = std::make_unique<at::cuda::CUDAGraph>();
    g.graph->capture_begin();
    g.out = model.forward(g.ids, args);
    g.graph->capture_end();
    cache.length = S;
    torch::cuda::synchronize(device.index());
  }
  g.batch = B;
  g.storage = cache.k[0].data_ptr();
  g.adapters = adapters;
  ++g.captures;
  return result;
#else
  return torch::Tensor();  // not reached: available() is false
#endif
}

}  // namespace emlab
