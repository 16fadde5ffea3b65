// The binding layer: checks tensors, builds one ConvParams, and calls a kernel family's launcher on the
// current stream of the tensors' device. Every entry point writes into tensors the caller allocated (the
// Python layer), so tests can poison outputs and nothing here allocates results.
//
// Entry points, one per pass and family: forward_<family>, backward_data_<family>, backward_weight_<family>,
// plus backward_bias. Padding is (top, bottom, left, right).
#include <torch/extension.h>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <string>
#include <vector>

#include "kernels.h"

namespace conv2d_ext {
namespace {

DType to_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::kFloat32;
    case at::kDouble: return DType::kFloat64;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    default: TORCH_CHECK(false, "conv2d_ext: unsupported dtype ", t, " (expected float32, float64, float16 or bfloat16)");
  }
}

void check_tensor(const at::Tensor& t, const char* name, const at::Tensor& ref) {
  TORCH_CHECK(t.defined(), "conv2d_ext: ", name, " is undefined");
  TORCH_CHECK(t.is_cuda(), "conv2d_ext: ", name, " must be a CUDA tensor, got ", t.device());
  TORCH_CHECK(t.device() == ref.device(), "conv2d_ext: ", name, " is on ", t.device(), " but input is on ", ref.device());
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), "conv2d_ext: ", name, " has dtype ", t.scalar_type(),
              " but input has dtype ", ref.scalar_type());
  TORCH_CHECK(t.dim() == 4, "conv2d_ext: ", name, " must be 4-D, got ", t.dim(), "-D");
}

void copy_strides(int64_t (&dst)[4], const at::Tensor& t) {
  for (int i = 0; i < 4; ++i) dst[i] = t.stride(i);
}

int checked_int(int64_t v, const char* name, int64_t lo) {
  TORCH_CHECK(v >= lo && v <= INT32_MAX, "conv2d_ext: ", name, " must be in [", lo, ", 2^31), got ", v);
  return static_cast<int>(v);
}

// Builds and validates the parameters of a convolution of activations x (N,C,H,W) with filters w
// (K,C/groups,R,S) giving y (N,K,P,Q). `written` names the tensor the pass writes; it must be dense.
ConvParams make_params(const at::Tensor& x, const at::Tensor& w, const at::Tensor& y, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, bool allow_tf32,
                       const at::Tensor& written) {
  check_tensor(x, "input", x);
  check_tensor(w, "weight", x);
  check_tensor(y, "output", x);
  TORCH_CHECK(stride.size() == 2 && dilation.size() == 2 && padding.size() == 4,
              "conv2d_ext: expected stride[2], padding[4] (top, bottom, left, right), dilation[2]");
  TORCH_CHECK(written.is_non_overlapping_and_dense(), "conv2d_ext: the tensor written must be dense");

  ConvParams p{};
  p.N = x.size(0); p.C = x.size(1); p.H = x.size(2); p.W = x.size(3);
  p.K = w.size(0); p.R = w.size(2); p.S = w.size(3);
  p.groups = checked_int(groups, "groups", 1);
  TORCH_CHECK(p.C % groups == 0, "conv2d_ext: input channels (", p.C, ") not divisible by groups (", groups, ")");
  TORCH_CHECK(p.K % groups == 0, "conv2d_ext: output channels (", p.K, ") not divisible by groups (", groups, ")");
  TORCH_CHECK(w.size(1) == p.C / groups, "conv2d_ext: weight has ", w.size(1), " input channels per group, expected ",
              p.C / groups);
  p.stride_h = checked_int(stride[0], "stride", 1);
  p.stride_w = checked_int(stride[1], "stride", 1);
  p.dil_h = checked_int(dilation[0], "dilation", 1);
  p.dil_w = checked_int(dilation[1], "dilation", 1);
  p.pad_h = checked_int(padding[0], "padding", 0);
  p.pad_w = checked_int(padding[2], "padding", 0);
  const int64_t pad_bottom = checked_int(padding[1], "padding", 0), pad_right = checked_int(padding[3], "padding", 0);
  // Padded extent minus dilated kernel extent; negative means the kernel does not fit (check before dividing:
  // C++ division truncates toward zero).
  const int64_t rows = p.H + p.pad_h + pad_bottom - int64_t(p.dil_h) * (p.R - 1) - 1;
  const int64_t cols = p.W + p.pad_w + pad_right - int64_t(p.dil_w) * (p.S - 1) - 1;
  TORCH_CHECK(rows >= 0 && cols >= 0 && p.R > 0 && p.S > 0, "conv2d_ext: output size is empty (the dilated kernel ",
              int64_t(p.dil_h) * (p.R - 1) + 1, "x", int64_t(p.dil_w) * (p.S - 1) + 1, " exceeds the padded input)");
  p.P = rows / p.stride_h + 1;
  p.Q = cols / p.stride_w + 1;
  TORCH_CHECK(y.size(0) == p.N && y.size(1) == p.K && y.size(2) == p.P && y.size(3) == p.Q,
              "conv2d_ext: output has shape ", y.sizes(), ", expected [", p.N, ", ", p.K, ", ", p.P, ", ", p.Q, "]");
  copy_strides(p.x_stride, x);
  copy_strides(p.w_stride, w);
  copy_strides(p.y_stride, y);
  p.channels_last = x.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
  p.dtype = to_dtype(x.scalar_type());
  p.allow_tf32 = allow_tf32;
  p.x = x.data_ptr();
  p.w = w.data_ptr();
  p.y = y.data_ptr();
  p.bias = nullptr;
  return p;
}

