// Fused CPU kernel of the monotonic rational-quadratic spline: Durkan, Bekasov, Murray &
// Papamakarios (2019), "Neural Spline Flows", §3.1 and Appendix A (arXiv:1906.04032). Eq. 4
// is the rational-quadratic map of a bin, eq. 5 its derivative; the inverse is the
// quadratic of Appendix A. docs/splines.md ("The fused kernel") has the derivations.
//
// rational_quadratic.cpp computes the spline as ~60 ATen operations, each a pass over
// tensors of [..., K…3K − 1] values. Here one loop over the elements does everything an
// element needs — softmax and minimum sizes, knots, derivatives, bin search, eq. 4 or the
// inverse root, eq. 5 — in a few kilobytes of stack scratch, and a second loop does the
// whole backward pass the same way. The autograd function saves only `inputs` and
// `params`: the backward pass recomputes each element's forward quantities (cheaper than
// storing ~4K + 10 numbers per element) and applies the chain rule analytically.
//
// Lanes. The loops take N elements at a time, one per lane of a GCC vector. One element
// alone is a long chain of dependent operations (softmax sum, cumulative sums, divisions,
// logarithm) that keeps the processor waiting on latencies; N independent ones in lanes
// run at the throughput of the vector units instead. Branches become per-lane selects, as
// in the reference's at::where, and a per-lane bin index gathers the knots. Two builds of
// the same code: SSE2 (every x86-64) with N = 4 float32 lanes (2 float64), and, chosen at
// run time where the CPU has it, AVX2 with N = 8 (4). Each lane computes the same
// operations in both, so both give the same bits. float32 exponentials and logarithms are
// polynomials on the lanes (below, within an ulp like SLEEF's); float64 calls glibc per
// lane.
//
// The kernel mirrors the reference operation by operation, in the same order and the same
// precision (float32 arithmetic for float32, with the cumulative sums accumulated in
// double as at::cumsum does on the CPU), so that both round alike; they differ only where
// the exponentials and logarithms (glibc or the polynomials here, SLEEF in ATen) round
// differently, by an ulp, and in the sum of the softmax's exponentials (in double here,
// see make_knots). All the numerics notes of rational_quadratic.cpp hold here as
// well: elements outside [−B, B] never reach the spline code (their lanes compute on a
// harmless 0 and are replaced by the identity, logabsdet 0 and zero parameter gradients),
// the bin search counts the knots 0..K−1 and clamps, points are computed from the nearer
// knot of their bin, θ and u are clamped into [0, 1] (and, as in autograd, the gradient of
// a clamped value is zero only where the clamp was active), and the inverse uses the
// cancellation-free discriminant and root.
//
// Compiled with -fno-math-errno (sqrt becomes one instruction), -ffp-contract=off (no
// fused multiply-adds: the reference's products and sums are rounded separately; the AVX2
// build does not enable FMA either) and -Wno-psabi (GCC notes that 32-byte vectors pass
// differently with AVX; they only pass between always-inlined functions of this file),
// see the top-level CMakeLists.txt; never -ffast-math, whose reassociation and
// finite-math assumptions would break the edge cases above.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "zflow/core/reference_gradients.h"
#include "zflow/functional/rational_quadratic.h"

// Everything that handles vectors is inlined into the loop of its build (SSE2 or AVX2),
// so that it is compiled for that instruction set.
#define ZFLOW_LANES inline __attribute__((always_inline))

namespace zflow::functional::detail {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ---------------------------------------------------------------------------------------
// Lanes and their arithmetic.

template <typename V>
using Element = std::decay_t<decltype(std::declval<V>()[0])>;
template <typename V>
constexpr int lane_count = static_cast<int>(sizeof(V) / sizeof(Element<V>));

// Double lanes, one register of the build wide (float64) or two (float32: as many lanes
// as a register of float32 holds). Two registers are a struct of two halves: as one
// double-width GCC vector, a value carried around a loop lives in memory and moves through
// general registers, which cost a third of the kernel's time. (The types are declared in
// these specializations rather than passed as template arguments: GCC drops the
// vector_size of a dependent typedef passed as a template argument.)
template <int Register, bool Split>
struct WideLanes;
template <int Register>
struct WideLanes<Register, false> {
  typedef double Wide __attribute__((vector_size(Register)));
  typedef int64_t WideMask __attribute__((vector_size(Register)));
};
#define ZFLOW_WIDE_OPERATOR(op)                                                                \
  friend ZFLOW_LANES Wide operator op(Wide a, Wide b) { return {a.lo op b.lo, a.hi op b.hi}; } \
  friend ZFLOW_LANES Wide operator op(Wide a, double b) { return {a.lo op b, a.hi op b}; }     \
  friend ZFLOW_LANES Wide operator op(double a, Wide b) { return {a op b.lo, a op b.hi}; }     \
  friend ZFLOW_LANES Wide& operator op##=(Wide& a, Wide b) {                                   \
    a = a op b;                                                                                \
    return a;                                                                                  \
  }
template <int Register>
struct WideLanes<Register, true> {
  typedef double Half __attribute__((vector_size(Register)));
  typedef int64_t HalfMask __attribute__((vector_size(Register)));
  struct WideMask {
    HalfMask lo, hi;
  };
  struct Wide {
    Half lo, hi;
    ZFLOW_WIDE_OPERATOR(+)
    ZFLOW_WIDE_OPERATOR(-)
    ZFLOW_WIDE_OPERATOR(*)
    ZFLOW_WIDE_OPERATOR(/)
    friend ZFLOW_LANES Wide operator-(Wide a) { return {-a.lo, -a.hi}; }
    friend ZFLOW_LANES Wide select(WideMask mask, Wide a, Wide b) {
      return {mask.lo ? a.lo : b.lo, mask.hi ? a.hi : b.hi};
    }
    friend ZFLOW_LANES Wide select(WideMask mask, Wide a, double b) {
      return {mask.lo ? a.lo : Half{} + b, mask.hi ? a.hi : Half{} + b};
    }
  };
};
#undef ZFLOW_WIDE_OPERATOR

// N lanes of T, as many as fill one vector register of the build: 16 bytes (SSE2) or 32
// (AVX2). V: one T per lane; M: per-lane masks (−1 true, 0 false) and bin indices,
// the type that comparisons of V give. Wide: double per lane, for either dtype: the
// accumulator of at::cumsum on the CPU (at::acc_type<T, false>, double for float), which
// the knots mirror, the sum of the softmax's exponentials, and the arithmetic of the
// backward pass. The backward need not mirror anything (autograd's chain of ~60 backward
// ops rounds differently anyway), and in float32 the softmax backward
// σ_l (g_l − Σ σ_i g_i) cancels heavily next to steep bins: double keeps the gradients at
// float32 accuracy there. WideMask: the masks of Wide. widen, narrow and widen_mask
// convert between them lane by lane.
template <typename Scalar, int Register>
struct Lanes {
  using T = Scalar;
  static constexpr int N = Register / sizeof(T);  // V fills one register of the build
  using Int = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef T V __attribute__((vector_size(Register)));
  typedef Int M __attribute__((vector_size(Register)));

