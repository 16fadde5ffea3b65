// Backward-data at stride 1 on the copy-engine forward (forward_tma.cuh): at stride 1, grad_input is the forward
// convolution of grad_output with the filters flipped in R and S and with input and output channels swapped,
//   dx[n, c, h, w] = sum over k, r', s' of dy[n, k, h - pad'_h + r'*dil_h, w - pad'_w + s'*dil_w] * w'[c, k, r', s'],
//   w'[c, k, r', s'] = w[k, c, R-1-r', S-1-s'] (per group), pad' = dil * (R - 1) - pad (top / left),
// so this pass is a ConvParams rewrite, a flipped filter repack into the workspace (repack_crsk reading w
// backwards: [C][R][S][K/groups], the forward's KRSC) and the forward's launcher.
//
// Strided (dilation 1), by stride phase: the rows h = stride_h i + rho of grad_input (rho < stride_h) take the taps
// r = first + stride_h t (t < count, first = (rho + pad_h) mod stride_h) and grad_output row i + delta - t (delta =
// (rho + pad_h - first) / stride_h), so phase (rho_h, rho_w) is a stride-1 forward of grad_output with the flipped
// repack's taps of that phase (every stride-th tap from r' = R - 1 - first - stride (count - 1): a strided view of
// the repack, no second one), padding count - 1 - delta, into grad_input's strided view at (rho_h, rho_w) (element
// strides stride x the pixel strides; a negative padding starts the grad_output view that many rows or columns in).
// stride_h x stride_w launches of the forward's kernel on one repack, each grad_input element written by exactly
// one (every phase must have taps: R >= stride_h, S >= stride_w). Session 30 (H100, graph): r50_3x3_128_s2
// channels-last 0.047 -> 0.042 ms fp16, 0.071 -> 0.065 TF32 against the stride-phase mma kernel (256x128_wg); cuDNN
// 0.025 / 0.044; 7.4 GFLOP, 32 MB.
#pragma once

#include "implicit_gemm/backward_data.cuh"
#include "implicit_gemm/forward_tma.cuh"

