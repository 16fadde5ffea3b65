// The binding: the torch ops conv2d_ext::forward / backward_data / backward_weight / backward_bias (schemas and
// CUDA implementations, registered here in C++ so a call costs one dispatch), and a small pybind module
// (conv2d_ext._C) that lists the kernel registry and asks a kernel why it cannot run a problem.
//
// Each op takes the name of the kernel to run (Python's heuristics choose it), makes its tensor inputs dense in
// the layout Python decided (channels_last), allocates its result in that layout, builds one ConvParams, looks
// the kernel up in the registry, and launches it on the current stream under a device guard. Python validates
// the arguments with user-facing messages; the checks here are the ones memory safety needs when an op is
// called directly. Padding is [top, left]: the bottom/right padding is implied by the output size.
#include <torch/extension.h>
#include <torch/library.h>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "common/launch.cuh"
#include "kernels.h"
#include "registry.h"

namespace conv2d_ext {
namespace {

// ---- Poison: every result filled with NaN before its kernel runs, so an element a kernel fails to write shows.

std::atomic<bool>& poison_flag() {
  static std::atomic<bool> flag{[] {
    const char* env = std::getenv("CONV2D_EXT_POISON");
    return env != nullptr && std::string(env) == "1";
  }()};
  return flag;
}

// ---- Names.

const char* pass_name(Pass pass) {
  switch (pass) {
    case Pass::kForward: return "forward";
    case Pass::kBackwardData: return "backward_data";
    case Pass::kBackwardWeight: return "backward_weight";
  }
  return "?";
}

Pass parse_pass(const std::string& name) {
  for (Pass pass : {Pass::kForward, Pass::kBackwardData, Pass::kBackwardWeight}) {
    if (name == pass_name(pass)) return pass;
  }
  TORCH_CHECK(false, "conv2d_ext: unknown pass '", name, "' (expected forward, backward_data or backward_weight)");
}

std::string kernel_names(Pass pass) {
  std::string names;
  for (const KernelInfo* k : registry()) {
    if (k->pass == pass) names += (names.empty() ? "" : ", ") + kernel_name(*k);
  }
  return names;
}

DType to_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::kFloat32;
    case at::kDouble: return DType::kFloat64;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    default: TORCH_CHECK(false, "conv2d_ext: unsupported dtype ", t, " (expected float32, float64, float16 or bfloat16)");
  }
}

// ---- ConvParams.

int checked_int(int64_t v, const char* name, int64_t lo) {
  TORCH_CHECK(v >= lo && v <= std::numeric_limits<int>::max(), "conv2d_ext: ", name, " must be in [", lo,
              ", 2^31), got ", v);
  return static_cast<int>(v);
}

// Element strides of a dense N x C x H x W tensor in NCHW, or NHWC when channels_last.
void dense_strides(int64_t (&st)[4], int64_t C, int64_t H, int64_t W, bool channels_last) {
  if (channels_last) {
    st[0] = H * W * C; st[1] = 1; st[2] = W * C; st[3] = C;
  } else {
    st[0] = C * H * W; st[1] = H * W; st[2] = W; st[3] = 1;
  }
}

void copy_strides(int64_t (&dst)[4], const at::Tensor& t) {
  for (int i = 0; i < 4; ++i) dst[i] = t.stride(i);
}