  static constexpr int kWideHalves = sizeof(T) == 4 ? 2 : 1;
  static constexpr int kWideLanes = N / kWideHalves;  // per register of doubles
  using WideTypes = WideLanes<Register, kWideHalves == 2>;
  using Wide = typename WideTypes::Wide;
  using WideMask = typename WideTypes::WideMask;

  // Lanes [first, first + kWideLanes) of v.
  template <int first, typename X>
  static ZFLOW_LANES auto half(X v) {
    if constexpr (kWideLanes == 2) {
      return __builtin_shufflevector(v, v, first, first + 1);
    } else {
      return __builtin_shufflevector(v, v, first, first + 1, first + 2, first + 3);
    }
  }

  static ZFLOW_LANES Wide widen(V v) {
    if constexpr (kWideHalves == 2) {
      using Half = typename WideTypes::Half;
      return {__builtin_convertvector(half<0>(v), Half),
              __builtin_convertvector(half<kWideLanes>(v), Half)};
    } else {
      return __builtin_convertvector(v, Wide);
    }
  }
  static ZFLOW_LANES V narrow(Wide w) {
    if constexpr (kWideHalves == 2) {
      typedef T H __attribute__((vector_size(Register / 2)));
      const H lo = __builtin_convertvector(w.lo, H), hi = __builtin_convertvector(w.hi, H);
      if constexpr (kWideLanes == 2) {
        return __builtin_shufflevector(lo, hi, 0, 1, 2, 3);
      } else {
        return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7);
      }
    } else {
      return __builtin_convertvector(w, V);
    }
  }
  static ZFLOW_LANES WideMask widen_mask(M m) {
    if constexpr (kWideHalves == 2) {
      using HalfMask = typename WideTypes::HalfMask;
      return {__builtin_convertvector(half<0>(m), HalfMask),
              __builtin_convertvector(half<kWideLanes>(m), HalfMask)};
    } else {
      return __builtin_convertvector(m, WideMask);
    }
  }
};

template <typename V>
ZFLOW_LANES V splat(double s) {
  return V{} + static_cast<Element<V>>(s);
}
template <typename M, typename V>
ZFLOW_LANES V select(M mask, V a, V b) {
  return mask ? a : b;
}
template <typename M, typename V>
ZFLOW_LANES V select(M mask, V a, double b) {
  return mask ? a : splat<V>(b);
}
template <typename M, typename V>
ZFLOW_LANES V select(M mask, double a, V b) {
  return mask ? splat<V>(a) : b;
}
// Conversions between lanes of the same count (GCC's elementwise vector conversion).
template <typename To, typename From>
ZFLOW_LANES To convert(From v) {
  return __builtin_convertvector(v, To);
}
// The bits of one vector as another of the same size (GCC's vector cast).
template <typename To, typename From>
ZFLOW_LANES To bits_as(From v) {
  static_assert(sizeof(To) == sizeof(From));
  return (To)v;
}
template <typename V>
ZFLOW_LANES V clamp01(V v) {
  return select(v < 0, 0.0, select(v > 1, 1.0, v));
}
// table[index[l]][l] for each lane l: the per-lane gather of a knot or a parameter.
template <typename V, typename M>
ZFLOW_LANES V gather(const V* table, M index) {
  V r;
  for (int l = 0; l < lane_count<V>; ++l) r[l] = table[index[l]][l];
  return r;
}

// e^x. float32: Cody–Waite reduction e^x = 2^n e^r, |r| ≤ ln2/2, and the minimax
// polynomial of Cephes' expf (measured ≤ 0.98 ulp on [−87, 20]; glibc: 0.5); arguments are clamped
// into [−88, 88]: below, n reaches −127, whose exponent field 0 makes the scale 2^n a zero, so e^x
// = 0 where it is below 2⁻¹²⁶ (glibc and SLEEF give subnormals there, which vanish next to the
// minimum bin size anyway; callers never pass more than 20). Exact at 0: e^0 = 1, so a softmax over
// logits 0 and −1000 is exact, as ATen's is. float64: glibc per lane.
template <typename V>
ZFLOW_LANES V exp_lanes(V x) {
  if constexpr (std::is_same_v<Element<V>, float>) {
    typedef int32_t M __attribute__((vector_size(sizeof(V))));
    x = select(x < -88.0f, -88.0, select(x > 88.0f, 88.0, x));
    // n = round(x / ln 2) by the 1.5·2²³ shifter, exact for |n| < 2²²; r = x − n ln 2
    // with ln 2 split into a part whose product with n is exact and a correction.
    const V n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const V r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    V p = splat<V>(1.9875691500e-4);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const V y = p * (r * r) + r + 1.0f;
    const M exponent = (convert<M>(n) + 127) << 23;  // 2^n, 0 for n = −127
    return y * bits_as<V>(exponent);
  } else {
    for (int l = 0; l < lane_count<V>; ++l) x[l] = std::exp(x[l]);
    return x;
  }
}

// log x for normal x > 0. float32: x = m 2^e with m ∈ [√½, √2) and the Cephes logf
// polynomial in m − 1 (measured ≤ 0.8 ulp on [e⁻³⁰, e³⁰]). float64: glibc per lane.
template <typename V>
ZFLOW_LANES V log_lanes(V x) {
  if constexpr (std::is_same_v<Element<V>, float>) {
    typedef int32_t M __attribute__((vector_size(sizeof(V))));
    const M bits = bits_as<M>(x);
    M e = ((bits >> 23) & 0xff) - 126;
    V m = bits_as<V>((bits & 0x007fffff) | 0x3f000000);  // m ∈ [0.5, 1)
    const M low = m < 0.707106781186547524f;
    e = e + low;  // −1 where low: m → 2m
    m = select(low, m + m - 1.0f, m - 1.0f);
    const V z = m * m;
    V y = splat<V>(7.0376836292e-2);
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    const V fe = convert<V>(e);
    y = y + fe * -2.12194440e-4f;
    y = y - 0.5f * z;
    return m + y + fe * 0.693359375f;
  } else {
    for (int l = 0; l < lane_count<V>; ++l) x[l] = std::log(x[l]);
    return x;
  }
}

// log(1 + x) for x ≥ 0. float32: Goldberg's log(u)·x/(u − 1), u = 1 + x, which keeps the
// relative accuracy of small x (measured ≤ 2.5 ulps on [2⁻⁴⁰, e³⁰]). float64: glibc per
// lane.
template <typename V>
ZFLOW_LANES V log1p_lanes(V x) {
  if constexpr (std::is_same_v<Element<V>, float>) {
    const V u = x + 1.0f;
    const V d = u - 1.0f;
    return select(d == 0, x, log_lanes(u) * (x / select(d == 0, 1.0, d)));
  } else {
    for (int l = 0; l < lane_count<V>; ++l) x[l] = std::log1p(x[l]);
    return x;
  }
}

