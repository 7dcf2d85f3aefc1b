// Cosine similarities between directions, per layer (see emlab/interp.h).
#include <cmath>
#include <sstream>

#include "emlab/error.h"
#include "emlab/interp.h"

namespace emlab {

Direction directions_combine(const std::vector<Direction>& directions, const std::vector<double>& weights,
                             const std::vector<std::string>& names) {
  if (directions.empty()) throw InputError("combine needs at least one direction");
  if (weights.size() != directions.size() || names.size() != directions.size())
    throw Error("directions_combine: one weight and one name per direction");
  const auto& first = directions[0];
  Direction out;
  out.vectors = torch::zeros_like(first.vectors, torch::kFloat64);
  for (const auto& [key, t] : first.extra) {
    bool everywhere = true;
    for (const auto& d : directions) everywhere = everywhere && d.extra.count(key) && d.extra.at(key).sizes() == t.sizes();
    if (everywhere) out.extra[key] = torch::zeros_like(t, torch::kFloat64);
  }
  for (size_t i = 0; i < directions.size(); ++i) {
    const auto& d = directions[i];
    if (d.vectors.sizes() != first.vectors.sizes())
      throw InputError(names[i] + ": shape (" + std::to_string(d.layers()) + ", " + std::to_string(d.hidden()) +
                       ") differs from " + names[0] + "'s (" + std::to_string(first.layers()) + ", " +
                       std::to_string(first.hidden()) + ")");
    out.vectors += weights[i] * d.vectors.to(torch::kFloat64);
    for (auto& [key, t] : out.extra) t += weights[i] * d.extra.at(key).to(torch::kFloat64);
  }
  out.vectors = out.vectors.to(torch::kFloat32);
  for (auto& [key, t] : out.extra) t = t.to(torch::kFloat32);
  out.info = {{"mode", "combination"}, {"sources", names}, {"weights", weights}};
  nlohmann::json parts = nlohmann::json::array();
  for (const auto& d : directions) parts.push_back(d.info);
  out.info["source_info"] = parts;
  return out;
}

DirectionComparison directions_compare(const std::vector<Direction>& directions, const std::vector<std::string>& names) {
  if (directions.size() != names.size()) throw Error("directions_compare: one name per direction");
  if (directions.size() < 2) throw InputError("compare needs at least two directions");
  const int64_t L = directions[0].layers(), C = directions[0].hidden();
  for (size_t i = 1; i < directions.size(); ++i)
    if (directions[i].layers() != L || directions[i].hidden() != C)
      throw InputError(names[i] + ": shape (" + std::to_string(directions[i].layers()) + ", " +
                       std::to_string(directions[i].hidden()) + ") differs from " + names[0] + "'s (" +
                       std::to_string(L) + ", " + std::to_string(C) + "): directions of different models");
  DirectionComparison c;
  c.names = names;
  const size_t K = directions.size();
  for (int64_t l = 0; l < L; ++l) {
    std::vector<torch::Tensor> unit;
    for (const auto& d : directions) {
      torch::Tensor v = d.vectors[l].to(torch::kFloat64);
      const double n = v.norm().item<double>();
      unit.push_back(n > 0 ? v / n : v);
    }
    std::vector<std::vector<double>> m(K, std::vector<double>(K, NAN));
    for (size_t i = 0; i < K; ++i)
      for (size_t j = 0; j < K; ++j)
        if (unit[i].norm().item<double>() > 0 && unit[j].norm().item<double>() > 0)
          m[i][j] = torch::dot(unit[i], unit[j]).item<double>();
    c.cosines.push_back(std::move(m));
  }
  return c;
}

std::string direction_comparison_csv(const DirectionComparison& c) {
  std::ostringstream o;
  o << "layer,a,b,cosine\n";
  o.precision(6);
  for (size_t l = 0; l < c.cosines.size(); ++l)
    for (size_t i = 0; i < c.names.size(); ++i)
      for (size_t j = 0; j < c.names.size(); ++j) o << l << "," << c.names[i] << "," << c.names[j] << "," << c.cosines[l][i][j] << "\n";
  return o.str();
}

}  // namespace emlab
