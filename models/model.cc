#include "models/model.h"

namespace lookalike {

StatusOr<std::unique_ptr<Model>> BuildModel(const Preset& preset, WeightStore& weights,
                                            Backend& backend) {
  if (preset.family == "resnet") return BuildResNet(preset, weights, backend);
  if (preset.family == "vit" || preset.family == "clip_vit" || preset.family == "dinov2" ||
      preset.family == "deit") {
    return BuildVit(preset, weights, backend);
  }
  if (preset.family == "efficientnet_lite") return BuildEfficientNetLite(preset, weights, backend);
  if (preset.family == "convnext") return BuildConvNext(preset, weights, backend);
  if (preset.family == "swin") return BuildSwin(preset, weights, backend);
  // torchvision MobileNet, VGG, DenseNet, GoogLeNet / Inception.
  if (preset.family == "mobilenet") return BuildMobileNet(preset, weights, backend);
  if (preset.family == "vgg") return BuildVgg(preset, weights, backend);
  if (preset.family == "densenet") return BuildDenseNet(preset, weights, backend);
  if (preset.family == "inception") return BuildInception(preset, weights, backend);
  return InvalidArgumentError("preset '" + preset.name + "': unknown family '" + preset.family +
                              "'");
}

}  // namespace lookalike