// Sizes, geometry and flags of a convolution of x (N,C,H,W) with w (K,C/groups,R,S) giving y (N,K,P,Q), checked
// for what the kernels rely on: positive geometry that fits in int, groups dividing C and K, and an output size
// that some bottom/right padding >= 0 gives (the kernels bound-check every read of x against H and W).
// Strides and pointers are left for the caller.
ConvParams make_geometry(at::IntArrayRef x, at::IntArrayRef w, at::IntArrayRef y, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2,
              "conv2d_ext: expected stride[2], padding[2] (top, left), dilation[2]");
  ConvParams p{};
  p.N = x[0]; p.C = x[1]; p.H = x[2]; p.W = x[3];
  p.K = w[0]; p.R = w[2]; p.S = w[3];
  p.P = y[2]; p.Q = y[3];
  p.groups = checked_int(groups, "groups", 1);
  p.stride_h = checked_int(stride[0], "stride", 1);
  p.stride_w = checked_int(stride[1], "stride", 1);
  p.pad_h = checked_int(padding[0], "padding", 0);
  p.pad_w = checked_int(padding[1], "padding", 0);
  p.dil_h = checked_int(dilation[0], "dilation", 1);
  p.dil_w = checked_int(dilation[1], "dilation", 1);
  TORCH_CHECK(p.N >= 0 && p.H >= 1 && p.W >= 1 && p.R >= 1 && p.S >= 1, "conv2d_ext: empty input or filter sizes");
  TORCH_CHECK(p.C % p.groups == 0 && p.K % p.groups == 0 && w[1] * p.groups == p.C,
              "conv2d_ext: input channels ", p.C, ", filter ", w, " and groups ", p.groups, " do not agree");
  TORCH_CHECK(y[0] == p.N && y[1] == p.K, "conv2d_ext: output ", y, " does not match batch ", p.N, " and ", p.K,
              " output channels");
  // The padding below/right of the input that the output size implies: the last window ends there. F.conv2d's
  // output size for a bottom padding pb >= 0 implies pb - stride < implied <= pb.
  const int64_t implied_bottom = (p.P - 1) * p.stride_h + int64_t(p.dil_h) * (p.R - 1) + 1 - p.H - p.pad_h;
  const int64_t implied_right = (p.Q - 1) * p.stride_w + int64_t(p.dil_w) * (p.S - 1) + 1 - p.W - p.pad_w;
  TORCH_CHECK(p.P >= 1 && p.Q >= 1 && implied_bottom > -p.stride_h && implied_right > -p.stride_w,
              "conv2d_ext: output size ", p.P, "x", p.Q, " does not fit input ", p.H, "x", p.W, ", filter ", p.R, "x",
              p.S, ", stride ", stride, ", padding ", padding, " and dilation ", dilation);
  return p;
}

void check_tensor(const at::Tensor& t, const char* name, const at::Tensor& ref) {
  TORCH_CHECK(t.defined(), "conv2d_ext: ", name, " is undefined");
  TORCH_CHECK(t.is_cuda(), "conv2d_ext: ", name, " must be a CUDA tensor, got ", t.device());
  TORCH_CHECK(t.device() == ref.device(), "conv2d_ext: ", name, " is on ", t.device(), " but ", ref.device(),
              " was expected");
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), "conv2d_ext: ", name, " has dtype ", t.scalar_type(), " but ",
              ref.scalar_type(), " was expected");
  TORCH_CHECK(t.dim() == 4, "conv2d_ext: ", name, " must be 4-D, got ", t.dim(), "-D");
}

