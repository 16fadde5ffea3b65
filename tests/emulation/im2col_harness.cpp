// implicit_gemm:im2col's three passes on the CPU emulator (emu.h), each against a float64 direct convolution of the
// same (dtype-rounded) inputs: outputs poisoned with NaN first, norm-wise relative error, every element finite.
// Prints one line per case and pass; exits 1 if any fails. `im2col_harness [small | index]`.
// The emulated GPU has EMU_SMS multiprocessors (default 3, two CTAs each): the persistent grids walk several tiles.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels.h"

using namespace conv2d_ext;

namespace {

struct Case {
  int N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw;
  bool nhwc;
  DType dt;
  bool bias;
};

int esize(DType dt) { return dt == DType::kFloat32 ? 4 : 2; }

uint32_t to_bits(double v, DType dt) {
  if (dt == DType::kFloat32) {
    float f = float(v);
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
  }
  if (dt == DType::kFloat16) return __half_raw(__float2half_rn(float(v))).x;
  return __nv_bfloat16_raw(__float2bfloat16_rn(float(v))).x;
}

double from_bits(uint32_t b, DType dt) {
  if (dt == DType::kFloat32) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  if (dt == DType::kFloat16) return emu::half_bits(b);
  return emu::bf16_bits(b);
}

// A 4-D tensor of logical dims d[0..3] (n c h w, or k c r s) in NCHW or NHWC order, `offset` elements into its
// buffer (an offset base pointer).
struct Tensor {
  int d[4];
  int64_t stride[4];
  DType dt;
  int offset = 3;
  std::vector<unsigned char> buffer;
  Tensor(int a, int b, int c, int e, bool nhwc, DType t) : d{a, b, c, e}, dt(t) {
    if (nhwc) stride[1] = 1, stride[3] = b, stride[2] = int64_t(e) * b, stride[0] = int64_t(c) * e * b;
    else stride[3] = 1, stride[2] = e, stride[1] = int64_t(c) * e, stride[0] = int64_t(b) * c * e;
    buffer.assign(size_t(int64_t(a) * b * c * e + offset + 8) * esize(t), 0);
  }
  int64_t at(int i, int j, int k, int l) const { return i * stride[0] + j * stride[1] + k * stride[2] + l * stride[3]; }
  void* data() { return buffer.data() + offset * esize(dt); }
  double get(int i, int j, int k, int l) const {
    const int64_t e = at(i, j, k, l) + offset;
    uint32_t b = 0;
    std::memcpy(&b, buffer.data() + e * esize(dt), esize(dt));
    return from_bits(b, dt);
  }
  void set(int i, int j, int k, int l, double v) {
    const int64_t e = at(i, j, k, l) + offset;
    const uint32_t b = to_bits(v, dt);
    std::memcpy(buffer.data() + e * esize(dt), &b, esize(dt));
  }
  void random(std::mt19937& gen) {
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    for (int i = 0; i < d[0]; ++i)
      for (int j = 0; j < d[1]; ++j)
        for (int k = 0; k < d[2]; ++k)
          for (int l = 0; l < d[3]; ++l) set(i, j, k, l, u(gen));
  }
  void poison() {  // NaN everywhere (the padding around the tensor too: a write outside it shows as a changed pad)
    for (size_t e = 0; e + esize(dt) <= buffer.size(); e += esize(dt)) {
      const uint32_t b = dt == DType::kFloat32 ? 0x7FC00000u : dt == DType::kFloat16 ? 0x7E00u : 0x7FC0u;
      std::memcpy(buffer.data() + e, &b, esize(dt));
    }
  }
};

const char* dtype_name(DType dt) {
  return dt == DType::kFloat32 ? "tf32" : dt == DType::kFloat16 ? "fp16" : "bf16";
}

int failures = 0;

void report(const Case& c, const char* pass, const Tensor& out, const std::vector<double>& ref, double tol,
            const Tensor& untouched_pad) {
  double num = 0, den = 0;
  bool finite = true;
  size_t i = 0;
  for (int a = 0; a < out.d[0]; ++a)
    for (int b = 0; b < out.d[1]; ++b)
      for (int e = 0; e < out.d[2]; ++e)
        for (int f = 0; f < out.d[3]; ++f, ++i) {
          const double v = out.get(a, b, e, f);
          if (!std::isfinite(v)) finite = false;
          num += (v - ref[i]) * (v - ref[i]);
          den += ref[i] * ref[i];
        }
  // The poisoned bytes before and after the tensor must still be poison.
  const int es = esize(out.dt);
  bool pads = std::memcmp(out.buffer.data(), untouched_pad.buffer.data(), size_t(out.offset) * es) == 0;
  const size_t end = size_t(out.offset) * es + size_t(int64_t(out.d[0]) * out.d[1] * out.d[2] * out.d[3]) * es;
  pads = pads && std::memcmp(out.buffer.data() + end, untouched_pad.buffer.data() + end, out.buffer.size() - end) == 0;
  const double rel = std::sqrt(num / (den > 0 ? den : 1));
  const bool ok = finite && pads && rel < tol;
  failures += !ok;
  std::printf("%s %-15s %s %s N%d C%d %dx%d K%d %dx%d s%d,%d p%d,%d d%d,%d%s: rel %.2e%s%s\n", ok ? "PASS" : "FAIL",
              pass, dtype_name(c.dt), c.nhwc ? "nhwc" : "nchw", c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.sh, c.sw, c.ph,
              c.pw, c.dh, c.dw, c.bias ? " bias" : "", rel, finite ? "" : " NON-FINITE", pads ? "" : " WROTE-OUTSIDE");
  std::fflush(stdout);
}

ConvParams params(const Case& c, Tensor& x, Tensor& w, Tensor& y, const void* bias) {
  ConvParams p{};
  p.N = c.N, p.C = c.C, p.H = c.H, p.W = c.W, p.K = c.K, p.R = c.R, p.S = c.S;
  p.P = y.d[2], p.Q = y.d[3];
  p.groups = 1;
  p.stride_h = c.sh, p.stride_w = c.sw, p.pad_h = c.ph, p.pad_w = c.pw, p.dil_h = c.dh, p.dil_w = c.dw;
  for (int i = 0; i < 4; ++i) p.x_stride[i] = x.stride[i], p.w_stride[i] = w.stride[i], p.y_stride[i] = y.stride[i];
  p.channels_last = c.nhwc;
  p.dtype = c.dt;
  p.allow_tf32 = true;
  p.sm = 90;
  p.x = x.data(), p.w = w.data(), p.y = y.data();
  p.bias = bias;
  return p;
}

void run(const KernelInfo& kernel, const ConvParams& p) {
  const std::string why = kernel.can_implement(p);
  if (!why.empty()) {
    std::printf("REFUSED: %s\n", why.c_str());
    ++failures;
    return;
  }
  std::vector<unsigned char> workspace(kernel.workspace_bytes ? size_t(kernel.workspace_bytes(p)) + 16 : 16, 0xCD);
  kernel.launch(p, workspace.data(), nullptr);
}

void check(const Case& c, std::mt19937& gen) {
  const int P = (c.H + 2 * c.ph - c.dh * (c.R - 1) - 1) / c.sh + 1;
  const int Q = (c.W + 2 * c.pw - c.dw * (c.S - 1) - 1) / c.sw + 1;
  Tensor x(c.N, c.C, c.H, c.W, c.nhwc, c.dt), w(c.K, c.C, c.R, c.S, c.nhwc, c.dt), y(c.N, c.K, P, Q, c.nhwc, c.dt);
  Tensor b(1, c.K, 1, 1, false, c.dt);
  auto x_at = [&](const Tensor& t, int n, int ch, int pp, int q, int r, int s, int& h, int& wc) {
    h = pp * c.sh - c.ph + r * c.dh, wc = q * c.sw - c.pw + s * c.dw;
    return h >= 0 && h < c.H && wc >= 0 && wc < c.W;
    (void)t, (void)n, (void)ch;
  };
  // forward
  {
    x.random(gen), w.random(gen), b.random(gen);
    y.poison();
    Tensor pad = y;
    std::vector<double> ref;
    for (int n = 0; n < c.N; ++n)
      for (int k = 0; k < c.K; ++k)
        for (int pp = 0; pp < P; ++pp)
          for (int q = 0; q < Q; ++q) {
            double sum = c.bias ? b.get(0, k, 0, 0) : 0.0;
            for (int ch = 0; ch < c.C; ++ch)
              for (int r = 0; r < c.R; ++r)
                for (int s = 0; s < c.S; ++s) {
                  int h, wc;
                  if (x_at(x, n, ch, pp, q, r, s, h, wc)) sum += x.get(n, ch, h, wc) * w.get(k, ch, r, s);
                }
            ref.push_back(sum);
          }
    run(forward_implicit_gemm_im2col, params(c, x, w, y, c.bias ? b.data() : nullptr));
    report(c, "forward", y, ref, c.dt == DType::kFloat32 ? 5e-3 : 1e-2, pad);
  }
  // backward-weight: dw = sum over pixels of dy x
  {
    x.random(gen), y.random(gen);
    w.poison();
    Tensor pad = w;
    std::vector<double> ref;
    for (int k = 0; k < c.K; ++k)
      for (int ch = 0; ch < c.C; ++ch)
        for (int r = 0; r < c.R; ++r)
          for (int s = 0; s < c.S; ++s) {
            double sum = 0;
            for (int n = 0; n < c.N; ++n)
              for (int pp = 0; pp < P; ++pp)
                for (int q = 0; q < Q; ++q) {
                  int h, wc;
                  if (x_at(x, n, ch, pp, q, r, s, h, wc)) sum += x.get(n, ch, h, wc) * y.get(n, k, pp, q);
                }
            ref.push_back(sum);
          }
    run(backward_weight_implicit_gemm_im2col, params(c, x, w, y, nullptr));
    report(c, "backward_weight", w, ref, c.dt == DType::kFloat32 ? 5e-3 : 1e-2, pad);
  }
  // backward-data: dx = sum over taps of dy w
  if (c.K <= 64) {
    w.random(gen), y.random(gen);
    x.poison();
    Tensor pad = x;
    std::vector<double> ref(size_t(c.N) * c.C * c.H * c.W, 0.0);
    for (int n = 0; n < c.N; ++n)
      for (int ch = 0; ch < c.C; ++ch)
        for (int pp = 0; pp < P; ++pp)
          for (int q = 0; q < Q; ++q)
            for (int r = 0; r < c.R; ++r)
              for (int s = 0; s < c.S; ++s) {
                int h, wc;
                if (!x_at(x, n, ch, pp, q, r, s, h, wc)) continue;
                double acc = 0;
                for (int k = 0; k < c.K; ++k) acc += y.get(n, k, pp, q) * w.get(k, ch, r, s);
                ref[((size_t(n) * c.C + ch) * c.H + h) * c.W + wc] += acc;
              }
    run(backward_data_implicit_gemm_im2col, params(c, x, w, y, nullptr));
    report(c, "backward_data", x, ref, c.dt == DType::kFloat32 ? 5e-3 : 1e-2, pad);
  }
}

}  // namespace

