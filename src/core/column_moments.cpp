#include "zflow/core/column_moments.h"

#include <algorithm>

#include <ATen/ATen.h>

namespace zflow {

at::Tensor gather_rows(const at::Tensor& table, const at::Tensor& rows, int64_t begin,
                       int64_t count) {
  if (!rows.defined()) return table.narrow(0, begin, count);
  return table.index_select(0, rows.narrow(0, begin, count).to(table.device()));
}

ColumnMoments column_moments(const at::Tensor& table, const at::Tensor& rows, int64_t chunk_rows) {
  TORCH_CHECK(table.dim() == 2, "column_moments: the table must be [N, D], got ", table.sizes());
  TORCH_CHECK(chunk_rows > 0, "column_moments: chunk_rows must be positive");
  const int64_t n = rows.defined() ? rows.numel() : table.size(0);
  TORCH_CHECK(n > 0, "column_moments: no rows");
  ColumnMoments m;
  at::Tensor m2;
  for (int64_t begin = 0; begin < n; begin += chunk_rows) {
    const int64_t count = std::min(chunk_rows, n - begin);
    const at::Tensor chunk = gather_rows(table, rows, begin, count).to(at::kDouble);
    const at::Tensor lo = std::get<0>(chunk.min(0));
    const at::Tensor hi = std::get<0>(chunk.max(0));
    const at::Tensor mean = chunk.mean(0);
    if (m.count == 0) {
      m.min = lo;
      m.max = hi;
      m.mean = mean;
      m.std = count > 1 ? chunk.std(0, /*unbiased=*/false) : at::zeros_like(mean);
      m2 = (chunk - mean).pow(2).sum(0);
      m.count = count;
      continue;
    }
    // Chan et al.'s pairwise merge of (m.count, m.mean, m2) with this chunk.
    const at::Tensor chunk_m2 = (chunk - mean).pow(2).sum(0);
    const double na = static_cast<double>(m.count);
    const double nb = static_cast<double>(count);
    const double total = na + nb;
    const at::Tensor delta = mean - m.mean;
    m.mean = m.mean + delta * (nb / total);
    m2 = m2 + chunk_m2 + delta.pow(2) * (na * nb / total);
    m.min = at::minimum(m.min, lo);
    m.max = at::maximum(m.max, hi);
    m.count += count;
    m.std = (m2 / static_cast<double>(m.count)).sqrt();
  }
  return m;
}

}  // namespace zflow