namespace conv2d_ext {
namespace igemm {

// The forward problem whose output is p's grad_input; its filters `w` (the flipped repack, dense [C][R][S][K/g]).
inline ConvParams backward_data_as_forward(const ConvParams& p, void* w) {
  ConvParams q = p;
  q.C = p.K, q.H = p.P, q.W = p.Q;  // input: grad_output
  q.K = p.C, q.P = p.H, q.Q = p.W;  // output: grad_input
  q.pad_h = p.dil_h * int(p.R - 1) - p.pad_h;
  q.pad_w = p.dil_w * int(p.S - 1) - p.pad_w;
  q.x = p.y, q.y = p.x, q.w = w, q.bias = nullptr;
  for (int i = 0; i < 4; ++i) q.x_stride[i] = p.y_stride[i], q.y_stride[i] = p.x_stride[i];
  const int64_t Kg = p.K_per_group();
  q.w_stride[0] = p.R * p.S * Kg, q.w_stride[1] = 1, q.w_stride[2] = p.S * Kg, q.w_stride[3] = Kg;
  return q;
}

// One dimension of a stride phase: its taps (every stride-th from `first`: `count` of them) and the offset `delta` of
// the grad_output row its first tap reads (row i + delta - t for tap t).
struct PhaseTaps {
  int first, count, delta;
};

inline PhaseTaps phase_taps(int rho, int stride, int pad, int64_t taps) {
  const int first = (rho + pad) % stride;
  const int count = first < taps ? int((taps - first + stride - 1) / stride) : 0;
  return PhaseTaps{first, count, (rho + pad - first) / stride};
}

// Phase (rho_h, rho_w) of strided p (dilation 1) as a forward problem (see the top of the file); `packed`: the
// flipped repack, dense [C][R][S][K/g]. Rows and columns of grad_input in the phase: P x Q of the result.
inline ConvParams backward_data_phase_as_forward(const ConvParams& p, void* packed, int rho_h, int rho_w) {
  const PhaseTaps th = phase_taps(rho_h, p.stride_h, p.pad_h, p.R), tw = phase_taps(rho_w, p.stride_w, p.pad_w, p.S);
  const int64_t elem = p.element_bytes(), Kg = p.K_per_group();
  ConvParams q = backward_data_as_forward(p, packed);
  q.R = th.count, q.S = tw.count;
  q.P = rho_h < p.H ? (p.H - rho_h + p.stride_h - 1) / p.stride_h : 0;
  q.Q = rho_w < p.W ? (p.W - rho_w + p.stride_w - 1) / p.stride_w : 0;
  q.stride_h = q.stride_w = 1;
  q.pad_h = th.count - 1 - th.delta, q.pad_w = tw.count - 1 - tw.delta;
  if (q.pad_h < 0) {  // the phase's first window starts -pad_h rows into grad_output: start the view there
    q.x = static_cast<unsigned char*>(q.x) + (-q.pad_h) * q.x_stride[2] * elem, q.H += q.pad_h, q.pad_h = 0;
  }
  if (q.pad_w < 0) {
    q.x = static_cast<unsigned char*>(q.x) + (-q.pad_w) * q.x_stride[3] * elem, q.W += q.pad_w, q.pad_w = 0;
  }
  q.y = static_cast<unsigned char*>(p.x) + (rho_h * p.x_stride[2] + rho_w * p.x_stride[3]) * elem;
  q.y_stride[2] = p.x_stride[2] * p.stride_h, q.y_stride[3] = p.x_stride[3] * p.stride_w;
  const int64_t r0 = p.R - 1 - th.first - int64_t(p.stride_h) * (th.count - 1);  // the phase's first flipped tap
  const int64_t s0 = p.S - 1 - tw.first - int64_t(p.stride_w) * (tw.count - 1);
  if (packed != nullptr && th.count > 0 && tw.count > 0)
    q.w = static_cast<unsigned char*>(packed) + (r0 * p.S + s0) * Kg * elem;
  q.w_stride[2] = p.stride_h * p.S * Kg, q.w_stride[3] = p.stride_w * Kg;
  return q;
}

inline bool strided(const ConvParams& p) { return p.stride_h != 1 || p.stride_w != 1; }

// Whether the phases read p's grad_output where it is: channels-last, each phase's view readable by the copy engine
// (else forward_tma_launch_typed would take its fallback, whose epilogue writes a dense output, not the phase's
// view); NCHW, grad_output dense NHWC already (conv2d.py stages it so when both backward passes run on copy-engine
// kernels). Otherwise the launch copies it to dense NHWC in the workspace once for all phases. Reads p's pointers.
inline bool phases_read_grad_output(const ConvParams& p) {
  if (!p.channels_last) return dense_nhwc(p.y, p.y_stride, p.K, p.P, p.Q);
  for (int rh = 0; rh < p.stride_h; ++rh)
    for (int rw = 0; rw < p.stride_w; ++rw) {
      const ConvParams q = backward_data_phase_as_forward(p, nullptr, rh, rw);
      if (q.P > 0 && q.Q > 0 && !tma_reads_channels_last(q)) return false;
    }
  return true;
}

// Whether the phases of a strided p whose grad_input is dense NCHW write a dense NHWC stage instead, transposed to
// NCHW afterwards (to_nchw): each phase's NCHW epilogue stores every stride_w-th element of a row, sectors half
// filled by one launch and completed by another (session 41, H100, r50_3x3_128_s2 TF32 NCHW forward + backward
// trace: five forward_tma launches, the forward and the four phases, 157 us against 95 channels-last; graph ms
// with the stage: TF32 backward-data 0.1336 -> 0.1047). Only at a horizontal stride (a vertical one alone writes
// whole rows). CONV2D_EXT_PHASES_NHWC=0 turns it off.
inline bool phases_stage_nhwc(const ConvParams& p) {
  const char* env = std::getenv("CONV2D_EXT_PHASES_NHWC");
  const int64_t elem = p.element_bytes();
  return !(env != nullptr && env[0] == '0') && !p.channels_last && p.stride_w > 1 &&
         to_nchw_fits(p.x, p.x_stride, p.C, p.H, p.W) && (p.C * elem) % 16 == 0;
}

// The workspace of a strided p: the flipped repack, then grad_output's dense NHWC copy (where the phases cannot
// read it in place), then grad_input's NHWC stage (phases_stage_nhwc), then one region for the phases' forwards
// (they run one after another on the stream). Offsets of the copy, the stage and the phases' region, and the total.
struct PhaseWorkspace {
  int64_t copy, stage, rest, bytes;
};

// The problem whose phases run: p, reading grad_output's dense NHWC copy where it is made, writing grad_input's
// NHWC stage where there is one (channels-last phases; the stage at `stage`).
inline ConvParams phase_source(const ConvParams& p, bool copied, void* dy, bool staged, void* stage) {
  ConvParams src = p;
  if (copied) src.y = dy, dense_nhwc_strides(src.y_stride, p.K, p.P, p.Q);
  if (staged) src.x = stage, src.channels_last = true, dense_nhwc_strides(src.x_stride, p.C, p.H, p.W);
  return src;
}

template <class Cfg>
PhaseWorkspace phase_workspace(const ConvParams& p) {
  const int64_t elem = p.element_bytes();
  const int64_t filters = region(p.C * p.R * p.S * p.K_per_group() * elem);
  const int64_t copy = phases_read_grad_output(p) ? 0 : region(p.N * p.K * p.P * p.Q * elem);
  const int64_t stage = phases_stage_nhwc(p) ? region(p.N * p.C * p.H * p.W * elem) : 0;
  // the phases read the copy's strides (an NCHW grad_output's would let them read it in place), write the stage's
  const ConvParams dense = phase_source(p, copy > 0, nullptr, stage > 0, nullptr);
  int64_t most = 0;
  for (int rh = 0; rh < p.stride_h; ++rh)
    for (int rw = 0; rw < p.stride_w; ++rw) {
      const ConvParams q = backward_data_phase_as_forward(dense, nullptr, rh, rw);
      if (q.P > 0 && q.Q > 0) most = std::max(most, forward_tma_workspace<Cfg>(q));
    }
  return PhaseWorkspace{filters, filters + copy, filters + copy + stage, filters + copy + stage + most};
}

template <class Cfg>
int64_t backward_data_tma_workspace(const ConvParams& p) {
  if (strided(p)) return phase_workspace<Cfg>(p).bytes;
  const int64_t elem = p.element_bytes();
  const int64_t filters = region(p.C * p.R * p.S * p.K_per_group() * elem);
  return filters + forward_tma_workspace<Cfg>(backward_data_as_forward(p, nullptr));
}

template <typename T, class Cfg>
void backward_data_tma_launch_typed(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (p.N * p.H * p.W == 0 || p.C == 0) return;
  const int64_t Cg = p.C_per_group(), Kg = p.K_per_group(), total = p.C * p.R * p.S * Kg;
  unsigned char* ws = static_cast<unsigned char*>(workspace);
  T* packed = static_cast<T*>(workspace);
  // w read backwards in r and s: start at its last tap, negative tap strides.
  const FilterStrides flipped{p.w_stride[0], p.w_stride[1], -p.w_stride[2], -p.w_stride[3]};
  const T* w_last = static_cast<const T*>(p.w) + (p.R - 1) * p.w_stride[2] + (p.S - 1) * p.w_stride[3];
  repack_crsk<T>(w_last, flipped, packed, p.C, Cg, Kg, p.R, p.S, stream);
  if (!strided(p)) {
    forward_tma_launch_typed<T, Cfg>(backward_data_as_forward(p, packed), ws + region(total * int64_t(sizeof(T))),
                                     stream);
    return;
  }
  const PhaseWorkspace pw = phase_workspace<Cfg>(p);
  const bool copied = pw.stage > pw.copy, staged = pw.rest > pw.stage;
  T* dy = reinterpret_cast<T*>(ws + pw.copy);
  if (copied)  // grad_output to dense NHWC, once for all phases
    launch_to_nhwc<T>(static_cast<const T*>(p.y), p.y_stride, dy, p.N, p.K, p.P, p.Q, stream);
  const ConvParams src = phase_source(p, copied, dy, staged, ws + pw.stage);
  for (int rh = 0; rh < p.stride_h; ++rh)
    for (int rw = 0; rw < p.stride_w; ++rw)
      forward_tma_launch_typed<T, Cfg>(backward_data_phase_as_forward(src, packed, rh, rw), ws + pw.rest, stream);
  if (staged)  // the stage to grad_input (dense NCHW)
    launch_to_nchw<T>(static_cast<const T*>(src.x), src.x_stride, static_cast<T*>(p.x), p.N, p.C, p.H, p.W, stream);
}

template <class Cfg>
std::string backward_data_tma_can_implement(const ConvParams& p) {
  if (!strided(p)) return forward_tma_can_implement<Cfg>(backward_data_as_forward(p, nullptr));
  if (p.dil_h != 1 || p.dil_w != 1) return "strided with dilation (the stride phases need dilation 1)";
  if (p.R < p.stride_h || p.S < p.stride_w) return "a stride larger than the filter (stride phases without taps)";
  for (int rh = 0; rh < p.stride_h; ++rh)
    for (int rw = 0; rw < p.stride_w; ++rw) {
      const ConvParams q = backward_data_phase_as_forward(p, nullptr, rh, rw);
      if (q.P == 0 || q.Q == 0) continue;
      if (q.H <= 0 || q.W <= 0) return "padding past grad_output (a stride phase that reads none of it)";
      const std::string why = forward_tma_can_implement<Cfg>(q);
      if (!why.empty()) return "stride phase: " + why;
    }
  return "";
}

template <class Cfg>
void backward_data_tma_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  dispatch_float_dtype(p.dtype, "implicit_gemm tma", [&](auto tag) {
    backward_data_tma_launch_typed<typename decltype(tag)::type, Cfg>(p, workspace, stream);
  });
}

}  // namespace igemm
}  // namespace conv2d_ext

