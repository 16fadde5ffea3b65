// The filter repacks on the CPU emulator (repack_krsc and repack_crsk: pack_taps_rows and pack_taps_tiles, by the
// strides) against the layouts' definitions written as plain loops, bit for bit, on KCRS and channels-last (KRSC)
// filters, dense, grouped, sliced and flipped (negative tap strides), every element of the destination (one past its
// end too) checked; and the NHWC copies of NCHW activations (launch_to_nhwc: to_nhwc_planes for planes of an odd
// number of pixels, to_nhwc_vec, to_nhwc) and the NCHW copy of a channels-last tensor (launch_to_nchw) against
// theirs. Exits 1 on any difference.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "implicit_gemm/backward_data.cuh"

using namespace conv2d_ext;
using namespace conv2d_ext::igemm;

namespace {

int failures = 0;

struct Shape {
  int K, C, groups, R, S;
  bool flip;  // the taps read backwards (r and s strides negative, the base at the last tap)
  bool krsc;  // channels-last filters (channels contiguous) instead of KCRS
  bool dense = false;  // no padded strides (KCRS: pack_taps_runs' runs; KCRS and KRSC: repack_crsk's transposition)
};

// Both repacks of one filter tensor of T (bits Bits) against their definitions.
template <typename T, typename Bits>
void check(const Shape& sh, std::mt19937& gen) {
  const int Cg = sh.C / sh.groups, Kg = sh.K / sh.groups;
  // KCRS with a padded channel stride (a sliced tensor), or KRSC with a padded pixel stride: k, c, r, s strides
  const int64_t ss = sh.krsc ? Cg + (sh.dense ? 0 : 3) : 1, sr = sh.S * ss,
                sc = sh.krsc ? 1 : int64_t(sh.R) * sh.S + (sh.dense ? 0 : 3),
                sk = sh.krsc ? sh.R * sr + (sh.dense ? 0 : 5) : sc * Cg + (sh.dense ? 0 : 5);
  std::vector<Bits> w(size_t(sk) * sh.K + 16);
  for (auto& v : w) v = Bits(gen());
  FilterStrides in{sk, sc, sr, ss};
  const T* base = reinterpret_cast<const T*>(w.data());
  if (sh.flip) {
    base += (sh.R - 1) * sr + (sh.S - 1) * ss;
    in.r = -sr, in.s = -ss;
  }
  ConvParams p{};
  p.K = sh.K, p.C = sh.C, p.groups = sh.groups, p.R = sh.R, p.S = sh.S;
  // the definitions: KRSC out[k][r][s][c] = w[k][c][r][s]; [C][R][S][K/groups]
  // out[c][r][s][k] = w[g Kg + k][c % Cg][r][s]
  const Bits* wb = reinterpret_cast<const Bits*>(base);
  std::vector<Bits> want_krsc(size_t(sh.K) * Cg * sh.R * sh.S + 8, Bits(~0u));
  std::vector<Bits> want_crsk(size_t(sh.C) * sh.R * sh.S * Kg + 8, Bits(~0u));
  for (int k = 0; k < sh.K; ++k)
    for (int c = 0; c < Cg; ++c)
      for (int r = 0; r < sh.R; ++r)
        for (int s = 0; s < sh.S; ++s) {
          const Bits v = wb[k * in.k + c * in.c + r * in.r + s * in.s];
          want_krsc[((size_t(k) * sh.R + r) * sh.S + s) * Cg + c] = v;
          const int g = k / Kg, cc = g * Cg + c;
          want_crsk[((size_t(cc) * sh.R + r) * sh.S + s) * Kg + (k - g * Kg)] = v;
        }
  std::vector<Bits> krsc(want_krsc.size(), Bits(~0u)), crsk(want_crsk.size(), Bits(~0u));
  const T* filters = base;
  FilterStrides fs = in;
  repack_krsc<T>(p, filters, fs, reinterpret_cast<T*>(krsc.data()), nullptr);
  repack_crsk<T>(base, in, reinterpret_cast<T*>(crsk.data()), sh.C, Cg, Kg, sh.R, sh.S, nullptr);
  const bool ok_krsc = krsc == want_krsc, ok_crsk = crsk == want_crsk;
  failures += !ok_krsc + !ok_crsk;
  std::printf("%s %zu-byte %s%s K%d C%d g%d %dx%d%s: krsc %s, crsk %s\n", ok_krsc && ok_crsk ? "PASS" : "FAIL",
              sizeof(T), sh.krsc ? "KRSC" : "KCRS", sh.dense ? " dense" : "", sh.K, sh.C, sh.groups, sh.R, sh.S,
              sh.flip ? " flipped" : "", ok_krsc ? "right" : "WRONG", ok_crsk ? "right" : "WRONG");
}

// The NHWC copy of an N x C x H x W tensor of T (bits) with an image stride padded by `pad` elements and its base
// `offset` elements into the allocation; `which` names the kernel launch_to_nhwc should pick (printed only).
template <typename T, typename Bits>
void check_to_nhwc(int N, int C, int H, int W, int pad, int offset, const char* which, std::mt19937& gen) {
  const int64_t HW = int64_t(H) * W, img = C * HW + pad;
  std::vector<Bits> x(size_t(offset + N * img + 8));
  for (auto& v : x) v = Bits(gen());
  const int64_t stride[4] = {img, HW, W, 1};
  const size_t total = size_t(N) * C * HW;
  std::vector<Bits> want(total + 8, Bits(~0u)), got(total + 8, Bits(~0u));
  const Bits* base = x.data() + offset;
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int64_t px = 0; px < HW; ++px) want[(n * HW + px) * C + c] = base[n * img + c * HW + px];
  launch_to_nhwc<T>(reinterpret_cast<const T*>(base), stride, reinterpret_cast<T*>(got.data()), N, C, H, W, nullptr);
  const bool ok = got == want;
  failures += !ok;
  std::printf("%s to_nhwc %zu-byte N%d C%d %dx%d pad%d offset%d (%s): %s\n", ok ? "PASS" : "FAIL", sizeof(T), N, C, H,
              W, pad, offset, which, ok ? "right" : "WRONG");
}