at::MemoryFormat memory_format(bool channels_last) {
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

// A result of `sizes` in `like`'s dtype and device, dense in the layout.
at::Tensor new_result(at::IntArrayRef sizes, const at::Tensor& like, bool channels_last) {
  return at::empty(sizes, like.options().memory_format(memory_format(channels_last)));
}

// The ConvParams of dense x, w, y (the op made them so) on one device.
ConvParams make_params(const at::Tensor& x, const at::Tensor& w, const at::Tensor& y, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, bool allow_tf32,
                       bool channels_last) {
  ConvParams p = make_geometry(x.sizes(), w.sizes(), y.sizes(), stride, padding, dilation, groups);
  copy_strides(p.x_stride, x);
  copy_strides(p.w_stride, w);
  copy_strides(p.y_stride, y);
  p.channels_last = channels_last;
  p.dtype = to_dtype(x.scalar_type());
  p.allow_tf32 = allow_tf32;
  p.sm = device_info(x.get_device()).sm;
  p.x = x.data_ptr();
  p.w = w.data_ptr();
  p.y = y.data_ptr();
  p.bias = nullptr;
  return p;
}

// One pass ready to launch: its kernel, ConvParams, and every tensor the kernel touches, held until after the launch
// (and, for backward(), until after the next pass's launch: see there).
struct PassCall {
  const KernelInfo* kernel;
  ConvParams p;
  at::Tensor a, b, result, bias, workspace;
};

// The body every pass shares, up to the launch: makes the two tensor inputs dense in the layout, allocates the result
// (NaN-filled when poisoning) and the workspace, builds the ConvParams and checks that kernel `name` of `pass` can
// run it. Which of x, w, y each tensor is depends on the pass:
//   forward (a = x, b = w) -> y;   backward_data (a = y, b = w) -> x;   backward_weight (a = y, b = x) -> w.
PassCall prepare(Pass pass, c10::string_view name, const at::Tensor& a_in, const at::Tensor& b_in,
                 at::IntArrayRef result_size, const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                 at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, bool allow_tf32,
                 bool channels_last) {
  const std::string kernel(name.data(), name.size());
  PassCall c{};
  c.kernel = find_kernel(pass, kernel);
  TORCH_CHECK(c.kernel != nullptr, "conv2d_ext: no ", pass_name(pass), " kernel named '", kernel, "' (registered: ",
              kernel_names(pass), ")");
  const auto fmt = memory_format(channels_last);
  // The backward passes of an NCHW call on the copy-engine kernels ("_tma") take grad_output dense in NHWC as it is:
  // they read NHWC (their NCHW path copies grad_output to NHWC first), and conv2d.py stages it once for both.
  const bool nhwc_grad = !channels_last && pass != Pass::kForward && kernel.size() > 4 &&
                         kernel.compare(kernel.size() - 4, 4, "_tma") == 0 && a_in.dim() == 4 &&
                         a_in.is_contiguous(at::MemoryFormat::ChannelsLast);
  c.a = nhwc_grad ? a_in : a_in.contiguous(fmt);
  c.b = b_in.contiguous(fmt);
  c.result = new_result(result_size, c.a, channels_last);
  const bool fwd = pass == Pass::kForward, dgrad = pass == Pass::kBackwardData;
  const at::Tensor& x = fwd ? c.a : (dgrad ? c.result : c.b);
  const at::Tensor& w = fwd || dgrad ? c.b : c.result;
  const at::Tensor& y = fwd ? c.result : c.a;
  c.p = make_params(x, w, y, stride, padding, dilation, groups, allow_tf32, channels_last);
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->is_cuda() && bias->device() == c.a.device() && bias->scalar_type() == c.a.scalar_type() &&
                    bias->dim() == 1 && bias->size(0) == c.p.K,
                "conv2d_ext: bias must be a 1-D tensor of ", c.p.K, " elements of the input's dtype and device");
    c.bias = bias->contiguous();
    c.p.bias = c.bias.data_ptr();
  }
  const std::string why_not = c.kernel->can_implement(c.p);
  TORCH_CHECK(why_not.empty(), "conv2d_ext: kernel '", kernel, "' cannot run ", pass_name(pass),
              " of this convolution: ", why_not);
  if (poison_flag().load(std::memory_order_relaxed)) c.result.fill_(std::numeric_limits<double>::quiet_NaN());
  const int64_t bytes = c.kernel->workspace_bytes ? c.kernel->workspace_bytes(c.p) : 0;
  if (bytes > 0) c.workspace = at::empty({bytes}, c.result.options().dtype(at::kByte));
  return c;
}

void launch(const PassCall& c) {
  c.kernel->launch(c.p, c.workspace.defined() ? c.workspace.data_ptr() : nullptr,
                   c10::cuda::getCurrentCUDAStream(c.result.get_device()).stream());
}

// ---- The ops.

