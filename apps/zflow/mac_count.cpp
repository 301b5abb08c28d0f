#include "mac_count.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/record_function.h>

namespace zflow::cli {

namespace {

// RecordFunction's callbacks are plain function pointers: their state is thread-local.
thread_local int64_t counted_macs = 0;
thread_local int depth = 0;  // counted operations now running (to skip nested ones)

bool is_counted(const char* name) {
  for (const char* op : {"aten::mm", "aten::addmm", "aten::bmm", "aten::convolution"}) {
    if (std::strcmp(name, op) == 0) return true;
  }
  return false;
}

std::vector<int64_t> sizes_of(const c10::IValue& value) {
  if (!value.isTensor()) return {};
  return value.toTensor().sizes().vec();
}

/// Entry i of a convolution's stride, padding or dilation: one value stands for every
/// spatial dimension (as at::conv2d(x, w, b, 1, 1) gives it).
int64_t setting(const std::vector<int64_t>& values, size_t i, int64_t absent) {
  if (values.empty()) return absent;
  return values.size() == 1 ? values[0] : values.at(i);
}

/// Multiply-adds of one operation from its inputs' shapes (0 when they are not as expected).
int64_t macs_of(const at::RecordFunction& fn) {
  const auto inputs = fn.inputs();
  const std::string name = fn.name();
  // mm(a, b), addmm(c, a, b), bmm(a, b): a [.., n, k], b [.., k, m].
  const size_t first = name == "aten::addmm" ? 1 : 0;
  if (name != "aten::convolution") {
    if (inputs.size() < first + 2) return 0;
    const auto a = sizes_of(inputs[first]);
    const auto b = sizes_of(inputs[first + 1]);
    if (a.size() < 2 || b.size() < 2) return 0;
    int64_t batch = 1;
    for (size_t i = 0; i + 2 < a.size(); ++i) batch *= a[i];
    return batch * a[a.size() - 2] * a.back() * b.back();
  }
  // convolution(input, weight, bias, stride, padding, dilation, transposed, ...): every
  // output element costs weight.numel() / out_channels multiply-adds.
  if (inputs.size() < 6) return 0;
  const auto input = sizes_of(inputs[0]);
  const auto weight = sizes_of(inputs[1]);
  if (input.size() < 3 || weight.size() != input.size()) return 0;
  const auto stride = inputs[3].toIntVector();
  const auto padding = inputs[4].toIntVector();
  const auto dilation = inputs[5].toIntVector();
  int64_t macs = input[0];
  for (int64_t w : weight) macs *= w;  // out_channels · in_channels/groups · kernel
  for (size_t d = 2; d < input.size(); ++d) {
    const size_t i = d - 2;
    const int64_t s = setting(stride, i, 1);
    const int64_t p = setting(padding, i, 0);
    const int64_t l = setting(dilation, i, 1);
    macs *= (input[d] + 2 * p - l * (weight[d] - 1) - 1) / s + 1;
  }
  return macs;
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  if (!is_counted(fn.name())) return nullptr;
  if (depth++ == 0) counted_macs += macs_of(fn);
  return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* /*context*/) {
  if (is_counted(fn.name())) --depth;
}

}  // namespace

int64_t count_macs(const std::function<void()>& fn) {
  counted_macs = 0;
  depth = 0;
  const auto handle =
      at::addThreadLocalCallback(at::RecordFunctionCallback(&on_start, &on_end).needsInputs(true));
  try {
    fn();
  } catch (...) {
    at::removeCallback(handle);
    throw;
  }
  at::removeCallback(handle);
  return counted_macs;
}

}  // namespace zflow::cli
