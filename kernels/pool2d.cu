#include <cfloat>

#include "kernels/device_common.cuh"
#include "kernels/pool2d.h"

namespace lookalike {
namespace kernels {
namespace {

template <typename T>
__global__ void Pool2dKernel(const T* __restrict__ x, T* __restrict__ y, Pool2dParams p) {
  const int64_t total = static_cast<int64_t>(p.batch) * p.out_h * p.out_w * p.channels;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % p.channels);
    int64_t r = i / p.channels;
    const int ox = static_cast<int>(r % p.out_w);
    r /= p.out_w;
    const int oy = static_cast<int>(r % p.out_h);
    const int b = static_cast<int>(r / p.out_h);
    const int y0 = oy * p.stride_h - p.pad_h, x0 = ox * p.stride_w - p.pad_w;
    const int y1p = min(y0 + p.kernel_h, p.in_h + p.pad_h);
    const int x1p = min(x0 + p.kernel_w, p.in_w + p.pad_w);
    const int ys = max(y0, 0), ye = min(y1p, p.in_h), xs = max(x0, 0), xe = min(x1p, p.in_w);
    float acc = p.average ? 0.f : -FLT_MAX;
    for (int iy = ys; iy < ye; ++iy) {
      for (int ix = xs; ix < xe; ++ix) {
        const float v = dev::ToFloat(
            x[((static_cast<int64_t>(b) * p.in_h + iy) * p.in_w + ix) * p.channels + c]);
        acc = p.average ? acc + v : fmaxf(acc, v);
      }
    }
    if (p.average) {
      const int count = p.count_include_pad ? (y1p - y0) * (x1p - x0) : (ye - ys) * (xe - xs);
      acc /= static_cast<float>(max(count, 1));
    }
    y[i] = dev::FromFloat<T>(acc);
  }
}

}  // namespace

Status Pool2d(const Pool2dParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.in_h <= 0 || p.in_w <= 0 || p.channels <= 0 || p.out_h <= 0 ||
      p.out_w <= 0 || p.kernel_h <= 0 || p.kernel_w <= 0 || p.stride_h <= 0 || p.stride_w <= 0 ||
      p.pad_h < 0 || p.pad_w < 0) {
    return InvalidArgumentError("pool2d: invalid geometry");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int64_t n = static_cast<int64_t>(p.batch) * p.out_h * p.out_w * p.channels;
    const int64_t blocks = std::min<int64_t>((n + 255) / 256, 1 << 20);
    Pool2dKernel<T><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
        static_cast<const T*>(p.input), static_cast<T*>(p.output), p);
    return LaunchStatus("Pool2dKernel");
  });
}

}  // namespace kernels
}  // namespace lookalike