int main(int argc, char** argv) {
  setenv("CONV2D_EXT_IM2COL", "1", 1);
  std::mt19937 gen(1234);
  const DType dts[3] = {DType::kFloat16, DType::kBFloat16, DType::kFloat32};
  // N C H W K R S sh sw ph pw dh dw
  const Case shapes[] = {
      {2, 3, 23, 21, 64, 7, 7, 2, 2, 3, 3, 1, 1, false, DType::kFloat16, true},  // r50_conv1, small
      {1, 4, 13, 11, 70, 3, 3, 1, 1, 1, 1, 1, 1, false, DType::kFloat16, false},  // K past one channel tile
      {3, 1, 9, 17, 8, 5, 5, 1, 2, 0, 2, 2, 1, false, DType::kFloat16, true},     // dilation, stride 2 along w
      {1, 10, 8, 8, 16, 4, 4, 2, 1, 1, 2, 1, 1, false, DType::kFloat16, false},   // C R S = 160
      {2, 2, 6, 5, 24, 1, 1, 3, 1, 0, 0, 1, 1, false, DType::kFloat16, false},    // 1x1, stride 3 along h
      // r50_conv1's layer on 64 x 64 images: forward 32 pixel tiles on 6 CTAs, backward-weight 6 splits of the
      // pixel tiles (finish_splits), backward-data 96 dx tiles
      {4, 3, 64, 64, 64, 7, 7, 2, 2, 3, 3, 1, 1, false, DType::kFloat16, true},
  };
  // "small": every shape but the last (the AddressSanitizer run); a number: that one (case, dtype, layout) only.
  const bool small = argc > 1 && std::strcmp(argv[1], "small") == 0;
  const int only = argc > 1 && !small ? std::atoi(argv[1]) : -1;
  const int count = int(sizeof(shapes) / sizeof(shapes[0])) - (small ? 1 : 0);
  int index = 0;
  for (const Case& s : std::vector<Case>(shapes, shapes + count))
    for (DType dt : dts)
      for (bool nhwc : {false, true}) {
        if (only >= 0 && index++ != only) continue;
        Case c = s;
        c.dt = dt, c.nhwc = nhwc;
        check(c, gen);
      }
  std::printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
