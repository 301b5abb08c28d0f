#pragma once
/// \file
/// The linear assignment problem: given an n × n cost matrix C, the permutation π that
/// minimises Σ_i C[i, π(i)]. Minibatch optimal-transport flow matching (Tong et al. 2023,
/// https://arxiv.org/abs/2302.00482, §3.2) pairs the noise and data points of a batch by it:
/// between two empirical measures of n equally weighted points, an optimal transport plan
/// is a permutation (Birkhoff-von Neumann), so exact OT on a minibatch is an assignment.
///
/// Solved exactly by the Hungarian method with potentials, in O(n³) time and O(n²) memory
/// (Kuhn 1955; the shortest-augmenting-path form of Jonker & Volgenant 1987): about 20 ms
/// for n = 256 on one core.
///
/// Example:
///
///     at::Tensor cost = at::cdist(x1, x0).pow(2);      // rows: data, columns: noise
///     std::vector<int64_t> column = zflow::train::linear_assignment(cost);
///     // data point x1[i] is paired with noise point x0[column[i]]

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace zflow::train {

/// For a square cost matrix [n, n] (any floating dtype, finite), the assignment `column`
/// with column[i] = the column given to row i, minimising Σ_i cost[i, column[i]]. TORCH_CHECK
/// for a non-square or non-finite matrix.
std::vector<int64_t> linear_assignment(const at::Tensor& cost);

}  // namespace zflow::train
