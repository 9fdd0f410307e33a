// Two-pass separable resampling, batched over images of different sizes:
// blockIdx.z selects the image, its descriptor (in device memory) says where
// its pixels and its slice of the intermediate buffer are. Filter weights are
// computed per output coordinate on the fly and normalized by their sum, as
// PIL's precompute_coeffs does (PIL then quantizes them to 22-bit fixed point;
// the float weights here differ from it by far less than one uint8 step
// before rounding).
#include "kernels/preprocess.h"

#include <string>

#include "kernels/device_common.cuh"

namespace lookalike {
namespace kernels {
namespace {

struct ImageDesc {
  const uint8_t* src;
  int width, height, stride;
  int resized_w, resized_h;
  int crop_left, crop_top;
  int row0, rows;      // source rows [row0, row0 + rows) feed the crop
  int64_t tmp_offset;  // bytes into the intermediate buffer: {rows, crop_w, 3} uint8
};

struct FilterSpec {
  bool bicubic;
  bool antialias;
};

__device__ __forceinline__ float FilterWeight(float x, bool bicubic) {
  x = fabsf(x);
  if (!bicubic) return x < 1.f ? 1.f - x : 0.f;
  constexpr float a = -0.5f;
  if (x < 1.f) return ((a + 2.f) * x - (a + 3.f)) * x * x + 1.f;
  if (x < 2.f) return (((x - 5.f) * x + 8.f) * x - 4.f) * a;
  return 0.f;
}

// The taps of output coordinate `out_idx` when resampling in_size -> out_size.
struct Taps {
  int first, last;  // [first, last)
  float center, inv_filterscale;
};
__device__ __forceinline__ Taps ComputeTaps(int out_idx, int in_size, int out_size, FilterSpec f) {
  const float scale = static_cast<float>(in_size) / out_size;
  const float filterscale = (f.antialias && scale > 1.f) ? scale : 1.f;
  const float support = (f.bicubic ? 2.f : 1.f) * filterscale;
  Taps t;
  t.center = (out_idx + 0.5f) * scale;
  t.inv_filterscale = 1.f / filterscale;
  t.first = max(static_cast<int>(t.center - support + 0.5f), 0);
  t.last = min(static_cast<int>(t.center + support + 0.5f), in_size);
  return t;
}

__device__ __forceinline__ uint8_t RoundToByte(float v) {
  return static_cast<uint8_t>(fminf(fmaxf(floorf(v + 0.5f), 0.f), 255.f));
}

// Pass 1: rows [row0, row0 + rows) of the source, crop columns only.
__global__ void HorizontalPass(const ImageDesc* __restrict__ descs, uint8_t* __restrict__ tmp,
                               int crop_w, FilterSpec f) {
  const ImageDesc d = descs[blockIdx.z];
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= crop_w) return;
  const Taps taps = ComputeTaps(d.crop_left + x, d.width, d.resized_w, f);
  for (int r = blockIdx.y; r < d.rows; r += gridDim.y) {
    const uint8_t* row = d.src + static_cast<int64_t>(d.row0 + r) * d.stride;
    float acc[3] = {0.f, 0.f, 0.f};
    float wsum = 0.f;
    for (int i = taps.first; i < taps.last; ++i) {
      const float w = FilterWeight((i - taps.center + 0.5f) * taps.inv_filterscale, f.bicubic);
      wsum += w;
      acc[0] += w * row[3 * i];
      acc[1] += w * row[3 * i + 1];
      acc[2] += w * row[3 * i + 2];
    }
    const float inv = wsum != 0.f ? 1.f / wsum : 0.f;
    uint8_t* out = tmp + d.tmp_offset + (static_cast<int64_t>(r) * crop_w + x) * 3;
    out[0] = RoundToByte(acc[0] * inv);
    out[1] = RoundToByte(acc[1] * inv);
    out[2] = RoundToByte(acc[2] * inv);
  }
}

struct Normalize {
  float scale[3];  // 1 / (255 * std)
  float shift[3];  // -mean / std
};

// Pass 2: crop rows; writes {crop_h, crop_w, 3} normalized.
template <typename T>
__global__ void VerticalPass(const ImageDesc* __restrict__ descs, const uint8_t* __restrict__ tmp,
                             T* __restrict__ out, int crop_w, int crop_h, FilterSpec f,
                             Normalize nrm) {
  const ImageDesc d = descs[blockIdx.z];
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= crop_w) return;
  for (int y = blockIdx.y; y < crop_h; y += gridDim.y) {
    const Taps taps = ComputeTaps(d.crop_top + y, d.height, d.resized_h, f);
    // The host planned [row0, row0 + rows) with the same arithmetic; the clamp
    // only guards the intermediate buffer.
    const int first = max(taps.first, d.row0);
    const int last = min(taps.last, d.row0 + d.rows);
    float acc[3] = {0.f, 0.f, 0.f};
    float wsum = 0.f;
    for (int i = first; i < last; ++i) {
      const float w = FilterWeight((i - taps.center + 0.5f) * taps.inv_filterscale, f.bicubic);
      wsum += w;
      const uint8_t* p = tmp + d.tmp_offset + (static_cast<int64_t>(i - d.row0) * crop_w + x) * 3;
      acc[0] += w * p[0];
      acc[1] += w * p[1];
      acc[2] += w * p[2];
    }
    const float inv = wsum != 0.f ? 1.f / wsum : 0.f;
    T* o = out + ((static_cast<int64_t>(blockIdx.z) * crop_h + y) * crop_w + x) * 3;
#pragma unroll
    for (int c = 0; c < 3; ++c) {
      const float v = static_cast<float>(RoundToByte(acc[c] * inv));
      o[c] = dev::FromFloat<T>(v * nrm.scale[c] + nrm.shift[c]);
    }
  }
}

// Host mirror of ComputeTaps for the vertical row range (same float arithmetic).
void SourceRows(int crop_top, int crop_h, int in_size, int out_size, const PreprocessParams& p,
                int* row0, int* rows) {
  const float scale = static_cast<float>(in_size) / out_size;
  const float filterscale = (p.antialias && scale > 1.f) ? scale : 1.f;
  const float support = (p.bicubic ? 2.f : 1.f) * filterscale;
  const float c_first = (crop_top + 0.5f) * scale;
  const float c_last = (crop_top + crop_h - 1 + 0.5f) * scale;
  int first = static_cast<int>(c_first - support + 0.5f);
  if (first < 0) first = 0;
  int last = static_cast<int>(c_last + support + 0.5f);
  if (last > in_size) last = in_size;
  *row0 = first;
  *rows = last - first;
}

StatusOr<std::vector<ImageDesc>> Plan(const PreprocessParams& p, size_t* tmp_bytes) {
  if (p.count <= 0 || p.images == nullptr) {
    return InvalidArgumentError("preprocess: no images");
  }
  if (p.count > 65535) return InvalidArgumentError("preprocess: more than 65535 images");
  std::vector<ImageDesc> descs(p.count);
  int64_t offset = 0;
  for (int i = 0; i < p.count; ++i) {
    const DeviceImage& im = p.images[i];
    if (im.data == nullptr || im.stride_bytes < 3 * im.width) {
      return InvalidArgumentError("preprocess: image " + std::to_string(i) +
                                  " has no data or stride_bytes < 3*width");
    }
    auto plan = ref::PlanResize(im.width, im.height, p.resize_shorter, p.crop_w, p.crop_h);
    if (!plan.ok()) return plan.status().WithPrefix("image " + std::to_string(i));
    ImageDesc& d = descs[i];
    d.src = im.data;
    d.width = im.width;
    d.height = im.height;
    d.stride = im.stride_bytes;
    d.resized_w = plan->resized_w;
    d.resized_h = plan->resized_h;
    d.crop_left = plan->crop_left;
    d.crop_top = plan->crop_top;
    SourceRows(d.crop_top, p.crop_h, d.height, d.resized_h, p, &d.row0, &d.rows);
    d.tmp_offset = offset;
    offset += static_cast<int64_t>(d.rows) * p.crop_w * 3;
  }
  *tmp_bytes = static_cast<size_t>(offset);
  return descs;
}

constexpr size_t kDescAlign = 256;
size_t DescBytes(int count) {
  return (count * sizeof(ImageDesc) + kDescAlign - 1) / kDescAlign * kDescAlign;
}

}  // namespace

