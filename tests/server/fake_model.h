// A stand-in model for server tests that must not need weights, and the
// small images they send it.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "models/image.h"
#include "server/embed_pipeline.h"

namespace lookalike::testing {

// Vector of each image: {mean R, mean G, mean B, 100} / 255 (dim 4).
Status FakeEmbed(const std::vector<ImageView>& images, std::vector<float>* out);

// A served model "fake" (preset "fake_preset", dim 4, input 8 x 8, "cpu")
// running FakeEmbed.
ServedModel FakeModel();

// A w x h PNG of one colour.
std::string Png(int r, int g, int b, int w = 8, int h = 6);

}  // namespace lookalike::testing
