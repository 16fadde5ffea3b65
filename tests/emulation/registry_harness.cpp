// Every registered kernel on the CPU emulator (emu.h): for each problem of a small suite (first layer, dense, strided
// and dilated, 1x1, grouped, depthwise, C R S = 160), each dtype (fp64, exact fp32, TF32, fp16, bf16), layout (NCHW,
// NHWC) and pass, each kernel whose can_implement accepts it runs, against a float64 direct convolution of the same
// (dtype-rounded) inputs: outputs poisoned with NaN first, norm-wise relative error, every element finite, nothing
// written outside the output (poisoned padding around it); every other problem's tensors at base pointers a few
// elements off 16-byte alignment (the copy-engine kernels' launchers then take their fallbacks).
//
//   registry_harness [--suite=default|hopper] [FILTER...]   the kernels whose "name pass" (e.g. "implicit_gemm:128x128_tma
//   backward_weight") contains one of the FILTERs (all by default) on the suite: "hopper" has the shapes that take the copy-engine kernels' special paths (halo boxes,
//   NCHW read in place, the pointwise kernels, tiles with many k-tiles; from helper-18's tma_harness);
//   "random:COUNT:SEED" has COUNT random problems drawn as test_gpu_correctness.py's random_problem draws them.
//
// Backward-weight runs run twice, the second time with the grid's blocks
// in another order (EMU_BLOCK_ORDER): the results must be bit-identical (deterministic weight gradients).
//
// Prints one line per run (EMU_TRACE=1: and what it used: TMA loads, wgmma forms, ...), then per kernel how many
// runs it had; exits 1 if any run fails. The emulated GPU has
// EMU_SMS multiprocessors (default 3): persistent grids walk several tiles, split reductions split.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kernels.h"

using namespace conv2d_ext;