// The NCHW copy of a dense channels-last N x C x H x W tensor (launch_to_nchw: to_nhwc's kernels with the roles of
// channels and pixels swapped).
template <typename T, typename Bits>
void check_to_nchw(int N, int C, int H, int W, const char* which, std::mt19937& gen) {
  const int64_t HW = int64_t(H) * W;
  std::vector<Bits> x(size_t(N * HW * C + 8));
  for (auto& v : x) v = Bits(gen());
  const int64_t stride[4] = {HW * C, 1, W * int64_t(C), C};
  std::vector<Bits> want(x.size(), Bits(~0u)), got(x.size(), Bits(~0u));
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int64_t px = 0; px < HW; ++px) want[(int64_t(n) * C + c) * HW + px] = x[(n * HW + px) * C + c];
  launch_to_nchw<T>(reinterpret_cast<const T*>(x.data()), stride, reinterpret_cast<T*>(got.data()), N, C, H, W,
                    nullptr);
  const bool ok = got == want;
  failures += !ok;
  std::printf("%s to_nchw %zu-byte N%d C%d %dx%d (%s): %s\n", ok ? "PASS" : "FAIL", sizeof(T), N, C, H, W, which,
              ok ? "right" : "WRONG");
}

}  // namespace

int main() {
  std::mt19937 gen(7);
  const Shape shapes[] = {
      {64, 64, 1, 3, 3, false, false}, {70, 130, 1, 3, 3, false, false}, {64, 64, 1, 3, 3, true, false},
      {33, 66, 3, 5, 5, false, false}, {128, 3, 1, 7, 7, false, false}, {16, 200, 1, 1, 1, false, false},
      {48, 96, 2, 3, 1, true, false},  {8, 16, 4, 7, 7, true, false},
      {70, 300, 1, 3, 3, false, false}, {300, 64, 1, 3, 3, true, false},  // more than 256 i's (KRSC, then CRSK)
      // channels-last filters: backward-data's tiles reading along channels
      {64, 64, 1, 3, 3, true, true},   {70, 130, 1, 3, 3, true, true},  {33, 66, 3, 5, 5, true, true},
      {300, 64, 1, 3, 3, true, true},  {16, 200, 1, 1, 1, false, true}, {96, 48, 2, 3, 1, false, true},
  };
  setenv("CONV2D_EXT_PACK_TRANSPOSE", "0", 1);  // pack_taps (the transposition, the default, is checked below)
  setenv("CONV2D_EXT_PACK_PLANES", "0", 1);
  for (const Shape& s : shapes) check<__half, uint16_t>(s, gen);
  // dense KCRS (pack_taps_runs: runs along c for the KRSC repack, along k-major filters' c for the flipped CRSK one),
  // 16-bit and fp32: many o tiles, partial i tiles, groups, 7x7 and 1x1 taps, flipped
  const Shape dense[] = {
      {64, 64, 1, 3, 3, false, false, true},  {70, 130, 1, 3, 3, true, false, true},
      {33, 66, 3, 5, 5, true, false, true},   {128, 3, 1, 7, 7, false, false, true},
      {16, 200, 1, 1, 1, false, false, true}, {48, 96, 2, 3, 1, true, false, true},
      {8, 16, 4, 7, 7, true, false, true},    {300, 72, 1, 3, 3, true, false, true},
      {72, 300, 1, 3, 3, false, false, true}, {40, 512, 1, 3, 3, true, false, true},
      {96, 64, 2, 1, 3, false, false, true},
  };
  setenv("CONV2D_EXT_PACK_RUNS", "1", 1);  // pack_taps_runs (off by default: slower on the H100)
  for (const Shape& s : dense) check<__half, uint16_t>(s, gen);
  for (const Shape& s : dense) check<float, uint32_t>(s, gen);
  // repack_crsk's transposition (to_nhwc_vec with TapRows): dense KCRS and KRSC, flipped or not, grouped, K/groups
  // past one 64-channel tile and partial, 16-bit and fp32; shapes it cannot take (K/groups or C/groups R S not in
  // 16-byte vectors, 1x1) fall back to pack_taps
  setenv("CONV2D_EXT_PACK_RUNS", "0", 1);
  setenv("CONV2D_EXT_PACK_TRANSPOSE", "1", 1);
  setenv("CONV2D_EXT_PACK_PLANES", "1", 1);
  const Shape transposed[] = {
      {64, 64, 1, 3, 3, true, false, true},   {72, 64, 1, 3, 3, false, false, true},
      {136, 24, 1, 7, 7, true, false, true},  {128, 256, 2, 3, 3, true, false, true},
      {64, 64, 1, 3, 3, true, true, true},    {72, 40, 1, 3, 3, false, true, true},
      {128, 256, 2, 3, 3, true, true, true},  {48, 96, 3, 5, 3, true, true, true},
      {70, 130, 1, 3, 3, true, false, true},  {16, 200, 1, 1, 1, false, false, true},
  };
  for (const Shape& s : transposed) check<__half, uint16_t>(s, gen);
  for (const Shape& s : transposed) check<float, uint32_t>(s, gen);
  setenv("CONV2D_EXT_PACK_TRANSPOSE", "0", 1);
  check_to_nhwc<__half, uint16_t>(3, 512, 7, 7, 0, 0, "planes", gen);     // r50_3x3_512's maps, 8 blocks of channels
  check_to_nhwc<__half, uint16_t>(2, 72, 5, 5, 16, 8, "planes", gen);     // a partial block of 8 channels, padded images
  check_to_nhwc<float, uint32_t>(2, 136, 7, 7, 4, 4, "planes", gen);      // fp32: 4-byte loads before
  check_to_nhwc<__half, uint16_t>(2, 64, 14, 14, 0, 0, "vec, 8-byte loads", gen);
  setenv("CONV2D_EXT_TO_NHWC_PLANES", "1", 1);  // the planes copy for 8-byte loads too (r50_3x3_256's 14 x 14 maps)
  check_to_nhwc<__half, uint16_t>(2, 256, 14, 14, 0, 0, "planes (switch), 4 blocks of channels", gen);
  check_to_nhwc<__half, uint16_t>(3, 72, 6, 10, 16, 8, "planes (switch), a partial block, padded images", gen);
  unsetenv("CONV2D_EXT_TO_NHWC_PLANES");
  check_to_nhwc<__half, uint16_t>(2, 64, 21, 21, 0, 0, "vec, 2-byte loads: 441 planes too large", gen);
  check_to_nhwc<__half, uint16_t>(2, 64, 8, 8, 0, 0, "vec, 16-byte loads", gen);
  check_to_nhwc<__half, uint16_t>(2, 20, 7, 7, 0, 0, "to_nhwc: channels not in vectors", gen);
  check_to_nchw<__half, uint16_t>(2, 3, 8, 8, "planes of 3-channel pixels", gen);
  check_to_nchw<float, uint32_t>(2, 48, 7, 9, "vec", gen);
  std::printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
