// Host-side position-embedding resampling, done once at load time.
#pragma once

#include <vector>

namespace lookalike {

// Resamples a grid of embeddings `src` {old_h, old_w, dim} (row-major) to
// {new_h, new_w, dim} the way torch.nn.functional.interpolate(mode="bicubic",
// align_corners=False, antialias=True) does (timm's resample_abs_pos_embed):
// separable, width pass then height pass in fp32; per output index i the
// source centre is scale * (i + 0.5) with scale = old / new; the Keys cubic
// kernel (a = -0.5) is stretched by `scale` when downsampling; taps outside
// the grid are dropped and the weights renormalized.
std::vector<float> ResamplePosEmbedBicubicAA(const float* src, int old_h, int old_w, int dim,
                                             int new_h, int new_w);

}  // namespace lookalike
