// The filter repacks on the CPU emulator: pack_taps_rows (CONV2D_EXT_PACK_ROWS=1, experimental) against the
// element-wise kernels (pack_filters_krsc, pack_filters_crsk) it replaces, bit for bit, on dense, grouped, sliced and
// flipped (negative tap strides) filters. Exits 1 on any difference.
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

// Both repacks of one filter tensor, each with the rows kernel off and on.
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
  const size_t total = size_t(sh.K) * Cg * sh.R * sh.S;
  std::vector<uint16_t> krsc[2], crsk[2];
  for (int rows = 0; rows < 2; ++rows) {
    setenv("CONV2D_EXT_PACK_ROWS", rows ? "1" : "0", 1);
    krsc[rows].assign(total + 8, 0xFFFF);
    const __half* filters = base;
    FilterStrides fs = in;
    repack_krsc<__half>(p, filters, fs, reinterpret_cast<__half*>(krsc[rows].data()), nullptr);
    crsk[rows].assign(size_t(sh.C) * sh.R * sh.S * Kg + 8, 0xFFFF);
    repack_crsk<__half>(base, in, reinterpret_cast<__half*>(crsk[rows].data()), sh.C, Cg, Kg, sh.R, sh.S, nullptr);
  }
  const bool ok_krsc = krsc[0] == krsc[1], ok_crsk = crsk[0] == crsk[1];
  failures += !ok_krsc + !ok_crsk;
  std::printf("%s K%d C%d g%d %dx%d%s: krsc %s, crsk %s\n", ok_krsc && ok_crsk ? "PASS" : "FAIL", sh.K, sh.C,
              sh.groups, sh.R, sh.S, sh.flip ? " flipped" : "", ok_krsc ? "same" : "DIFFERENT",
              ok_crsk ? "same" : "DIFFERENT");
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
