// Embedder: the engine's public API, what the server and CLI call.
//
//   ASSIGN_OR_RETURN(auto embedder, Embedder::Load(options));
//   std::vector<float> vectors;                   // images.size() x info().dim
//   RETURN_IF_ERROR(embedder->Embed(images, &vectors));
//
// A model is a preset (models/presets.h: family, variant, input size,
// preprocessing, pooling, output dim, normalization) plus a weights file
// (.safetensors with the reference implementation's tensor names) run on a
// backend (cpu, or cuda when built with CUDA and a GPU is present).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/device.h"
#include "common/status.h"
#include "models/backend.h"

namespace lookalike {

struct EmbedderOptions {
  std::string preset;        // e.g. "efficientnet_lite0", "resnet50", "vit_b16", "clip_vit_b32"
  std::string weights_path;  // .safetensors
  std::string device =
      "cpu";            // parsed by ParseDevice (common/device.h): "cpu", "cuda", "cuda:N", "auto"
  int num_threads = 0;  // CPU backend threads; 0 = all cores
  // The precision the model computes in: "auto" (the device's default: fp32
  // on the CPU, fp16 on CUDA), "fp32" | "bf16" on the CPU, "fp16" | "bf16" on
  // CUDA (MakeBackend, models/backend_factory.h, says which errors).
  std::string precision = "auto";
  int max_batch = 64;  // Embed() splits larger batches
  // What Embed() returns per image: "embedding" (the preset's embedding,
  // L2-normalized when the preset says so) or "logits" (the reference
  // model's ImageNet classifier output, {1000}, unnormalized; only presets
  // with a classifier: resnet*, efficientnet_lite*).
  std::string output = "embedding";
};

struct ModelInfo {
  std::string preset;
  std::string family;    // "resnet", "vit", "clip_vit", "dinov2", "efficientnet_lite",
                         // "mobilenet", "vgg", "densenet", "inception"
  int dim = 0;           // embedding dimension
  int input_height = 0;  // after crop
  int input_width = 0;
  bool l2_normalized = true;
  // clip_vit with a CLIPModel checkpoint: EmbedTexts() works and returns
  // vectors of `dim` in the image embeddings' space. False for vision-only
  // weights and every other family.
  bool has_text = false;
  int text_context_length = 0;  // longest token sequence EmbedTexts() takes
  std::string backend;          // Backend::name()
  PreprocessSpec preprocess;
};

class Embedder {
 public:
  virtual ~Embedder() = default;

  // Validates the preset, reads and checks the weights (missing, unexpected or
  // mis-shaped tensors: INVALID_ARGUMENT naming the tensor and both shapes),
  // and prepares the model on the chosen device.
  static StatusOr<std::unique_ptr<Embedder>> Load(const EmbedderOptions& options);

  virtual const ModelInfo& info() const = 0;

  // Embeds decoded RGB images. `out` is resized to images.size() * info().dim,
  // row-major, one vector per image in order. Thread-safe (calls are serialized
  // per model replica).
  virtual Status Embed(const std::vector<ImageView>& images, std::vector<float>* out) = 0;

  // Embeds tokenized texts (ClipTokenizer::Tokenize output: each sequence
  // 1..info().text_context_length ids, all of one length) into the image
  // embeddings' space, L2-normalized. `out` is resized to token_ids.size() *
  // info().dim. FAILED_PRECONDITION when the model has no text tower
  // (info().has_text is false); INVALID_ARGUMENT for ragged or out-of-range
  // ids. Thread-safe like Embed().
  virtual Status EmbedTexts(const std::vector<std::vector<int32_t>>& token_ids,
                            std::vector<float>* out) = 0;
};

}  // namespace lookalike