at::Tensor run_pass(Pass pass, c10::string_view kernel, const at::Tensor& a_in, const at::Tensor& b_in,
                    at::IntArrayRef result_size, const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, bool allow_tf32,
                    bool channels_last) {
  const c10::cuda::CUDAGuard guard(a_in.device());
  const PassCall c = prepare(pass, kernel, a_in, b_in, result_size, bias, stride, padding, dilation, groups,
                             allow_tf32, channels_last);
  launch(c);
  return c.result;
}

at::Tensor forward(c10::string_view kernel, const at::Tensor& input, const at::Tensor& weight,
                   const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                   at::IntArrayRef dilation, int64_t groups, at::IntArrayRef output_size, bool allow_tf32,
                   bool channels_last) {
  check_tensor(input, "input", input);
  check_tensor(weight, "weight", input);
  TORCH_CHECK(output_size.size() == 2, "conv2d_ext: expected output_size[2]");
  return run_pass(Pass::kForward, kernel, input, weight, {input.size(0), weight.size(0), output_size[0], output_size[1]},
                  bias, stride, padding, dilation, groups, allow_tf32, channels_last);
}

at::Tensor backward_data(c10::string_view kernel, const at::Tensor& grad_output, const at::Tensor& weight,
                         at::IntArrayRef input_size, at::IntArrayRef stride, at::IntArrayRef padding,
                         at::IntArrayRef dilation, int64_t groups, bool allow_tf32, bool channels_last) {
  check_tensor(grad_output, "grad_output", grad_output);
  check_tensor(weight, "weight", grad_output);
  TORCH_CHECK(input_size.size() == 4, "conv2d_ext: expected input_size[4]");
  return run_pass(Pass::kBackwardData, kernel, grad_output, weight, input_size, c10::nullopt, stride, padding,
                  dilation, groups, allow_tf32, channels_last);
}

at::Tensor backward_weight(c10::string_view kernel, const at::Tensor& grad_output, const at::Tensor& input,
                           at::IntArrayRef weight_size, at::IntArrayRef stride, at::IntArrayRef padding,
                           at::IntArrayRef dilation, int64_t groups, bool allow_tf32, bool channels_last) {
  check_tensor(grad_output, "grad_output", grad_output);
  check_tensor(input, "input", grad_output);
  TORCH_CHECK(weight_size.size() == 4, "conv2d_ext: expected weight_size[4]");
  return run_pass(Pass::kBackwardWeight, kernel, grad_output, input, weight_size, c10::nullopt, stride, padding,
                  dilation, groups, allow_tf32, channels_last);
}

// Both backward passes in one op (one dispatch), backward-data first. Everything both passes allocate is allocated,
// and poisoned, before either launches, and held until both have, so the backward-weight kernel may run as a
// programmatic dependent of backward-data's last kernel (ConvParams::after_backward_data): no memory it reads or
// writes is memory that kernel reads or writes, and every kernel before that one has completed once it triggers.
std::tuple<at::Tensor, at::Tensor> backward(c10::string_view data_kernel, c10::string_view weight_kernel,
                                            const at::Tensor& grad_output, const at::Tensor& input,
                                            const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                                            at::IntArrayRef dilation, int64_t groups, bool allow_tf32,
                                            bool channels_last) {
  check_tensor(grad_output, "grad_output", grad_output);
  check_tensor(input, "input", grad_output);
  check_tensor(weight, "weight", grad_output);
  const c10::cuda::CUDAGuard guard(grad_output.device());
  const PassCall d = prepare(Pass::kBackwardData, data_kernel, grad_output, weight, input.sizes(), c10::nullopt,
                             stride, padding, dilation, groups, allow_tf32, channels_last);
  PassCall w = prepare(Pass::kBackwardWeight, weight_kernel, d.a, input, weight.sizes(), c10::nullopt, stride,
                       padding, dilation, groups, allow_tf32, channels_last);
  // An empty batch launches no backward-data kernel: the stream's last kernel would be someone else's.
  w.p.after_backward_data = d.p.N > 0;
  launch(d);
  launch(w);
  return {d.result, w.result};
}

