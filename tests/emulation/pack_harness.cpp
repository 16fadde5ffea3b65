// The filter repacks on the CPU emulator (repack_krsc and repack_crsk, both pack_taps_rows) against the layouts'
// definitions written as plain loops, bit for bit, on dense, grouped, sliced and flipped (negative tap strides)
// filters, every element of the destination (one past its end too) checked. Exits 1 on any difference.
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
};

// Both repacks of one filter tensor against their definitions.
void check(const Shape& sh, std::mt19937& gen) {
  const int Cg = sh.C / sh.groups, Kg = sh.K / sh.groups;
  // KCRS with a padded channel stride (a sliced tensor): k, c, r, s strides
  const int64_t ss = 1, sr = sh.S, sc = int64_t(sh.R) * sh.S + 3, sk = sc * Cg + 5;
  std::vector<uint16_t> w(size_t(sk) * sh.K + 16);
  for (auto& v : w) v = uint16_t(gen());
  FilterStrides in{sk, sc, sr, ss};
  const __half* base = reinterpret_cast<const __half*>(w.data());
  if (sh.flip) {
    base += (sh.R - 1) * sr + (sh.S - 1) * ss;
    in.r = -sr, in.s = -ss;
  }
  ConvParams p{};
  p.K = sh.K, p.C = sh.C, p.groups = sh.groups, p.R = sh.R, p.S = sh.S;
  // the definitions: KRSC out[k][r][s][c] = w[k][c][r][s]; [C][R][S][K/groups]
  // out[c][r][s][k] = w[g Kg + k][c % Cg][r][s]
  const uint16_t* wb = reinterpret_cast<const uint16_t*>(base);
  std::vector<uint16_t> want_krsc(size_t(sh.K) * Cg * sh.R * sh.S + 8, 0xFFFF);
  std::vector<uint16_t> want_crsk(size_t(sh.C) * sh.R * sh.S * Kg + 8, 0xFFFF);
  for (int k = 0; k < sh.K; ++k)
    for (int c = 0; c < Cg; ++c)
      for (int r = 0; r < sh.R; ++r)
        for (int s = 0; s < sh.S; ++s) {
          const uint16_t v = wb[k * in.k + c * in.c + r * in.r + s * in.s];
          want_krsc[((size_t(k) * sh.R + r) * sh.S + s) * Cg + c] = v;
          const int g = k / Kg, cc = g * Cg + c;
          want_crsk[((size_t(cc) * sh.R + r) * sh.S + s) * Kg + (k - g * Kg)] = v;
        }
  std::vector<uint16_t> krsc(want_krsc.size(), 0xFFFF), crsk(want_crsk.size(), 0xFFFF);
  const __half* filters = base;
  FilterStrides fs = in;
  repack_krsc<__half>(p, filters, fs, reinterpret_cast<__half*>(krsc.data()), nullptr);
  repack_crsk<__half>(base, in, reinterpret_cast<__half*>(crsk.data()), sh.C, Cg, Kg, sh.R, sh.S, nullptr);
  const bool ok_krsc = krsc == want_krsc, ok_crsk = crsk == want_crsk;
  failures += !ok_krsc + !ok_crsk;
  std::printf("%s K%d C%d g%d %dx%d%s: krsc %s, crsk %s\n", ok_krsc && ok_crsk ? "PASS" : "FAIL", sh.K, sh.C,
              sh.groups, sh.R, sh.S, sh.flip ? " flipped" : "", ok_krsc ? "right" : "WRONG",
              ok_crsk ? "right" : "WRONG");
}

}  // namespace

int main() {
  std::mt19937 gen(7);
  const Shape shapes[] = {
      {64, 64, 1, 3, 3, false}, {70, 130, 1, 3, 3, false}, {64, 64, 1, 3, 3, true},  {33, 66, 3, 5, 5, false},
      {128, 3, 1, 7, 7, false}, {16, 200, 1, 1, 1, false}, {48, 96, 2, 3, 1, true},  {8, 16, 4, 7, 7, true},
      {70, 300, 1, 3, 3, false}, {300, 64, 1, 3, 3, true},  // more than one block of 256 i's (KRSC, then CRSK)
  };
  for (const Shape& s : shapes) check(s, gen);
  std::printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