// The registry entries forward_implicit_gemm_<name>_tma and backward_data_implicit_gemm_<name>_tma of configuration
// TmaConfig<name>, whose kernels are instantiated per dtype in forward_<name>_tma_{f16,bf16,tf32}.cu (declared here so
// the entries' file does not compile them again).
#define CONV2D_EXT_TMA_ENTRIES(name)                                                                              \
  namespace conv2d_ext {                                                                                        \
  namespace igemm {                                                                                             \
  extern template void forward_tma_launch_typed<__half, TmaConfig##name>(const ConvParams&, void*, cudaStream_t); \
  extern template void forward_tma_launch_typed<__nv_bfloat16, TmaConfig##name>(const ConvParams&, void*,       \
                                                                                 cudaStream_t);                 \
  extern template void forward_tma_launch_typed<float, TmaConfig##name>(const ConvParams&, void*, cudaStream_t);  \
  }                                                                                                             \
  const KernelInfo forward_implicit_gemm_##name##_tma = {                                                       \
      Pass::kForward, "implicit_gemm", #name "_tma", igemm::forward_tma_can_implement<igemm::TmaConfig##name>,  \
      igemm::forward_tma_workspace<igemm::TmaConfig##name>, igemm::forward_tma_launch<igemm::TmaConfig##name>}; \
  const KernelInfo backward_data_implicit_gemm_##name##_tma = {                                                 \
      Pass::kBackwardData, "implicit_gemm", #name "_tma",                                                       \
      igemm::backward_data_tma_can_implement<igemm::TmaConfig##name>,                                           \
      igemm::backward_data_tma_workspace<igemm::TmaConfig##name>,                                               \
      igemm::backward_data_tma_launch<igemm::TmaConfig##name>};                                                 \
  }