StatusOr<size_t> PreprocessWorkspaceBytes(const PreprocessParams& p) {
  size_t tmp = 0;
  auto descs = Plan(p, &tmp);
  if (!descs.ok()) return descs.status();
  return DescBytes(p.count) + tmp;
}

Status Preprocess(const PreprocessParams& p, cudaStream_t stream) {
  size_t tmp_bytes = 0;
  ASSIGN_OR_RETURN(std::vector<ImageDesc> descs, Plan(p, &tmp_bytes));
  const size_t need = DescBytes(p.count) + tmp_bytes;
  if (p.workspace == nullptr || p.workspace_bytes < need) {
    return InvalidArgumentError("preprocess: workspace of " + std::to_string(p.workspace_bytes) +
                                " bytes, need " + std::to_string(need));
  }
  if (p.output == nullptr) return InvalidArgumentError("preprocess: no output");
  auto* d_descs = static_cast<ImageDesc*>(p.workspace);
  uint8_t* tmp = static_cast<uint8_t*>(p.workspace) + DescBytes(p.count);
  RETURN_IF_ERROR(
      CudaStatus(cudaMemcpyAsync(d_descs, descs.data(), descs.size() * sizeof(ImageDesc),
                                 cudaMemcpyHostToDevice, stream),
                 "preprocess: uploading image descriptors"));
  int max_rows = 1;
  for (const ImageDesc& d : descs) max_rows = d.rows > max_rows ? d.rows : max_rows;
  const FilterSpec f{p.bicubic, p.antialias};
  const int threads = 128;
  const unsigned gx = (p.crop_w + threads - 1) / threads;
  dim3 grid1(gx, max_rows < 1024 ? max_rows : 1024, p.count);
  HorizontalPass<<<grid1, threads, 0, stream>>>(d_descs, tmp, p.crop_w, f);
  RETURN_IF_ERROR(LaunchStatus("HorizontalPass"));
  Normalize nrm;
  for (int c = 0; c < 3; ++c) {
    if (!(p.std[c] > 0.f)) return InvalidArgumentError("preprocess: std must be positive");
    nrm.scale[c] = 1.f / (255.f * p.std[c]);
    nrm.shift[c] = -p.mean[c] / p.std[c];
  }
  dim3 grid2(gx, p.crop_h < 1024 ? p.crop_h : 1024, p.count);
  switch (p.type) {
    case DType::kF32:
      VerticalPass<float><<<grid2, threads, 0, stream>>>(
          d_descs, tmp, static_cast<float*>(p.output), p.crop_w, p.crop_h, f, nrm);
      break;
    case DType::kF16:
      VerticalPass<__half><<<grid2, threads, 0, stream>>>(
          d_descs, tmp, static_cast<__half*>(p.output), p.crop_w, p.crop_h, f, nrm);
      break;
    case DType::kBF16:
      VerticalPass<__nv_bfloat16><<<grid2, threads, 0, stream>>>(
          d_descs, tmp, static_cast<__nv_bfloat16*>(p.output), p.crop_w, p.crop_h, f, nrm);
      break;
  }
  return LaunchStatus("VerticalPass");
}

}  // namespace kernels
}  // namespace lookalike