at::Tensor backward_bias_op(const at::Tensor& grad_output) {
  check_tensor(grad_output, "grad_output", grad_output);
  const c10::cuda::CUDAGuard guard(grad_output.device());
  at::Tensor db = at::empty({grad_output.size(1)}, grad_output.options());
  ConvParams p{};  // only what the bias gradient reads; the kernel honours any strides of grad_output
  p.N = grad_output.size(0); p.K = grad_output.size(1); p.P = grad_output.size(2); p.Q = grad_output.size(3);
  copy_strides(p.y_stride, grad_output);
  p.dtype = to_dtype(grad_output.scalar_type());
  p.y = const_cast<void*>(grad_output.data_ptr());
  if (poison_flag().load(std::memory_order_relaxed)) db.fill_(std::numeric_limits<double>::quiet_NaN());
  const int64_t bytes = backward_bias_workspace(p);
  const at::Tensor workspace = bytes > 0 ? at::empty({bytes}, db.options().dtype(at::kByte)) : at::Tensor();
  backward_bias(p, db.data_ptr(), bytes > 0 ? workspace.data_ptr() : nullptr,
                c10::cuda::getCurrentCUDAStream(grad_output.get_device()).stream());
  return db;
}

// The dense NHWC (channels_last) copy of a 4-D fp32/fp16/bf16 CUDA tensor, on conv2d_ext's own kernel.
at::Tensor to_channels_last_op(const at::Tensor& input) {
  check_tensor(input, "input", input);
  const auto dtype = input.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16,
              "conv2d_ext: to_channels_last takes float32, float16 or bfloat16 tensors");
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (x.numel() == 0) return out;
  ConvParams p{};
  p.N = x.size(0); p.C = x.size(1); p.H = x.size(2); p.W = x.size(3);
  TORCH_CHECK(p.H * p.W < (int64_t(1) << 31) && p.C < (int64_t(1) << 21),
              "conv2d_ext: to_channels_last takes images of fewer than 2^31 pixels and 2^21 channels");
  copy_strides(p.x_stride, x);
  p.dtype = to_dtype(dtype);
  p.x = x.data_ptr();
  to_channels_last(p, out.data_ptr(), c10::cuda::getCurrentCUDAStream(x.get_device()).stream());
  return out;
}

// ---- What Python asks the registry.

std::vector<std::tuple<std::string, std::string, std::string, std::string>> list_kernels() {
  std::vector<std::tuple<std::string, std::string, std::string, std::string>> out;
  for (const KernelInfo* k : registry()) out.emplace_back(pass_name(k->pass), kernel_name(*k), k->family, k->config);
  return out;
}