namespace {

struct Problem {
  int N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, groups;
  bool bias;
  int extra_h = 0, extra_w = 0;  // bottom / right padding past the top / left (F.conv2d's "same" for even filters)
};

enum class Mode { kFp64, kFp32, kTf32, kFp16, kBf16 };
const char* mode_name(Mode m) {
  static const char* names[] = {"fp64", "fp32", "tf32", "fp16", "bf16"};
  return names[int(m)];
}
DType dtype_of(Mode m) {
  if (m == Mode::kFp64) return DType::kFloat64;
  if (m == Mode::kFp16) return DType::kFloat16;
  return m == Mode::kBf16 ? DType::kBFloat16 : DType::kFloat32;
}
double tolerance(Mode m) {
  return m == Mode::kFp64 ? 1e-12 : m == Mode::kFp32 ? 2e-5 : m == Mode::kTf32 ? 5e-3 : 1e-2;
}

int esize(DType dt) { return dt == DType::kFloat64 ? 8 : dt == DType::kFloat32 ? 4 : 2; }

void to_bytes(double v, DType dt, unsigned char* out) {
  if (dt == DType::kFloat64) return (void)std::memcpy(out, &v, 8);
  if (dt == DType::kFloat32) {
    const float f = float(v);
    return (void)std::memcpy(out, &f, 4);
  }
  const uint16_t b = dt == DType::kFloat16 ? __half_raw(__float2half_rn(float(v))).x
                                           : __nv_bfloat16_raw(__float2bfloat16_rn(float(v))).x;
  std::memcpy(out, &b, 2);
}

double from_bytes(const unsigned char* in, DType dt) {
  if (dt == DType::kFloat64) {
    double v;
    std::memcpy(&v, in, 8);
    return v;
  }
  if (dt == DType::kFloat32) {
    float f;
    std::memcpy(&f, in, 4);
    return f;
  }
  uint16_t b;
  std::memcpy(&b, in, 2);
  return dt == DType::kFloat16 ? emu::half_bits(b) : emu::bf16_bits(b);
}

// A 4-D tensor of logical dims d[0..3] (n c h w, or k c r s), dense in NCHW or NHWC order, `offset` elements into a
// buffer with poisoned room after it too.
struct Tensor {
  int d[4];
  int64_t stride[4];
  DType dt;
  int offset;
  std::vector<unsigned char> buffer;
  Tensor(int a, int b, int c, int e, bool nhwc, DType t, int off) : d{a, b, c, e}, dt(t), offset(off) {
    if (nhwc) stride[1] = 1, stride[3] = b, stride[2] = int64_t(e) * b, stride[0] = int64_t(c) * e * b;
    else stride[3] = 1, stride[2] = e, stride[1] = int64_t(c) * e, stride[0] = int64_t(b) * c * e;
    buffer.assign(size_t(count() + offset + 16) * esize(t), 0);
  }
  int64_t count() const { return int64_t(d[0]) * d[1] * d[2] * d[3]; }
  unsigned char* at(int i, int j, int k, int l) {
    return buffer.data() + (offset + i * stride[0] + j * stride[1] + k * stride[2] + l * stride[3]) * esize(dt);
  }
  void* data() { return buffer.data() + offset * esize(dt); }
  double get(int i, int j, int k, int l) { return from_bytes(at(i, j, k, l), dt); }
  void set(int i, int j, int k, int l, double v) { to_bytes(v, dt, at(i, j, k, l)); }
  template <typename F>
  void each(F&& f) {
    for (int i = 0; i < d[0]; ++i)
      for (int j = 0; j < d[1]; ++j)
        for (int k = 0; k < d[2]; ++k)
          for (int l = 0; l < d[3]; ++l) f(i, j, k, l);
  }
  void random(std::mt19937& gen) {
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    each([&](int i, int j, int k, int l) { set(i, j, k, l, u(gen)); });
  }
  void poison() {
    unsigned char nan[8];
    to_bytes(std::nan(""), dt, nan);
    for (size_t e = 0; e + esize(dt) <= buffer.size(); e += esize(dt)) std::memcpy(buffer.data() + e, nan, esize(dt));
  }
};

int failures = 0;
std::map<std::string, int> runs;

struct Run {
  const KernelInfo* kernel;
  const Problem* problem;
  Mode mode;
  bool nhwc;
  bool aligned;  // base pointers 16-byte aligned (the copy engine's condition), or offset by a few elements
};

// "implicit_gemm:128x128_tma backward_weight": the name the run counts use and the command-line filters match.
std::string kernel_and_pass(const KernelInfo& k) {
  return kernel_name(k) + (k.pass == Pass::kForward ? " forward" : k.pass == Pass::kBackwardData ? " backward_data"
                                                                                                 : " backward_weight");
}

// rel: the norm-wise error against the larger of the reference's norm and the norm of sqrt(sum of squared terms) per
// element (`mag`: what the products' rounding scales with), so that sums which cancel below their terms' rounding
// noise (a few TF32 products on a tiny map) do not fail a correct kernel; a missing or wrong term still counts in full.
void report(const Run& r, Tensor& out, const std::vector<double>& ref, const std::vector<double>& mag,
            const std::vector<unsigned char>& poisoned) {
  double num = 0, den = 0, den_terms = 0;
  for (double m : mag) den_terms += m;
  bool finite = true;
  size_t i = 0;
  out.each([&](int a, int b, int c, int e) {
    const double v = out.get(a, b, c, e);
    finite = finite && std::isfinite(v);
    num += (v - ref[i]) * (v - ref[i]);
    den += ref[i] * ref[i];
    ++i;
  });
  // Elements outside the output (the padding, the offset) must still hold the poison.
  std::vector<unsigned char> outside = out.buffer, expected = poisoned;
  out.each([&](int a, int b, int c, int e) {
    const size_t at = size_t(out.at(a, b, c, e) - out.buffer.data());
    std::memset(outside.data() + at, 0, esize(out.dt));
    std::memset(expected.data() + at, 0, esize(out.dt));
  });
  const bool pads = outside == expected;
  den = std::max(den, den_terms);
  const double rel = std::sqrt(num / (den > 0 ? den : 1));
  const bool ok = finite && pads && rel < tolerance(r.mode);
  failures += !ok;
  const Problem& p = *r.problem;
  const char* pass = r.kernel->pass == Pass::kForward ? "forward" : r.kernel->pass == Pass::kBackwardData
                                                                        ? "backward_data"
                                                                        : "backward_weight";
  std::printf("%s %-32s %-15s %s %s N%d C%d %dx%d K%d %dx%d s%d,%d p%d,%d d%d,%d g%d: rel %.2e%s%s\n",
              ok ? "PASS" : "FAIL", kernel_name(*r.kernel).c_str(), pass, mode_name(r.mode), r.nhwc ? "nhwc" : "nchw",
              p.N, p.C, p.H, p.W, p.K, p.R, p.S, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw, p.groups, rel,
              finite ? "" : " NON-FINITE", pads ? "" : " WROTE-OUTSIDE");
  std::fflush(stdout);
}

void run_one(const Run& r, std::mt19937& gen) {
  const Problem& pb = *r.problem;
  const DType dt = dtype_of(r.mode);
  const int P = (pb.H + 2 * pb.ph + pb.extra_h - pb.dh * (pb.R - 1) - 1) / pb.sh + 1;
  const int Q = (pb.W + 2 * pb.pw + pb.extra_w - pb.dw * (pb.S - 1) - 1) / pb.sw + 1;
  const int Cg = pb.C / pb.groups, Kg = pb.K / pb.groups;
  const int a = r.aligned ? 16 : 0;  // offsets: 16 elements, or 3, 5, 7 and 1
  Tensor x(pb.N, pb.C, pb.H, pb.W, r.nhwc, dt, a ? a : 3), w(pb.K, Cg, pb.R, pb.S, r.nhwc, dt, a ? a : 5);
  Tensor y(pb.N, pb.K, P, Q, r.nhwc, dt, a ? a : 7), b(1, pb.K, 1, 1, false, dt, a ? a : 1);
  ConvParams p{};
  p.N = pb.N, p.C = pb.C, p.H = pb.H, p.W = pb.W, p.K = pb.K, p.R = pb.R, p.S = pb.S, p.P = P, p.Q = Q;
  p.groups = pb.groups;
  p.stride_h = pb.sh, p.stride_w = pb.sw, p.pad_h = pb.ph, p.pad_w = pb.pw, p.dil_h = pb.dh, p.dil_w = pb.dw;
  for (int i = 0; i < 4; ++i) p.x_stride[i] = x.stride[i], p.w_stride[i] = w.stride[i], p.y_stride[i] = y.stride[i];
  p.channels_last = r.nhwc;
  p.dtype = dt;
  p.allow_tf32 = r.mode == Mode::kTf32;
  p.sm = 90;
  p.x = x.data(), p.w = w.data(), p.y = y.data();
  const bool bias = pb.bias && r.kernel->pass == Pass::kForward;
  p.bias = bias ? b.data() : nullptr;
  if (!r.kernel->can_implement(p).empty()) return;

  auto input_at = [&](int pp, int q, int r_, int s, int& h, int& wc) {
    h = pp * pb.sh - pb.ph + r_ * pb.dh, wc = q * pb.sw - pb.pw + s * pb.dw;
    return h >= 0 && h < pb.H && wc >= 0 && wc < pb.W;
  };
  Tensor* out = nullptr;
  std::vector<double> ref, mag;  // mag: each element's sum of squared terms (report)
  if (r.kernel->pass == Pass::kForward) {
    x.random(gen), w.random(gen), b.random(gen), y.poison();
    out = &y;
    y.each([&](int n, int k, int pp, int q) {
      double sum = bias ? b.get(0, k, 0, 0) : 0.0, sq = sum * sum;
      const int g = k / Kg;
      for (int c = 0; c < Cg; ++c)
        for (int r_ = 0; r_ < pb.R; ++r_)
          for (int s = 0; s < pb.S; ++s) {
            int h, wc;
            if (!input_at(pp, q, r_, s, h, wc)) continue;
            const double t = x.get(n, g * Cg + c, h, wc) * w.get(k, c, r_, s);
            sum += t, sq += t * t;
          }
      ref.push_back(sum), mag.push_back(sq);
    });
  } else if (r.kernel->pass == Pass::kBackwardWeight) {
    x.random(gen), y.random(gen), w.poison();
    out = &w;
    w.each([&](int k, int c, int r_, int s) {
      double sum = 0, sq = 0;
      const int g = k / Kg;
      for (int n = 0; n < pb.N; ++n)
        for (int pp = 0; pp < P; ++pp)
          for (int q = 0; q < Q; ++q) {
            int h, wc;
            if (!input_at(pp, q, r_, s, h, wc)) continue;
            const double t = x.get(n, g * Cg + c, h, wc) * y.get(n, k, pp, q);
            sum += t, sq += t * t;
          }
      ref.push_back(sum), mag.push_back(sq);
    });
  } else {
    w.random(gen), y.random(gen), x.poison();
    out = &x;
    std::vector<double> dx(size_t(x.count()), 0.0), dx_sq(size_t(x.count()), 0.0);
    for (int n = 0; n < pb.N; ++n)
      for (int k = 0; k < pb.K; ++k)
        for (int pp = 0; pp < P; ++pp)
          for (int q = 0; q < Q; ++q) {
            const double d = y.get(n, k, pp, q);
            const int g = k / Kg;
            for (int c = 0; c < Cg; ++c)
              for (int r_ = 0; r_ < pb.R; ++r_)
                for (int s = 0; s < pb.S; ++s) {
                  int h, wc;
                  if (!input_at(pp, q, r_, s, h, wc)) continue;
                  const size_t at = ((size_t(n) * pb.C + g * Cg + c) * pb.H + h) * pb.W + wc;
                  const double t = d * w.get(k, c, r_, s);
                  dx[at] += t, dx_sq[at] += t * t;
                }
          }
    ref = dx, mag = dx_sq;
  }
  const std::vector<unsigned char> poisoned = out->buffer;
  std::vector<unsigned char> workspace(
      size_t(r.kernel->workspace_bytes ? r.kernel->workspace_bytes(p) : 0) + 64, 0xCD);
  emu::trace() = emu::Trace{};
  r.kernel->launch(p, workspace.data(), nullptr);
  ++runs[kernel_and_pass(*r.kernel)];
  report(r, *out, ref, mag, poisoned);
  if (std::getenv("EMU_TRACE")) emu::trace().print(kernel_name(*r.kernel).c_str());  // the paths the run took

  // Weight gradients must be bit-identical whatever order the blocks run in: again with the grid's blocks shuffled
  // (a float atomic or an arrival-order sum would differ).
  if (r.kernel->pass != Pass::kBackwardWeight) return;
  const std::vector<unsigned char> first = out->buffer;
  const char* order = std::getenv("EMU_BLOCK_ORDER");
  const std::string saved = order ? order : "";
  out->buffer = poisoned;
  std::fill(workspace.begin(), workspace.end(), 0xCD);
  setenv("EMU_BLOCK_ORDER", saved == "shuffle" ? "reverse" : "shuffle", 1);
  r.kernel->launch(p, workspace.data(), nullptr);
  if (order) setenv("EMU_BLOCK_ORDER", saved.c_str(), 1);
  else unsetenv("EMU_BLOCK_ORDER");
  if (out->buffer != first) {
    ++failures;
    std::printf("FAIL %-32s: NOT BIT-IDENTICAL with the blocks in another order\n", kernel_name(*r.kernel).c_str());
  }
}

// `count` random problems drawn as tests/test_gpu_correctness.py's random_problem draws them (groups 1, 1, 2 or 3,
// filters up to 5x5, dilation and stride up to 3, padding up to the dilated extent, maps up to 24 past it).
std::vector<Problem> random_problems(int count, unsigned seed) {
  std::mt19937 gen(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); };
  std::vector<Problem> out;
  for (int i = 0; i < count; ++i) {
    Problem p{};
    const int g_choices[4] = {1, 1, 2, 3};
    p.groups = g_choices[pick(0, 3)];
    p.R = pick(1, 5), p.S = pick(1, 5), p.dh = pick(1, 3), p.dw = pick(1, 3);
    const int eh = p.dh * (p.R - 1) + 1, ew = p.dw * (p.S - 1) + 1;
    p.ph = pick(0, eh), p.pw = pick(0, ew);
    p.H = pick(std::max(1, eh - 2 * p.ph), eh + 24), p.W = pick(std::max(1, ew - 2 * p.pw), ew + 24);
    p.N = pick(1, 3), p.C = p.groups * pick(1, 7), p.K = p.groups * pick(1, 7);
    p.sh = pick(1, 3), p.sw = pick(1, 3);
    p.bias = pick(0, 1) == 1;
    out.push_back(p);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> filters(argv + 1, argv + argc);
  bool hopper = false;
  int random_count = 0;
  unsigned random_seed = 1;
  if (!filters.empty() && filters[0].rfind("--suite=", 0) == 0) {
    hopper = filters[0] == "--suite=hopper";
    if (filters[0].rfind("--suite=random", 0) == 0) {  // --suite=random:COUNT:SEED
      random_count = 200;
      std::sscanf(filters[0].c_str(), "--suite=random:%d:%u", &random_count, &random_seed);
    }
    filters.erase(filters.begin());
  }
  auto wanted = [&](const std::string& name) {
    if (filters.empty()) return true;
    for (const std::string& f : filters)
      if (name.find(f) != std::string::npos) return true;
    return false;
  };
  // N C H W K R S sh sw ph pw dh dw groups bias
  static const Problem problems[] = {
      {2, 3, 23, 21, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1, true},    // a first layer (r50_conv1, small)
      {1, 16, 9, 10, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},    // dense 3x3
      {2, 32, 10, 12, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, false},  // dense 3x3, channels in 16-byte vectors
      {2, 8, 11, 13, 16, 3, 3, 2, 2, 2, 2, 2, 2, 1, true},    // strided and dilated
      {2, 64, 6, 7, 32, 1, 1, 1, 1, 0, 0, 1, 1, 1, false},    // 1x1
      {2, 8, 9, 8, 24, 1, 1, 3, 1, 0, 0, 1, 1, 1, false},     // 1x1, stride 3 along h
      {1, 32, 8, 9, 32, 3, 3, 1, 1, 1, 1, 1, 1, 4, true},     // grouped, 8 channels a group
      {1, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 32, false},   // grouped, 2 channels a group
      {2, 16, 9, 9, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16, true},    // depthwise 3x3
      {1, 8, 12, 12, 8, 7, 7, 1, 1, 3, 3, 1, 1, 8, false},    // depthwise 7x7
      {1, 8, 10, 9, 16, 5, 5, 2, 1, 2, 2, 1, 1, 8, false},    // depthwise, multiplier 2, stride 2 along h
      {1, 10, 8, 8, 16, 4, 4, 2, 1, 1, 2, 1, 1, 1, false},    // C R S = 160, asymmetric stride and padding
      {2, 3, 24, 22, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1, true},    // a first layer of even rows (im2col's runs)
      {2, 3, 16, 20, 32, 4, 4, 4, 4, 0, 0, 1, 1, 1, false},   // patchify 4x4, stride 4
      {1, 4, 10, 12, 16, 3, 3, 1, 1, 2, 1, 2, 1, 1, false},   // 4 channels, dilated along h (runs of odd parity)
  };
  static const Problem hopper_problems[] = {
      {2, 64, 16, 24, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},   // general path (5-row tiles)
      {1, 64, 4, 100, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, false},   // halo boxes (100-pixel rows)
      {1, 64, 9, 20, 128, 3, 3, 2, 2, 1, 1, 1, 1, 1, false},   // stride 2 (the copy engine's element strides)
      {2, 32, 2, 256, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},    // NCHW read in place (W >= 152, halo)
      {2, 72, 5, 7, 40, 1, 1, 1, 1, 0, 0, 1, 1, 1, false},     // 1x1, channels past a k-tile
      {1, 256, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, false},    // 36 k-tiles on one tile
      // NCHW outputs in boxes of whole rows (forward_tile; tma_tile alone: 1 x 7 x 18, 2 x 14 x 4 pixels)
      {36, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},    // 7 x 7 x 2 boxes (18 against 14 of 1 x 7 x 18)
      {5, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, false},  // 14 x 9 boxes (TF32: 14 x 8, 16-byte rows)
      {3, 48, 8, 8, 136, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},     // two images a box (the last one alone), 8-channel tail
      {2, 32, 9, 9, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, false},     // 81-pixel planes of 20 channels
      {2, 32, 14, 14, 72, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},    // 8 rows of 14 (TF32 and 16-bit), a 6-row last box
      {1, 40, 12, 60, 136, 3, 3, 2, 2, 1, 1, 1, 1, 1, false},  // stride 2: 4 rows of 30, 8-channel tail
      {2, 64, 8, 16, 128, 1, 1, 1, 1, 0, 0, 1, 1, 1, false},   // 1x1, H W = 128 (the pointwise kernels)
      {1, 72, 6, 20, 40, 1, 1, 1, 1, 0, 0, 1, 1, 1, true},     // 1x1, H W = 120, channels and filters partial
      {3, 32, 4, 36, 64, 1, 1, 1, 1, 0, 0, 1, 1, 1, false},    // 1x1, H W = 144 (two pixel tiles an image)
      {4, 136, 8, 32, 192, 1, 1, 1, 1, 0, 0, 1, 1, 1, true},   // 1x1, 24 items of 128x64 (persistent CTAs walk them)
      {7, 40, 6, 28, 136, 1, 1, 1, 1, 0, 0, 1, 1, 1, false},   // 1x1, 21-42 k-tiles: pointwise wgrad splits start mid-image
      {2, 264, 4, 20, 48, 1, 1, 1, 1, 0, 0, 1, 1, 1, false},   // 1x1, K <= 64: pointwise wgrad's 64 x 256 tiles, two of them
      // strided backward-data by stride phase on the copy-engine forward (backward_data_tma.cuh)
      {2, 64, 11, 13, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, true},    // phases of unequal sizes (odd maps)
      {1, 64, 9, 10, 64, 3, 3, 3, 3, 1, 1, 1, 1, 1, false},    // stride 3: one tap a phase
      {2, 64, 8, 9, 64, 4, 3, 2, 1, 0, 1, 1, 1, 1, false},     // stride 2 along h only, 4 rows of taps, no top padding
      {1, 128, 10, 10, 128, 3, 3, 2, 2, 0, 0, 1, 1, 2, false}, // grouped, no padding (rows past the last window: zeros)
      // 16-bit backward-weight reading the NCHW input in place (backward_weight_tma_nchw.cuh)
      {2, 64, 5, 64, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, false},   // 3 blocks a filter column: tiles of 2 and 1
      {1, 128, 6, 120, 72, 3, 5, 2, 1, 1, 2, 2, 1, 1, true},   // stride and dilation along h, 2 k-tiles a row, K % 64
      {2, 64, 4, 64, 96, 3, 3, 1, 1, 0, 1, 1, 3, 2, false},    // grouped (32 channels a group), dilation 3 along w
      // backward-weight on row-packed small maps (backward_weight_tma_nchw.cuh's RowPacking, under its rule: =auto)
      {24, 16, 9, 6, 72, 3, 3, 2, 1, 1, 1, 2, 2, 1, true},     // stride and dilation along h, dilation 2 along w
      {20, 64, 5, 5, 64, 3, 3, 1, 1, 1, 1, 1, 1, 2, false},    // grouped (32 channels a group: narrow tiles)
      {4, 16, 10, 11, 24, 4, 4, 1, 1, 1, 1, 1, 1, 1, false, 1, 1},  // "same" 4x4: right padding 2, left 1
      {6, 32, 6, 6, 64, 2, 2, 1, 1, 0, 1, 1, 3, 1, true, 1, 1},     // "same" 2x2, dilation 3 along w: right 2, left 1
      // TF32 backward-weight at a horizontal stride, on the input split by column phase (split_column_phases)
      {2, 40, 7, 37, 64, 3, 3, 1, 3, 1, 1, 1, 1, 1, false},   // stride 3 along w, odd width, partial channel chunk
      {1, 32, 6, 70, 72, 5, 3, 2, 2, 2, 2, 1, 2, 1, true},     // stride 2, dilation 2 along w, padding past the taps
      {2, 36, 6, 40, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, false},   // NCHW rows in 16-byte vectors (split_column_phases_rows)
      {1, 16, 5, 36, 24, 3, 3, 1, 3, 1, 1, 1, 1, 1, true},     // the same at stride 3, a partial last vector of phases
      {1, 24, 4, 48, 32, 1, 5, 1, 4, 0, 2, 1, 1, 1, false},    // stride 4, 1x5 taps
  };
  std::vector<Problem> suite(problems, problems + sizeof(problems) / sizeof(problems[0]));
  if (hopper) suite.assign(hopper_problems, hopper_problems + sizeof(hopper_problems) / sizeof(hopper_problems[0]));
  if (random_count > 0) suite = random_problems(random_count, random_seed);
  std::mt19937 gen(2024);
  for (const KernelInfo* kernel : registry()) {
    if (!wanted(kernel_and_pass(*kernel))) continue;  // e.g. "128x128_tma backward_weight", or "_tma"
    for (size_t i = 0; i < suite.size(); ++i)  // the default suite: every other problem at offset base pointers
      for (Mode mode : {Mode::kFp64, Mode::kFp32, Mode::kTf32, Mode::kFp16, Mode::kBf16})
        for (bool nhwc : {false, true}) run_one(Run{kernel, &suite[i], mode, nhwc, hopper || i % 2 == 0}, gen);
  }
  std::printf("runs per kernel:\n");
  for (const auto& [name, n] : runs) std::printf("  %s: %d\n", name.c_str(), n);
  std::printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