using Ints = std::vector<int64_t>;  // stride, padding, dilation as Python passes them

cudaStream_t current_stream(const at::Tensor& t) { return c10::cuda::getCurrentCUDAStream(t.device().index()).stream(); }

using LaunchFn = void (*)(const ConvParams&, cudaStream_t);
using WorkspaceFn = int64_t (*)(const ConvParams&);
using ReduceFn = void (*)(const ConvParams&, void*, cudaStream_t);

template <LaunchFn kLaunch>
void forward_entry(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                   const at::Tensor& output, const Ints& stride, const Ints& padding, const Ints& dilation,
                   int64_t groups, bool allow_tf32) {
  ConvParams p = make_params(input, weight, output, stride, padding, dilation, groups, allow_tf32, output);
  const c10::cuda::CUDAGuard guard(input.device());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->is_cuda() && bias->device() == input.device(), "conv2d_ext: bias must be on ", input.device());
    TORCH_CHECK(bias->scalar_type() == input.scalar_type(), "conv2d_ext: bias has dtype ", bias->scalar_type(),
                " but input has dtype ", input.scalar_type());
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == p.K && bias->is_contiguous(),
                "conv2d_ext: bias must be a contiguous 1-D tensor of ", p.K, " elements");
    p.bias = bias->data_ptr();
  }
  kLaunch(p, current_stream(input));
}

template <LaunchFn kLaunch>
void backward_data_entry(const at::Tensor& grad_output, const at::Tensor& weight, const at::Tensor& grad_input,
                         const Ints& stride, const Ints& padding, const Ints& dilation, int64_t groups,
                         bool allow_tf32) {
  const ConvParams p =
      make_params(grad_input, weight, grad_output, stride, padding, dilation, groups, allow_tf32, grad_input);
  const c10::cuda::CUDAGuard guard(grad_input.device());
  kLaunch(p, current_stream(grad_input));
}

template <WorkspaceFn kWorkspace, ReduceFn kLaunch>
void backward_weight_entry(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& grad_weight,
                           const Ints& stride, const Ints& padding, const Ints& dilation,
                           int64_t groups, bool allow_tf32) {
  const ConvParams p =
      make_params(input, grad_weight, grad_output, stride, padding, dilation, groups, allow_tf32, grad_weight);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor workspace = at::empty({kWorkspace(p)}, input.options().dtype(at::kByte));
  kLaunch(p, workspace.data_ptr(), current_stream(input));
}

void backward_bias_entry(const at::Tensor& grad_output, const at::Tensor& grad_bias) {
  TORCH_CHECK(grad_output.is_cuda() && grad_output.dim() == 4, "conv2d_ext: grad_output must be a 4-D CUDA tensor");
  TORCH_CHECK(grad_bias.device() == grad_output.device() && grad_bias.scalar_type() == grad_output.scalar_type() &&
                  grad_bias.dim() == 1 && grad_bias.size(0) == grad_output.size(1) && grad_bias.is_contiguous(),
              "conv2d_ext: grad_bias must be a contiguous 1-D tensor of ", grad_output.size(1),
              " elements on grad_output's device and dtype");
  const c10::cuda::CUDAGuard guard(grad_output.device());
  ConvParams p{};
  p.N = grad_output.size(0); p.K = grad_output.size(1); p.P = grad_output.size(2); p.Q = grad_output.size(3);
  p.C = p.K; p.R = p.S = 1; p.groups = 1;
  copy_strides(p.y_stride, grad_output);
  p.dtype = to_dtype(grad_output.scalar_type());
  p.y = const_cast<void*>(grad_output.data_ptr());
  const at::Tensor workspace = at::empty({backward_bias_workspace(p)}, grad_output.options().dtype(at::kByte));
  backward_bias(p, grad_bias.data_ptr(), workspace.data_ptr(), current_stream(grad_output));
}

}  // namespace
}  // namespace conv2d_ext

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  using namespace conv2d_ext;
  m.doc() = "conv2d_ext kernels. Entry points write into caller-allocated tensors; padding is (top, bottom, left, right).";
  m.attr("FAMILIES") = std::vector<std::string>{"direct"};

  m.def("forward_direct", &forward_entry<forward_direct>, "Forward convolution, direct family: writes output.",
        py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("allow_tf32"));
  m.def("backward_data_direct", &backward_data_entry<backward_data_direct>,
        "Backward-data, direct family: writes grad_input.", py::arg("grad_output"), py::arg("weight"),
        py::arg("grad_input"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("allow_tf32"));
  m.def("backward_weight_direct", &backward_weight_entry<backward_weight_direct_workspace, backward_weight_direct>,
        "Backward-weight, direct family: writes grad_weight.", py::arg("grad_output"), py::arg("input"),
        py::arg("grad_weight"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("allow_tf32"));
  m.def("backward_bias", &backward_bias_entry, "Bias gradient: writes grad_bias[k] = sum of grad_output[:, k].",
        py::arg("grad_output"), py::arg("grad_bias"));
}
