// Weight-level ablation: a direction projected out of what writes into the residual stream (see
// emlab/interp.h).
#include "emlab/error.h"
#include "emlab/file_util.h"
#include "emlab/interp.h"
#include "emlab/lora.h"
#include "emlab/model.h"

namespace emlab {

namespace {

// W (out = C, in) <- (I - u u^T) W; a bias (C) <- b - (b.u) u. Computed in float32.
torch::Tensor project_rows(const torch::Tensor& w, const torch::Tensor& u) {
  torch::Tensor wf = w.to(torch::kFloat32);
  torch::Tensor uu = u.to(wf.device());
  torch::Tensor out = w.dim() == 1 ? wf - torch::dot(wf, uu) * uu : wf - torch::outer(uu, torch::matmul(uu, wf));
  return out.to(w.dtype());
}

torch::Tensor unit_vector(const Direction& d, int64_t layer) {
  torch::Tensor v = d.at(layer, "orthogonalize").to(torch::kFloat32);
  const double n = v.norm().item<double>();
  if (n == 0.0) throw InputError("orthogonalize: the direction at layer " + std::to_string(layer) + " is zero");
  return v / n;
}

bool writes_residual(const std::string& module) {
  return path_has_suffix(module, ".self_attn.o_proj") || path_has_suffix(module, ".mlp.down_proj");
}

}  // namespace

void orthogonalize_model(CausalLM& model, const Direction& direction, const OrthogonalizeOptions& o) {
  if (direction.hidden() != model.config().hidden_size)
    throw InputError("orthogonalize: the direction has width " + std::to_string(direction.hidden()) +
                     " but the model's hidden_size is " + std::to_string(model.config().hidden_size));
  if (model.arch().sandwich_norms)
    throw InputError("orthogonalize: " + model.arch().model_type + " normalises what its attention and MLP write "
                     "(post-attention/feedforward norms), so no weight projection removes a direction; ablate it at "
                     "run time with --ablate instead");
  torch::NoGradGuard no_grad;
  const torch::Tensor u = unit_vector(direction, o.layer).to(model.device());
  model.untie_embeddings();  // the read-out keeps the original embedding
  auto& params = model.parameters();
  // embed_tokens (V, C): each row is a write into the residual stream.
  torch::Tensor& emb = params.at("model.embed_tokens.weight");
  emb = project_rows(emb.t(), u).t().contiguous();
  for (int64_t l = 0; l < model.config().num_hidden_layers; ++l)
    for (const char* m : {".self_attn.o_proj", ".mlp.down_proj"}) {
      const std::string name = "model.layers." + std::to_string(l) + m;
      torch::Tensor& w = params.at(name + ".weight");
      w = project_rows(w, u);
      auto b = params.find(name + ".bias");
      if (b != params.end()) b->second = project_rows(b->second, u);
    }
}

std::vector<std::string> orthogonalize_lora(LoraSet& lora, const Direction& direction, const OrthogonalizeOptions& o) {
  torch::NoGradGuard no_grad;
  const torch::Tensor u = unit_vector(direction, o.layer);
  std::vector<std::string> changed;
  for (auto& [name, m] : lora.modules) {
    if (!writes_residual(name)) continue;
    if (m.B.size(0) != u.size(0))
      throw InputError("orthogonalize: " + name + ".lora_B has " + std::to_string(m.B.size(0)) +
                       " rows but the direction has width " + std::to_string(u.size(0)));
    torch::Tensor b = m.B.to(torch::kFloat32);
    torch::Tensor projected = project_rows(b, u.to(b.device()));
    if (o.rescale) {
      const double before = b.norm().item<double>(), after = projected.norm().item<double>();
      if (after > 0) projected = projected * (before / after);
    }
    m.B = projected.to(m.B.dtype());
    changed.push_back(name);
  }
  return changed;
}

}  // namespace emlab
