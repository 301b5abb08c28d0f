#include "zflow/train/assignment.h"

#include <limits>

#include <ATen/ATen.h>

namespace zflow::train {

std::vector<int64_t> linear_assignment(const at::Tensor& cost) {
  TORCH_CHECK(cost.dim() == 2 && cost.size(0) == cost.size(1),
              "linear_assignment: the cost must be a square matrix, got ", cost.sizes());
  const at::Tensor c = cost.detach().to(at::kDouble).contiguous().cpu();
  TORCH_CHECK(at::isfinite(c).all().item<bool>(), "linear_assignment: the cost is not finite");
  const int64_t n = c.size(0);
  const double* a = c.data_ptr<double>();
  // Rows and columns are numbered from 1; row 0 and column 0 are the augmenting path's
  // virtual start. u, v: the dual potentials; p[j]: the row assigned to column j; way[j]:
  // the previous column on the shortest augmenting path to column j.
  const double infinity = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0.0), v(n + 1, 0.0);
  std::vector<int64_t> p(n + 1, 0), way(n + 1, 0);
  for (int64_t i = 1; i <= n; ++i) {
    p[0] = i;
    int64_t j0 = 0;
    std::vector<double> minv(n + 1, infinity);
    std::vector<char> used(n + 1, 0);
    // Dijkstra on reduced costs c[i][j] − u[i] − v[j] ≥ 0 until a free column is reached.
    do {
      used[j0] = 1;
      const int64_t i0 = p[j0];
      double delta = infinity;
      int64_t j1 = 0;
      const double* row = a + (i0 - 1) * n;
      for (int64_t j = 1; j <= n; ++j) {
        if (used[j]) continue;
        const double reduced = row[j - 1] - u[i0] - v[j];
        if (reduced < minv[j]) {
          minv[j] = reduced;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (int64_t j = 0; j <= n; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    // Flip the path: every column on it takes the row before it.
    do {
      const int64_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int64_t> column(n);
  for (int64_t j = 1; j <= n; ++j) column[p[j] - 1] = j - 1;
  return column;
}

}  // namespace zflow::train
