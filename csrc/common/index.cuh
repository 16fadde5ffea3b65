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

// Activation coordinate (n, channel, row, col) of linear index `idx` over an N x Ch x Rows x Cols tensor,
// visited in memory order: channel fastest when channels_last, col fastest otherwise. Consecutive threads then
// write consecutive addresses of the tensor they produce.
struct ActCoord { int64_t n, c, h, w; };
__device__ __forceinline__ ActCoord unravel_activation(int64_t idx, int64_t Ch, int64_t Rows, int64_t Cols,
                                                       bool channels_last) {
  ActCoord a;
  if (channels_last) {
    const Coord4 t = unravel4(idx, Rows, Cols, Ch);
    a.n = t.i0; a.h = t.i1; a.w = t.i2; a.c = t.i3;
  } else {
    const Coord4 t = unravel4(idx, Ch, Rows, Cols);
    a.n = t.i0; a.c = t.i1; a.h = t.i2; a.w = t.i3;
  }
  return a;
}

}  // namespace conv2d_ext