template <typename V>
ZFLOW_LANES V sqrt_lanes(V x) {
  for (int l = 0; l < lane_count<V>; ++l) x[l] = std::sqrt(x[l]);
  return x;
}

// Transposes N vectors of N lanes in place: a[i][j] becomes a[j][i] (N = 2, 4 or 8).
template <typename V>
ZFLOW_LANES void transpose(V* a) {
  if constexpr (lane_count<V> == 2) {
    const V t = __builtin_shufflevector(a[0], a[1], 0, 2);
    a[1] = __builtin_shufflevector(a[0], a[1], 1, 3);
    a[0] = t;
  } else if constexpr (lane_count<V> == 4) {
    const V t0 = __builtin_shufflevector(a[0], a[1], 0, 4, 1, 5);
    const V t1 = __builtin_shufflevector(a[2], a[3], 0, 4, 1, 5);
    const V t2 = __builtin_shufflevector(a[0], a[1], 2, 6, 3, 7);
    const V t3 = __builtin_shufflevector(a[2], a[3], 2, 6, 3, 7);
    a[0] = __builtin_shufflevector(t0, t1, 0, 1, 4, 5);
    a[1] = __builtin_shufflevector(t0, t1, 2, 3, 6, 7);
    a[2] = __builtin_shufflevector(t2, t3, 0, 1, 4, 5);
    a[3] = __builtin_shufflevector(t2, t3, 2, 3, 6, 7);
  } else {
    static_assert(lane_count<V> == 8);
    V t[8], u[8];
    for (int i = 0; i < 8; i += 2) {  // interleave pairs of rows within 128-bit halves
      t[i] = __builtin_shufflevector(a[i], a[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
      t[i + 1] = __builtin_shufflevector(a[i], a[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4) {  // then pairs of pairs
      u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
      u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
      u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
      u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (int i = 0; i < 4; ++i) {  // then the 128-bit halves
      a[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
      a[i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
  }
}

template <typename V, typename T>
ZFLOW_LANES V load_unaligned(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V, typename T>
ZFLOW_LANES void store_unaligned(T* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// ---------------------------------------------------------------------------------------
// Per call: constants and scratch.

// Up to this many bins a block's scratch (10K vectors: 20 KiB with 32-byte ones) lives on
// the stack; more bins get one heap buffer per parallel chunk, never one per element.
constexpr int64_t kStackBins = 64;

// Per-call constants, rounded to T the way ATen rounds a double scalar operand.
template <typename T>
struct Constants {
  int64_t bins;
  T bound, two_bound;
  T min_width, width_scale;    // min_bin_width, 1 − K·min_bin_width
  T min_height, height_scale;  // the same for the heights
  T min_derivative;

  Constants(int64_t k, const SplineOptions& o)
      : bins(k),
        bound(static_cast<T>(o.tail_bound)),
        two_bound(static_cast<T>(2.0 * o.tail_bound)),
        min_width(static_cast<T>(o.min_bin_width)),
        width_scale(static_cast<T>(1.0 - o.min_bin_width * static_cast<double>(k))),
        min_height(static_cast<T>(o.min_bin_height)),
        height_scale(static_cast<T>(1.0 - o.min_bin_height * static_cast<double>(k))),
        min_derivative(static_cast<T>(o.min_derivative)) {}

  int64_t param_count() const { return 3 * bins - 1; }
};

// Scratch of one block of N elements, one vector per parameter or knot: the params
// transposed (lane l holds element l's), the two softmaxes (kept for the backward pass),
// the two knot vectors and the parameter gradients.
template <typename L>
class Block {
 public:
  using V = typename L::V;
  explicit Block(int64_t bins) : bins_(bins), base_(stack_) {
    if (bins > kStackBins) {
      // Aligned by hand to 64 bytes: GCC gives a 32-byte vector type only 16-byte alignment
      // unless AVX is enabled where the type is defined, while the AVX2 build's loads and
      // stores of the scratch assume 32 (stack_ is aligned the same way).
      const size_t bytes = static_cast<size_t>(size(bins)) * sizeof(V);
      heap_.resize(bytes + 64);
      void* p = heap_.data();
      size_t space = heap_.size();
      base_ = static_cast<V*>(std::align(64, bytes, p, space));
    }
  }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
  V* raw() { return base_; }
  V* width_softmax() { return base_ + 3 * bins_ - 1; }
  V* height_softmax() { return width_softmax() + bins_; }
  V* x_knots() { return height_softmax() + bins_; }
  V* y_knots() { return x_knots() + bins_ + 1; }
  V* grad_raw() { return y_knots() + bins_ + 1; }

 private:
  static constexpr int64_t size(int64_t bins) { return 2 * (3 * bins - 1) + 4 * bins + 2; }

  int64_t bins_;
  V* base_;
  alignas(64) V stack_[size(kStackBins)];
  std::vector<unsigned char> heap_;
};

// Loads the block of elements first..first + N − 1 (those below n): inputs into lanes,
// params transposed into block.raw() (N parameters of the N rows at a time). Lanes past n
// get a NaN input (outside [−B, B], so they take the identity path) and zero params;
// returns the number of real lanes.
template <typename L>
ZFLOW_LANES int load_block(const typename L::T* inputs, const typename L::T* params, int64_t first,
                           int64_t n, int64_t stride, Block<L>& block, typename L::V& values) {
  using T = typename L::T;
  using V = typename L::V;
  constexpr int N = L::N;
  const int count = static_cast<int>(std::min<int64_t>(N, n - first));
  V* raw = block.raw();
  int64_t done = 0;
  if (count == N) {
    values = load_unaligned<V>(inputs + first);
    const T* rows = params + first * stride;
    for (; done + N <= stride; done += N) {
      V a[N];
      for (int l = 0; l < N; ++l) a[l] = load_unaligned<V>(rows + l * stride + done);
      transpose(a);
      for (int j = 0; j < N; ++j) raw[done + j] = a[j];
    }
  }
  for (int l = 0; l < N; ++l) {
    if (l < count) {
      if (count < N) values[l] = inputs[first + l];
      const T* row = params + (first + l) * stride;
      for (int64_t j = done; j < stride; ++j) raw[j][l] = row[j];
    } else {
      values[l] = std::numeric_limits<T>::quiet_NaN();
      for (int64_t j = 0; j < stride; ++j) raw[j][l] = T(0);
    }
  }
  return count;
}

// Writes the parameter gradients of a block back into rows, as load_block reads them.
template <typename L>
ZFLOW_LANES void store_gradients(const typename L::V* grad_raw, int count, int64_t first,
                                 int64_t stride, typename L::T* grad_params) {
  using V = typename L::V;
  constexpr int N = L::N;
  typename L::T* rows = grad_params + first * stride;
  int64_t done = 0;
  if (count == N) {
    for (; done + N <= stride; done += N) {
      V a[N];
      for (int j = 0; j < N; ++j) a[j] = grad_raw[done + j];
      transpose(a);
      for (int l = 0; l < N; ++l) store_unaligned(rows + l * stride + done, a[l]);
    }
  }
  for (int l = 0; l < count; ++l) {
    for (int64_t j = done; j < stride; ++j) rows[l * stride + j] = grad_raw[j][l];
  }
}

// ---------------------------------------------------------------------------------------
// Forward stages, each on all lanes.

// Stage 1 (§3.1): knots from unnormalised bin sizes, make_knots of the reference op for op.
// fractions = min + (1 − K·min)·softmax(raw); knot j = 2B·Σ_{l<j} fraction_l − B for
// j = 1..K−1, knot 0 = −B and knot K = +B exactly. The softmax is max-shifted and
// normalised by a reciprocal, as ATen's softmax kernel does, and left in `softmax`. Its sum
// is accumulated in double: ATen sums float32 in vector lanes (an error of about K/8 + 8
// ulps), a plain float32 sum would lose K ulps, double loses none.
template <typename L>
ZFLOW_LANES void make_knots(const typename L::V* raw, typename L::T min_size, typename L::T scale,
                            const Constants<typename L::T>& c, typename L::V* softmax,
                            typename L::V* knots) {
  using V = typename L::V;
  using Wide = typename L::Wide;
  const int64_t bins = c.bins;
  V top = raw[0];
  for (int64_t j = 1; j < bins; ++j) top = select(raw[j] > top, raw[j], top);
  Wide sum = {};
  for (int64_t j = 0; j < bins; ++j) {
    softmax[j] = exp_lanes(raw[j] - top);
    sum += L::widen(softmax[j]);
  }
  const V inverse_sum = L::narrow(1.0 / sum);
  Wide cumulative = {};
  knots[0] = splat<V>(-c.bound);
  for (int64_t j = 0; j + 1 < bins; ++j) {
    softmax[j] *= inverse_sum;
    cumulative += L::widen(min_size + scale * softmax[j]);
    knots[j + 1] = L::narrow(cumulative) * c.two_bound - c.bound;
  }
  softmax[bins - 1] *= inverse_sum;
  knots[bins] = splat<V>(c.bound);
}

// Stage 2: the bin of a value in [−B, B], search_bins of the reference: the number of knots
// 0..K−1 that are ≤ value, minus 1, clamped into [0, K−1] (+B falls into the last bin).
template <typename L>
ZFLOW_LANES typename L::M search_bin(const typename L::V* knots, int64_t bins,
                                     typename L::V value) {
  using M = typename L::M;
  M count = {};
  for (int64_t j = 0; j < bins; ++j) count -= value >= knots[j];  // masks are −1
  count -= 1;
  count = select(count < 0, M{}, count);
  const auto last = static_cast<typename L::Int>(bins - 1);
  return select(count > last, M{} + last, count);
}

// Stage 3 (§3.1): derivatives δ = min_derivative + softplus(raw) at the inner knots, 1 at
// ±B. softplus as at::softplus (β = 1, threshold 20): raw above 20, else log1p(exp(raw)),
// which neither overflows nor loses small values.
template <typename V>
ZFLOW_LANES V softplus(V x) {
  const V below = select(x > 20, 20.0, x);
  return select(x > 20, x, log1p_lanes(exp_lanes(below)));
}
// d softplus / dx times an incoming gradient g, as ATen's softplus_backward: g·z/(z + 1),
// in double.
template <typename L>
ZFLOW_LANES typename L::Wide softplus_backward(typename L::Wide g, typename L::V x) {
  using Wide = typename L::Wide;
  const Wide z = L::widen(exp_lanes(select(x > 20, 20.0, x)));
  return select(L::widen_mask(x > 20), g, g * z / (z + 1.0));
}
// The raw derivative parameter of knot `knot` in each lane (raw_derivatives[j − 1]
// belongs to knot j), 0 where that knot is ±B, whose derivative is the constant 1; `inner`
// tells which.
template <typename L>
ZFLOW_LANES typename L::V raw_derivative(const typename L::V* raw_derivatives, typename L::M knot,
                                         int64_t bins, typename L::M& inner) {
  inner = (knot >= 1) & (knot <= static_cast<typename L::Int>(bins - 1));
  typename L::V r;
  for (int l = 0; l < L::N; ++l) {
    r[l] = inner[l] ? raw_derivatives[knot[l] - 1][l] : typename L::T(0);
  }
  return r;
}

// Everything the backward pass needs of the forward pass, per lane: the point seen from
// the nearer knot of its bin (see `Side` in rational_quadratic.cpp).
template <typename L>
struct Point {
  using V = typename L::V;
  using M = typename L::M;
  M bin;            // k
  M right;          // the near knot is k + 1 (the bin is mirrored)
  V w, h, s;        // w_k, h_k, s_k = h_k / w_k
  V d_near, d_far;  // δ at the near and far knot of the bin
  V t;              // forward: θ, inverse: u = (y − y_near)/h_k; from the near knot, clamped
  M t_free;         // t's clamp into [0, 1] was inactive (its gradient passes)
  V theta;          // θ from the near knot (forward: = t; inverse: the root, clamped)
  M theta_free;     // inverse: the root's clamp was inactive
  V output, logabsdet;
};

// Stages 1–5 for the lanes of a block whose params are in block.raw(), with |value| ≤ B
// (other lanes compute on 0): the rational_quadratic_spline_reference arithmetic, operation
// for operation, with its at::where as per-lane selects.
template <typename L>
ZFLOW_LANES Point<L> evaluate(Block<L>& block, typename L::V value, bool inverse,
                              const Constants<typename L::T>& c) {
  using T = typename L::T;
  using V = typename L::V;
  using M = typename L::M;
  const int64_t bins = c.bins;
  V* x_knots = block.x_knots();
  V* y_knots = block.y_knots();
  make_knots<L>(block.raw(), c.min_width, c.width_scale, c, block.width_softmax(), x_knots);
  make_knots<L>(block.raw() + bins, c.min_height, c.height_scale, c, block.height_softmax(),
                y_knots);

  Point<L> p;
  const M k = search_bin<L>(inverse ? y_knots : x_knots, bins, value);
  p.bin = k;
  const V x_k = gather(x_knots, k), x_k1 = gather(x_knots, k + 1);
  const V y_k = gather(y_knots, k), y_k1 = gather(y_knots, k + 1);
  p.w = x_k1 - x_k;
  p.h = y_k1 - y_k;
  p.s = p.h / p.w;
  M inner_k, inner_k1;
  const V* raw_derivatives = block.raw() + 2 * bins;
  const V r_k = raw_derivative<L>(raw_derivatives, k, bins, inner_k);
  const V r_k1 = raw_derivative<L>(raw_derivatives, k + 1, bins, inner_k1);
  const V d_k = select(inner_k, c.min_derivative + softplus(r_k), 1.0);
  const V d_k1 = select(inner_k1, c.min_derivative + softplus(r_k1), 1.0);

  // The near knot: θ (forward) or u (inverse) above ½ measures from the right knot.
  V t_raw;
  if (!inverse) {
    const V theta = (value - x_k) / p.w;  // ξ of eq. 4
    p.right = theta > T(0.5);
    t_raw = select(p.right, (x_k1 - value) / p.w, theta);
  } else {
    const V u = (value - y_k) / p.h;
    p.right = u > T(0.5);
    t_raw = select(p.right, (y_k1 - value) / p.h, u);
  }
  p.t = clamp01(t_raw);
  p.t_free = (t_raw >= 0) & (t_raw <= 1);
  p.d_near = select(p.right, d_k1, d_k);
  p.d_far = select(p.right, d_k, d_k1);
  const V s = p.s, d_near = p.d_near, d_far = p.d_far;
  const V d_sum = d_near + d_far - T(2) * s;  // δ_{k+1} + δ_k − 2 s_k

  if (!inverse) {
    // Eq. 4 from the near knot: Δy = h_k θ [s_k θ + δ_near (1 − θ)] / [s_k + Σδ θ(1 − θ)].
    const V theta = p.t;
    p.theta = theta;
    p.theta_free = M{} - 1;
    const V delta =
        p.h * theta * (s * theta + d_near * (T(1) - theta)) / (s + d_sum * theta * (T(1) - theta));
    p.output = select(p.right, y_k1 - delta, y_k + delta);
  } else {
    // Appendix A divided by h_k, in the near-knot frame: with m = δ_near (1 − u) − δ_far u,
    // b = m + 2 s_k u, c = −s_k u, a = s_k − b and b² − 4ac = m² + 4 s_k² u (1 − u) (a sum
    // of squares). The root without cancellation: 2c / (−b − √·) for b ≥ 0, else
    // (√· − b) / 2a (rational_quadratic.cpp explains both choices); each branch's
    // denominator is 1 in the lanes of the other, as in the reference.
    const V u = p.t;
    const V m = d_near * (T(1) - u) - d_far * u;
    const V b = m + T(2) * s * u;
    const V cq = -s * u;
    const V a = s - b;
    const V discriminant = m * m + T(4) * (s * s) * u * (T(1) - u);
    const V root = sqrt_lanes(select(discriminant > 0, discriminant, 0.0));
    const M positive_b = b >= 0;
    const V stable = (T(2) * cq) / select(positive_b, -b - root, 1.0);
    const V classic = (root - b) / select(positive_b, 1.0, T(2) * a);
    const V theta_raw = select(positive_b, stable, classic);
    p.theta = clamp01(theta_raw);
    p.theta_free = (theta_raw >= 0) & (theta_raw <= 1);
    p.output = select(p.right, x_k1 - p.theta * p.w, x_k + p.theta * p.w);
  }

  // Eq. 5 from the near knot: dy/dx = s_k² [δ_far θ² + 2 s_k θ(1 − θ) + δ_near (1 − θ)²] /
  // [s_k + Σδ θ(1 − θ)]²; the inverse takes minus its log at the recovered θ.
  const V theta = p.theta;
  const V theta_one_minus = theta * (T(1) - theta);
  const V numerator = (s * s) * (d_far * (theta * theta) + T(2) * s * theta_one_minus +
                                 d_near * ((T(1) - theta) * (T(1) - theta)));
  const V denominator = s + d_sum * theta_one_minus;
  const V logabsdet = log_lanes(numerator) - T(2) * log_lanes(denominator);
  p.logabsdet = inverse ? -logabsdet : logabsdet;
  return p;
}

// ---------------------------------------------------------------------------------------
// Backward, in double lanes. In the near-knot frame with signed sizes W = x_far − x_near =
// ±w_k and H = y_far − y_near = ±h_k (s_k = H/W either way), eq. 4 reads
//   y = y_near + H φ(θ),   φ(θ) = θ P / D,   P = s θ + δ_near (1 − θ),
//   D = s + (δ_near + δ_far − 2s) θ(1 − θ),   θ = (x − x_near)/W,
// and the logabsdet (eq. 5) is L(θ) = log(s² M) − 2 log D, M = δ_far θ² + 2 s θ(1 − θ) +
// δ_near (1 − θ)². The partial derivatives of φ and L in closed forms whose terms share a
// sign where possible (q = θ(1 − θ)):
//   φ_θ = s M / D²                         (so dy/dx = s φ_θ: eq. 5)
//   φ_s = q [δ_far θ² − δ_near (1 − θ)²] / D²
//   φ_near = q (1 − θ) [s (1 − θ) + δ_far θ] / D²,   φ_far = −q θ P / D²
//   L_θ = 2 [δ_far θ + s (1 − 2θ) − δ_near (1 − θ)] / M − 2 (δ_near + δ_far − 2s)(1 − 2θ) / D
//   L_s = 2/s + 2q/M − 2(1 − 2q)/D,   L_near = (1 − θ)²/M − 2q/D,   L_far = θ²/M − 2q/D.
template <typename L>
struct Partials {
  using Wide = typename L::Wide;
  Wide phi, phi_theta, phi_s, phi_near, phi_far;
  Wide ld_theta, ld_s, ld_near, ld_far;
};

template <typename L>
ZFLOW_LANES Partials<L> partials(typename L::Wide theta, typename L::Wide s,
                                 typename L::Wide d_near, typename L::Wide d_far) {
  using Wide = typename L::Wide;
  const Wide one_minus = 1.0 - theta;
  const Wide q = theta * one_minus;
  const Wide d_sum = d_near + d_far - 2.0 * s;
  const Wide p = s * theta + d_near * one_minus;
  const Wide denominator = s + d_sum * q;
  const Wide m = d_far * theta * theta + 2.0 * s * q + d_near * one_minus * one_minus;
  const Wide inv_d = 1.0 / denominator;
  const Wide inv_d2 = inv_d * inv_d;
  const Wide inv_m = 1.0 / m;
  Partials<L> r;
  r.phi = theta * p * inv_d;
  r.phi_theta = s * m * inv_d2;
  r.phi_s = q * (d_far * theta * theta - d_near * one_minus * one_minus) * inv_d2;
  r.phi_near = q * one_minus * (s * one_minus + d_far * theta) * inv_d2;
  r.phi_far = -q * theta * p * inv_d2;
  const Wide slope = 1.0 - 2.0 * theta;
  r.ld_theta =
      2.0 * (d_far * theta + s * slope - d_near * one_minus) * inv_m - 2.0 * d_sum * slope * inv_d;
  r.ld_s = 2.0 / s + 2.0 * q * inv_m - 2.0 * (1.0 - 2.0 * q) * inv_d;
  r.ld_near = one_minus * one_minus * inv_m - 2.0 * q * inv_d;
  r.ld_far = theta * theta * inv_m - 2.0 * q * inv_d;
  return r;
}

// Gradients of each lane's g_y·output + g_l·logabsdet with respect to its input and the
// knots and derivatives at the ends of its bin (near/far).
template <typename L>
struct LocalGradients {
  using Wide = typename L::Wide;
  Wide input, x_near, x_far, y_near, y_far, d_near, d_far;
};

// The point's quantities in double lanes, with the signed sizes of the near-knot frame.
template <typename L>
struct WidePoint {
  using Wide = typename L::Wide;
  Wide W, H, s, t, theta, d_near, d_far;
  ZFLOW_LANES explicit WidePoint(const Point<L>& p) {
    const auto right = L::widen_mask(p.right);
    const Wide w = L::widen(p.w), h = L::widen(p.h);
    W = select(right, -w, w);
    H = select(right, -h, h);
    s = L::widen(p.s);
    t = L::widen(p.t);
    theta = L::widen(p.theta);
    d_near = L::widen(p.d_near);
    d_far = L::widen(p.d_far);
  }
};

// Forward map: t = θ = (x − x_near)/W, so ∂θ/∂x = 1/W, ∂θ/∂x_near = (θ − 1)/W,
// ∂θ/∂x_far = −θ/W; s = H/W, so ∂s/∂x_near = s/W = −∂s/∂x_far and ∂s/∂y_far = 1/W =
// −∂s/∂y_near; and y depends on y_near, y_far directly through y_near + H φ.
template <typename L>
ZFLOW_LANES LocalGradients<L> forward_gradients(const Point<L>& p, typename L::Wide g_y,
                                                typename L::Wide g_l) {
  using Wide = typename L::Wide;
  const WidePoint<L> q(p);
  const Wide theta = q.theta, s = q.s, W = q.W, H = q.H;
  const Partials<L> d = partials<L>(theta, s, q.d_near, q.d_far);
  const Wide g_theta =
      select(L::widen_mask(p.t_free), g_y * H * d.phi_theta + g_l * d.ld_theta, 0.0);
  const Wide g_s = g_y * H * d.phi_s + g_l * d.ld_s;
  LocalGradients<L> g;
  g.input = g_theta / W;
  g.x_near = (g_theta * (theta - 1.0) + g_s * s) / W;
  g.x_far = -(g_theta * theta + g_s * s) / W;
  g.y_near = g_y * (1.0 - d.phi) - g_s / W;
  g.y_far = g_y * d.phi + g_s / W;
  g.d_near = g_y * H * d.phi_near + g_l * d.ld_near;
  g.d_far = g_y * H * d.phi_far + g_l * d.ld_far;
  return g;
}

// Inverse map: x = x_near + W θ and logabsdet = −L(θ), where θ solves φ(θ) = u with
// u = (y − y_near)/H (Appendix A). By the implicit function theorem ∂θ/∂u = 1/φ_θ and
// ∂θ/∂z = −φ_z/φ_θ for z = s, δ_near, δ_far: the derivative of whichever root formula
// was used, without differentiating through the square root.
template <typename L>
ZFLOW_LANES LocalGradients<L> inverse_gradients(const Point<L>& p, typename L::Wide g_y,
                                                typename L::Wide g_l) {
  using Wide = typename L::Wide;
  const WidePoint<L> q(p);
  const Wide theta = q.theta, u = q.t, s = q.s, W = q.W, H = q.H;
  const Partials<L> d = partials<L>(theta, s, q.d_near, q.d_far);
  const Wide g_theta = select(L::widen_mask(p.theta_free), g_y * W - g_l * d.ld_theta, 0.0);
  const Wide g_phi = g_theta / d.phi_theta;  // gradient reaching φ(θ) = u
  const Wide g_u = select(L::widen_mask(p.t_free), g_phi, 0.0);
  const Wide g_s = -g_l * d.ld_s - g_phi * d.phi_s;
  LocalGradients<L> g;
  g.input = g_u / H;
  g.y_near = g_u * (u - 1.0) / H - g_s / W;
  g.y_far = -g_u * u / H + g_s / W;
  g.x_near = g_y * (1.0 - theta) + g_s * s / W;
  g.x_far = g_y * theta - g_s * s / W;
  g.d_near = -g_l * d.ld_near - g_phi * d.phi_near;
  g.d_far = -g_l * d.ld_far - g_phi * d.phi_far;
  return g;
}

// Stage 1 backward: gradients g_k, g_k1 of knots k and k + 1 to the raw sizes. Knots 0
// and K are the constants ∓B. Knot j = 2B·cumsum_{j−1} − B, so fraction l collects the
// gradient of every inner knot j > l; then the affine min-size map (× (1 − K·min)) and the
// softmax's Jacobian, ∂σ_l/∂raw_i = σ_l (δ_li − σ_i): grad_raw_l = σ_l (g_l − Σ_i σ_i g_i).
//
// Per lane the softmax's incoming gradient takes three values only (`before` for l < k,
// `at` for l = k, 0 above), so g_l − Σ σ_i g_i takes three: formed in double, where they
// cancel (next to a steep bin, g and the sum are large and nearly equal), then rounded
// once for the products with σ_l.
template <typename L>
ZFLOW_LANES void knot_backward(const typename L::V* softmax, typename L::M k, typename L::Wide g_k,
                               typename L::Wide g_k1, typename L::T scale,
                               const Constants<typename L::T>& c, typename L::V* grad_raw) {
  using V = typename L::V;
  using Wide = typename L::Wide;
  using I = typename L::Int;
  const int64_t bins = c.bins;
  const Wide from_k = select(L::widen_mask(k >= 1), g_k, 0.0);
  const Wide from_k1 = select(L::widen_mask(k + 1 <= static_cast<I>(bins - 1)), g_k1, 0.0);
  const double two_bound = c.two_bound;
  const Wide before = double(scale) * (two_bound * (from_k + from_k1));  // fractions l < k
  const Wide at = double(scale) * (two_bound * from_k1);                 // fraction k
  Wide weight_before = {};                                               // Σ_{l<k} σ_l
  for (int64_t l = 0; l < bins; ++l) {
    weight_before += L::widen(select(static_cast<I>(l) < k, softmax[l], 0.0));
  }
  const Wide dot = before * weight_before + at * L::widen(gather(softmax, k));
  const V below = L::narrow(before - dot), on = L::narrow(at - dot);
  const V above = L::narrow(-dot);
  for (int64_t l = 0; l < bins; ++l) {
    const V coefficient =
        select(static_cast<I>(l) < k, below, select(static_cast<I>(l) == k, on, above));
    grad_raw[l] = softmax[l] * coefficient;
  }
}

// Stage 3 backward: the inner-knot derivatives' raw parameters (raw 2K + j − 1 belongs to
// knot j, 1 ≤ j ≤ K − 1); only knots k and k + 1 of each lane get a gradient.
template <typename L>
ZFLOW_LANES void derivative_backward(const typename L::V* raw_derivatives, typename L::M k,
                                     typename L::Wide g_k, typename L::Wide g_k1, int64_t bins,
                                     typename L::V* grad_derivatives) {
  using V = typename L::V;
  using M = typename L::M;
  using I = typename L::Int;
  M inner_k, inner_k1;
  const V from_k =
      L::narrow(softplus_backward<L>(g_k, raw_derivative<L>(raw_derivatives, k, bins, inner_k)));
  const V from_k1 = L::narrow(
      softplus_backward<L>(g_k1, raw_derivative<L>(raw_derivatives, k + 1, bins, inner_k1)));
  for (int64_t j = 1; j <= bins - 1; ++j) {
    const I knot = static_cast<I>(j);
    grad_derivatives[j - 1] = select(knot == k, from_k, select(knot == k + 1, from_k1, 0.0));
  }
}

// ---------------------------------------------------------------------------------------
// Blocks of N elements. Elements outside [−B, B] (and NaN) are the identity tails.

template <typename L>
ZFLOW_LANES typename L::M inside(typename L::V values, const Constants<typename L::T>& c) {
  return (values >= -c.bound) & (values <= c.bound);
}

// Forward over blocks [begin, end).
template <typename L>
ZFLOW_LANES void forward_blocks(const typename L::T* inputs, const typename L::T* params,
                                typename L::T* outputs, typename L::T* logabsdet, int64_t n,
                                bool inverse, const Constants<typename L::T>& c, int64_t begin,
                                int64_t end) {
  using V = typename L::V;
  using M = typename L::M;
  const int64_t stride = c.param_count();
  Block<L> block(c.bins);
  for (int64_t b = begin; b < end; ++b) {
    const int64_t first = b * L::N;
    V values;
    const int count = load_block<L>(inputs, params, first, n, stride, block, values);
    const M in = inside<L>(values, c);
    const Point<L> p = evaluate<L>(block, select(in, values, 0.0), inverse, c);
    const V out = select(in, p.output, values);
    const V ld = select(in, p.logabsdet, 0.0);
    if (count == L::N) {
      store_unaligned(outputs + first, out);
      store_unaligned(logabsdet + first, ld);
    } else {
      for (int l = 0; l < count; ++l) {
        outputs[first + l] = out[l];
        logabsdet[first + l] = ld[l];
      }
    }
  }
}

// Backward over blocks [begin, end); grad_outputs / grad_logabsdet may be null (that
// output received no gradient).
template <typename L>
ZFLOW_LANES void backward_blocks(const typename L::T* inputs, const typename L::T* params,
                                 const typename L::T* grad_outputs,
                                 const typename L::T* grad_logabsdet, typename L::T* grad_inputs,
                                 typename L::T* grad_params, int64_t n, bool inverse,
                                 const Constants<typename L::T>& c, int64_t begin, int64_t end) {
  using V = typename L::V;
  using M = typename L::M;
  using Wide = typename L::Wide;
  using WideMask = typename L::WideMask;
  const int64_t bins = c.bins;
  const int64_t stride = c.param_count();
  Block<L> block(bins);
  for (int64_t b = begin; b < end; ++b) {
    const int64_t first = b * L::N;
    V values;
    const int count = load_block<L>(inputs, params, first, n, stride, block, values);
    V g_y = {}, g_l = {};
    for (int l = 0; l < count; ++l) {
      if (grad_outputs != nullptr) g_y[l] = grad_outputs[first + l];
      if (grad_logabsdet != nullptr) g_l[l] = grad_logabsdet[first + l];
    }
    // Lanes outside [−B, B] evaluate the spline at 0 with zero incoming gradients: their
    // parameter gradients come out exactly 0, their input gradient is g_y (identity).
    const M in = inside<L>(values, c);
    const Point<L> p = evaluate<L>(block, select(in, values, 0.0), inverse, c);
    const WideMask wide_in = L::widen_mask(in);
    const Wide gy = select(wide_in, L::widen(g_y), 0.0);
    const Wide gl = select(wide_in, L::widen(g_l), 0.0);
    const LocalGradients<L> g =
        inverse ? inverse_gradients<L>(p, gy, gl) : forward_gradients<L>(p, gy, gl);
    const V grad_input = select(in, L::narrow(g.input), g_y);
    // Near/far back to bin ends k/k + 1.
    const WideMask right = L::widen_mask(p.right);
    const Wide g_xk = select(right, g.x_far, g.x_near), g_xk1 = select(right, g.x_near, g.x_far);
    const Wide g_yk = select(right, g.y_far, g.y_near), g_yk1 = select(right, g.y_near, g.y_far);
    const Wide g_dk = select(right, g.d_far, g.d_near), g_dk1 = select(right, g.d_near, g.d_far);
    V* grad_raw = block.grad_raw();
    knot_backward<L>(block.width_softmax(), p.bin, g_xk, g_xk1, c.width_scale, c, grad_raw);
    knot_backward<L>(block.height_softmax(), p.bin, g_yk, g_yk1, c.height_scale, c,
                     grad_raw + bins);
    derivative_backward<L>(block.raw() + 2 * bins, p.bin, g_dk, g_dk1, bins, grad_raw + 2 * bins);
    for (int l = 0; l < count; ++l) grad_inputs[first + l] = grad_input[l];
    store_gradients<L>(grad_raw, count, first, stride, grad_params);
  }
}

// The two builds: SSE2 with 16-byte registers (4 float32 lanes, 2 float64), and AVX2 with
// 32-byte ones (8 and 4).
template <typename T>
using BaselineLanes = Lanes<T, 16>;
template <typename T>
using Avx2Lanes = Lanes<T, 32>;

// The AVX2 build exists on x86 only; elsewhere the baseline build (16-byte vectors, as
// NEON's) is all there is.
#if defined(__x86_64__) || defined(__i386__)
#define ZFLOW_AVX2 __attribute__((target("avx2")))
bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#else
#define ZFLOW_AVX2
bool cpu_has_avx2() { return false; }
#endif

template <typename T, typename... Args>
void forward_baseline(Args... args) {
  forward_blocks<BaselineLanes<T>>(args...);
}
template <typename T, typename... Args>
ZFLOW_AVX2 void forward_avx2(Args... args) {
  forward_blocks<Avx2Lanes<T>>(args...);
}
template <typename T, typename... Args>
void backward_baseline(Args... args) {
  backward_blocks<BaselineLanes<T>>(args...);
}
template <typename T, typename... Args>
ZFLOW_AVX2 void backward_avx2(Args... args) {
  backward_blocks<Avx2Lanes<T>>(args...);
}

// Blocks per parallel chunk: a few tens of µs of work (an element costs a few ns per
// parameter), so that the thread pool's overhead stays small.
int64_t grain_size(int64_t param_count, int lanes) {
  return std::max<int64_t>(1, at::internal::GRAIN_SIZE / (4 * lanes * param_count));
}

template <typename T>
void forward_loop(const T* inputs, const T* params, T* outputs, T* logabsdet, int64_t n,
                  bool inverse, const Constants<T>& c) {
  const bool avx2 = cpu_has_avx2();
  const int lanes = avx2 ? Avx2Lanes<T>::N : BaselineLanes<T>::N;
  const int64_t blocks = (n + lanes - 1) / lanes;
  at::parallel_for(0, blocks, grain_size(c.param_count(), lanes), [&](int64_t begin, int64_t end) {
    if (avx2) {
      forward_avx2<T>(inputs, params, outputs, logabsdet, n, inverse, c, begin, end);
    } else {
      forward_baseline<T>(inputs, params, outputs, logabsdet, n, inverse, c, begin, end);
    }
  });
}

template <typename T>
void backward_loop(const T* inputs, const T* params, const T* grad_outputs, const T* grad_logabsdet,
                   T* grad_inputs, T* grad_params, int64_t n, bool inverse, const Constants<T>& c) {
  const bool avx2 = cpu_has_avx2();
  const int lanes = avx2 ? Avx2Lanes<T>::N : BaselineLanes<T>::N;
  const int64_t blocks = (n + lanes - 1) / lanes;
  at::parallel_for(0, blocks, grain_size(c.param_count(), lanes), [&](int64_t begin, int64_t end) {
    if (avx2) {
      backward_avx2<T>(inputs, params, grad_outputs, grad_logabsdet, grad_inputs, grad_params, n,
                       inverse, c, begin, end);
    } else {
      backward_baseline<T>(inputs, params, grad_outputs, grad_logabsdet, grad_inputs, grad_params,
                           n, inverse, c, begin, end);
    }
  });
}

// ---------------------------------------------------------------------------------------
// Tensor level.

int64_t bins_of(const at::Tensor& params) { return (params.size(-1) + 1) / 3; }

SplineResult run_forward(const at::Tensor& inputs, const at::Tensor& params, bool inverse,
                         const SplineOptions& options) {
  const at::Tensor x = inputs.contiguous();
  const at::Tensor p = params.contiguous();
  at::Tensor outputs = at::empty(x.sizes(), x.options());
  at::Tensor logabsdet = at::empty(x.sizes(), x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rational_quadratic_spline_fused", [&] {
    const Constants<scalar_t> c(bins_of(p), options);
    forward_loop<scalar_t>(x.data_ptr<scalar_t>(), p.data_ptr<scalar_t>(),
                           outputs.data_ptr<scalar_t>(), logabsdet.data_ptr<scalar_t>(), x.numel(),
                           inverse, c);
  });
  return {outputs, logabsdet};
}

// {grad_inputs, grad_params}; at least one of the incoming gradients is defined.
std::pair<at::Tensor, at::Tensor> run_backward(const at::Tensor& inputs, const at::Tensor& params,
                                               const at::Tensor& grad_outputs,
                                               const at::Tensor& grad_logabsdet, bool inverse,
                                               const SplineOptions& options) {
  const at::Tensor x = inputs.contiguous();
  const at::Tensor p = params.contiguous();
  const at::Tensor gy = grad_outputs.defined() ? grad_outputs.contiguous() : at::Tensor();
  const at::Tensor gl = grad_logabsdet.defined() ? grad_logabsdet.contiguous() : at::Tensor();
  at::Tensor grad_inputs = at::empty(x.sizes(), x.options());
  at::Tensor grad_params = at::empty(p.sizes(), p.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rational_quadratic_spline_fused_backward", [&] {
    const Constants<scalar_t> c(bins_of(p), options);
    backward_loop<scalar_t>(x.data_ptr<scalar_t>(), p.data_ptr<scalar_t>(),
                            gy.defined() ? gy.data_ptr<scalar_t>() : nullptr,
                            gl.defined() ? gl.data_ptr<scalar_t>() : nullptr,
                            grad_inputs.data_ptr<scalar_t>(), grad_params.data_ptr<scalar_t>(),
                            x.numel(), inverse, c);
  });
  return {grad_inputs, grad_params};
}

// The autograd function: forward(inputs, params, inverse, options) → {outputs, logabsdet}.
struct FusedSpline : public torch::autograd::Function<FusedSpline> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& inputs,
                               const at::Tensor& params, bool inverse,
                               const SplineOptions& options) {
    ctx->save_for_backward({inputs, params});
    ctx->saved_data["inverse"] = inverse;
    ctx->saved_data["tail_bound"] = options.tail_bound;
    ctx->saved_data["min_bin_width"] = options.min_bin_width;
    ctx->saved_data["min_bin_height"] = options.min_bin_height;
    ctx->saved_data["min_derivative"] = options.min_derivative;
    // An output that receives no gradient arrives undefined instead of as a tensor of
    // zeros; the backward loop treats it as zero without reading memory.
    ctx->set_materialize_grads(false);
    SplineResult r = run_forward(inputs, params, inverse, options);
    return {r.outputs, r.logabsdet};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const bool inverse = ctx->saved_data["inverse"].toBool();
    SplineOptions options;
    options.tail_bound = ctx->saved_data["tail_bound"].toDouble();
    options.min_bin_width = ctx->saved_data["min_bin_width"].toDouble();
    options.min_bin_height = ctx->saved_data["min_bin_height"].toDouble();
    options.min_derivative = ctx->saved_data["min_derivative"].toDouble();
    const bool want_inputs = ctx->needs_input_grad(0);
    const bool want_params = ctx->needs_input_grad(1);
    if (!grads[0].defined() && !grads[1].defined()) {
      return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    if (at::GradMode::is_enabled()) {
      // create_graph: the fused backward is not differentiable; differentiate the
      // reference, whose first derivatives equal the fused ones to rounding.
      const auto g = reference_gradients(
          [&] {
            const SplineResult r =
                rational_quadratic_spline_reference(saved[0], saved[1], inverse, options);
            return std::vector<at::Tensor>{r.outputs, r.logabsdet};
          },
          {grads[0], grads[1]}, {saved[0], saved[1]}, {want_inputs, want_params});
      return {g[0], g[1], at::Tensor(), at::Tensor()};
    }
    auto [grad_inputs, grad_params] =
        run_backward(saved[0], saved[1], grads[0], grads[1], inverse, options);
    return {want_inputs ? grad_inputs : at::Tensor(), want_params ? grad_params : at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

}  // namespace

SplineResult rational_quadratic_spline_fused(const at::Tensor& inputs, const at::Tensor& params,
                                             bool inverse, const SplineOptions& options) {
  TORCH_CHECK(fused_spline_applies(inputs, params),
              "rational_quadratic_spline_fused: needs CPU float32/float64 tensors, got ",
              inputs.scalar_type(), " on ", inputs.device());
  // Without autograd there is no graph node to build.
  if (!at::GradMode::is_enabled() || !(inputs.requires_grad() || params.requires_grad())) {
    return run_forward(inputs, params, inverse, options);
  }
  variable_list r = FusedSpline::apply(inputs, params, inverse, options);
  return {r[0], r[1]};
}

}  // namespace zflow::functional::detail
