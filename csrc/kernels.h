// Host entry points of every kernel family, one group per pass. Each is defined, next to its kernel, in
// csrc/<pass>/<family>.cu and launched on `stream`; bindings.cpp builds the ConvParams and calls them.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "common/conv_params.h"

namespace conv2d_ext {

// Forward: y[n,k,p,q] = bias[k] + sum_{c,r,s} x[n, g*C/groups + c, p*sh - ph + r*dh, q*sw - pw + s*dw] * w[k,c,r,s]
void forward_direct(const ConvParams& p, cudaStream_t stream);

// Backward-data: writes x (grad_input) from y (grad_output) and w.
void backward_data_direct(const ConvParams& p, cudaStream_t stream);

// Backward-weight: writes w (grad_weight) from y (grad_output) and x. The caller provides
// backward_weight_direct_workspace(p) bytes of scratch (may be 0) for the split reduction.
int64_t backward_weight_direct_workspace(const ConvParams& p);
void backward_weight_direct(const ConvParams& p, void* workspace, cudaStream_t stream);

// Bias gradient: grad_bias[k] = sum over n, p, q of y[n,k,p,q]. Shares the reduction of backward-weight.
int64_t backward_bias_workspace(const ConvParams& p);
void backward_bias(const ConvParams& p, void* grad_bias, void* workspace, cudaStream_t stream);

}  // namespace conv2d_ext
