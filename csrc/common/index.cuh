// 64-bit index math shared by the kernels.
#pragma once

#include <cstdint>

namespace conv2d_ext {

// Offset of element (a, b, c, d) of a 4-D tensor with element strides `st`.
__device__ __forceinline__ int64_t offset4(const int64_t (&st)[4], int64_t a, int64_t b, int64_t c, int64_t d) {
  return a * st[0] + b * st[1] + c * st[2] + d * st[3];
}

// Splits a linear index over a (d0, d1, d2, d3) box into its four coordinates, d3 fastest.
struct Coord4 { int64_t i0, i1, i2, i3; };
__device__ __forceinline__ Coord4 unravel4(int64_t idx, int64_t d1, int64_t d2, int64_t d3) {
  Coord4 c;
  c.i3 = idx % d3; idx /= d3;
  c.i2 = idx % d2; idx /= d2;
  c.i1 = idx % d1;
  c.i0 = idx / d1;
  return c;
}

// Walks output positions flattened as (n, p, q), q fastest, in fixed steps without a division per step:
// thread t of a block visits start = chunk_begin + t, then every `step` (the block size) positions.
struct PositionWalker {
  int64_t n, p, q;
  int64_t dn, dp, dq;
  int64_t P, Q;
  __device__ PositionWalker(int64_t start, int64_t step, int64_t P_, int64_t Q_) : P(P_), Q(Q_) {
    q = start % Q; start /= Q; p = start % P; n = start / P;
    dq = step % Q; step /= Q; dp = step % P; dn = step / P;
  }
  __device__ __forceinline__ void advance() {  // dq < Q and dp < P, so one carry each suffices
    q += dq; if (q >= Q) { q -= Q; ++p; }
    p += dp; if (p >= P) { p -= P; ++n; }
    n += dn;
  }
};

// Division and remainder by a fixed divisor d >= 1 without a divide instruction, for dividends in [0, 2^31):
// q = umulhi(n, m) >> shift with m = ceil(2^(31 + l) / d), l = ceil(log2 d) (m fits 32 bits; exact on that range).
struct FastDivmod {
  unsigned divisor = 1, multiplier = 0, shift = 0;
  FastDivmod() = default;
  __host__ __device__ explicit FastDivmod(unsigned d) : divisor(d) {
    unsigned l = 0;
    while ((uint64_t(1) << l) < d) ++l;
    multiplier = static_cast<unsigned>(((uint64_t(1) << (31 + l)) + d - 1) / d);
    shift = l;  // umulhi supplies 32 bits of the 31 + l
  }
  __device__ __forceinline__ unsigned div(unsigned n) const {
    return divisor == 1 ? n : (__umulhi(n, multiplier) >> (shift - 1));
  }
  __device__ __forceinline__ void divmod(unsigned n, unsigned& q, unsigned& r) const {
    q = div(n);
    r = n - q * divisor;
  }
};

}  // namespace conv2d_ext