// Why kernel `name` of `pass` cannot run a problem ("" when it can), from sizes [N,C,H,W,K,R,S,P,Q] and geometry
// alone: dense strides in the layout, aligned placeholder pointers (never dereferenced). Host code, no GPU needed.
std::string can_implement(const std::string& pass_str, const std::string& name, std::vector<int64_t> sizes,
                          std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                          int64_t groups, const std::string& dtype, bool channels_last, bool allow_tf32, int64_t sm) {
  const Pass pass = parse_pass(pass_str);
  const KernelInfo* k = find_kernel(pass, name);
  TORCH_CHECK(k != nullptr, "conv2d_ext: no ", pass_str, " kernel named '", name, "' (registered: ",
              kernel_names(pass), ")");
  TORCH_CHECK(sizes.size() == 9, "conv2d_ext: expected sizes [N, C, H, W, K, R, S, P, Q]");
  TORCH_CHECK(groups >= 1, "conv2d_ext: groups must be positive");
  const int64_t N = sizes[0], C = sizes[1], H = sizes[2], W = sizes[3], K = sizes[4], R = sizes[5], S = sizes[6];
  ConvParams p = make_geometry({N, C, H, W}, {K, C / groups, R, S}, {N, K, sizes[7], sizes[8]}, stride, padding,
                               dilation, groups);
  dense_strides(p.x_stride, C, H, W, channels_last);
  dense_strides(p.w_stride, C / groups, R, S, channels_last);
  dense_strides(p.y_stride, K, p.P, p.Q, channels_last);
  p.channels_last = channels_last;
  const char* dtypes[] = {"float32", "float64", "float16", "bfloat16"};
  const DType values[] = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16};
  bool known = false;
  for (int i = 0; i < 4; ++i) {
    if (dtype == dtypes[i]) { p.dtype = values[i]; known = true; }
  }
  TORCH_CHECK(known, "conv2d_ext: unknown dtype '", dtype, "' (expected float32, float64, float16 or bfloat16)");
  p.allow_tf32 = allow_tf32;
  p.sm = checked_int(sm, "sm", 0);
  // The caching allocator aligns every allocation to at least 512 bytes.
  p.x = reinterpret_cast<void*>(uintptr_t(1) << 20);
  p.w = reinterpret_cast<void*>(uintptr_t(2) << 20);
  p.y = reinterpret_cast<void*>(uintptr_t(3) << 20);
  return k->can_implement(p);
}

}  // namespace
}  // namespace conv2d_ext

TORCH_LIBRARY(conv2d_ext, m) {
  m.def("forward(str kernel, Tensor input, Tensor weight, Tensor? bias, int[] stride, int[] padding, "
        "int[] dilation, int groups, int[] output_size, bool allow_tf32, bool channels_last) -> Tensor");
  m.def("backward_data(str kernel, Tensor grad_output, Tensor weight, int[] input_size, int[] stride, "
        "int[] padding, int[] dilation, int groups, bool allow_tf32, bool channels_last) -> Tensor");
  m.def("backward_weight(str kernel, Tensor grad_output, Tensor input, int[] weight_size, int[] stride, "
        "int[] padding, int[] dilation, int groups, bool allow_tf32, bool channels_last) -> Tensor");
  m.def("backward(str data_kernel, str weight_kernel, Tensor grad_output, Tensor input, Tensor weight, int[] stride, "
        "int[] padding, int[] dilation, int groups, bool allow_tf32, bool channels_last) -> (Tensor, Tensor)");
  m.def("backward_bias(Tensor grad_output) -> Tensor");
  m.def("to_channels_last(Tensor input) -> Tensor");
}

TORCH_LIBRARY_IMPL(conv2d_ext, CUDA, m) {
  m.impl("forward", &conv2d_ext::forward);
  m.impl("backward_data", &conv2d_ext::backward_data);
  m.impl("backward_weight", &conv2d_ext::backward_weight);
  m.impl("backward", &conv2d_ext::backward);
  m.impl("backward_bias", &conv2d_ext::backward_bias_op);
  m.impl("to_channels_last", &conv2d_ext::to_channels_last_op);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  using namespace conv2d_ext;
  m.doc() = "conv2d_ext: the kernel registry and the poison switch. The passes are the torch ops "
            "torch.ops.conv2d_ext.{forward, backward_data, backward_weight, backward_bias, to_channels_last}.";
  m.def("kernels", &list_kernels, "Every registered kernel as (pass, name, family, config), in the table's order.");
  m.def("can_implement", &can_implement,
        "Why kernel `name` cannot run `pass_` of a problem; '' when it can. Host code: no GPU needed.",
        py::arg("pass_"), py::arg("name"), py::arg("sizes"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("dtype"), py::arg("channels_last"), py::arg("allow_tf32"),
        py::arg("sm"));
  m.def("set_poison", [](bool on) { poison_flag().store(on); },
        "Fill every result with NaN before its kernel runs (default: CONV2D_EXT_POISON=1 at load).", py::arg("on"));
  m.def("poison", [] { return poison_flag().load(); }, "Whether results are NaN-filled before their kernel runs.");
}
