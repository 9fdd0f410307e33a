#include "fake_model.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

namespace lookalike::testing {

Status FakeEmbed(const std::vector<ImageView>& images, std::vector<float>* out) {
  out->clear();
  for (const ImageView& v : images) {
    double sum[3] = {0, 0, 0};
    for (int y = 0; y < v.height; ++y) {
      const uint8_t* row = v.data + static_cast<size_t>(y) * v.stride_bytes;
      for (int x = 0; x < v.width; ++x) {
        for (int c = 0; c < 3; ++c) sum[c] += row[3 * x + c];
      }
    }
    const double n = double(v.width) * v.height;
    for (int c = 0; c < 3; ++c) out->push_back(static_cast<float>(sum[c] / n / 255.0));
    out->push_back(100.f / 255.f);
  }
  return Status::Ok();
}

ServedModel FakeModel() {
  ServedModel model;
  model.name = "fake";
  model.info.preset = "fake_preset";
  model.info.dim = 4;
  model.info.input_height = 8;
  model.info.input_width = 8;
  model.info.backend = "cpu";
  model.embed = FakeEmbed;
  return model;
}

std::string Png(int r, int g, int b, int w, int h) {
  cv::Mat bgr(h, w, CV_8UC3, cv::Scalar(b, g, r));
  std::vector<uint8_t> buf;
  cv::imencode(".png", bgr, buf);
  return std::string(buf.begin(), buf.end());
}

}  // namespace lookalike::testing
