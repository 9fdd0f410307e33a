// Embedder::Load / MakeBackend argument checks and weight-name errors
// (full models run in parity_test.cc against the reference fixtures).
#include "models/embedder.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "models/backend_factory.h"
#include "models/cpu/cpu_backend.h"
#include "models/safetensors.h"

namespace lookalike {
namespace {

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/embedder_test_" + std::to_string(::getpid()) + "_" + name;
}

TEST(BackendFactoryTest, Devices) {
  auto cpu = MakeBackend("cpu", 1);
  ASSERT_TRUE(cpu.ok()) << cpu.status().ToString();
  EXPECT_EQ((*cpu)->name(), "cpu");
  EXPECT_EQ((*cpu)->device(), DeviceKind::kCpu);

  auto unknown = MakeBackend("tpu", 1);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("'tpu'"), std::string::npos);
  EXPECT_EQ(MakeBackend("cuda:x", 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeBackend("cpu", -1).status().code(), StatusCode::kInvalidArgument);
  // The same Device either way: one parser.
  auto parsed = MakeBackend(Device{DeviceKind::kCpu, 0}, 1);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ((*parsed)->name(), "cpu");
  if (CudaDeviceCount() == 0) {
    // Without a usable GPU (or without CUDA in this build) "cuda:0" is a clear
    // FAILED_PRECONDITION and "auto" falls back to the CPU.
    auto cuda = MakeBackend("cuda:0", 1);
    ASSERT_FALSE(cuda.ok());
    EXPECT_EQ(cuda.status().code(), StatusCode::kFailedPrecondition) << cuda.status().ToString();
    auto autodev = MakeBackend("auto", 1);
    ASSERT_TRUE(autodev.ok());
    EXPECT_EQ((*autodev)->name(), "cpu");
  }
}

// cuBLAS is loaded on first use, not linked (kernels/cublas_loader.h): linking
// it costs every process ~150 MB of resident memory at start-up. A CPU engine,
// in a binary that has the CUDA backend too, must not map it.
TEST(BackendFactoryTest, CpuEngineDoesNotMapCublas) {
  std::ifstream maps("/proc/self/maps");
  if (!maps) GTEST_SKIP() << "no /proc/self/maps on this system";
  auto cpu = MakeBackend("cpu", 1);
  ASSERT_TRUE(cpu.ok()) << cpu.status().ToString();
  std::vector<float> ones(2 * 2 * 3, 1.0f);
  ConvSpec spec;
  spec.in_channels = 3;
  spec.out_channels = 4;
  auto conv = (*cpu)->PrepareConv(spec, ones.data(), nullptr);
  ASSERT_TRUE(conv.ok()) << conv.status().ToString();
  auto x = (*cpu)->Constant({1, 2, 2, 3}, ones.data());
  ASSERT_TRUE(x.ok()) << x.status().ToString();
  auto y = (*cpu)->Conv2d(**conv, *x, Activation::kNone, nullptr);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  std::string line;
  while (std::getline(maps, line)) {
    EXPECT_EQ(line.find("libcublas"), std::string::npos) << "mapped: " << line;
  }
}

TEST(BackendFactoryTest, Precision) {
  // fp32 is the CPU's default and always available.
  auto fp32 = MakeBackend("cpu", 1, DType::kF32);
  ASSERT_TRUE(fp32.ok()) << fp32.status().ToString();
  EXPECT_EQ((*fp32)->compute_dtype(), DType::kF32);
  // fp16 is not a CPU precision; fp32 not a CUDA one (checked before any GPU is opened).
  auto fp16 = MakeBackend("cpu", 1, DType::kF16);
  EXPECT_EQ(fp16.status().code(), StatusCode::kInvalidArgument) << fp16.status().ToString();
  EXPECT_NE(fp16.status().message().find("fp32 or bf16"), std::string::npos);
  auto cuda_fp32 = MakeBackend("cuda:0", 1, DType::kF32);
  EXPECT_EQ(cuda_fp32.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(cuda_fp32.status().message().find("precision fp32 on cuda:0"), std::string::npos)
      << cuda_fp32.status().ToString();
  // bf16 on the CPU: available exactly where CpuBf16UnavailableReason() is
  // empty; elsewhere FAILED_PRECONDITION naming the missing CPU feature.
  auto bf16 = MakeBackend("cpu", 1, DType::kBF16);
  const std::string why = CpuBf16UnavailableReason();
  if (why.empty()) {
    ASSERT_TRUE(bf16.ok()) << bf16.status().ToString();
    EXPECT_EQ((*bf16)->compute_dtype(), DType::kF32);  // activations stay fp32
  } else {
    ASSERT_FALSE(bf16.ok());
    EXPECT_EQ(bf16.status().code(), StatusCode::kFailedPrecondition) << bf16.status().ToString();
    EXPECT_NE(bf16.status().message().find("precision bf16 on the CPU: " + why), std::string::npos)
        << bf16.status().ToString();
    // The reason names a CPU feature (or, without oneDNN, the missing library).
    EXPECT_TRUE(why.find("avx512_bf16") != std::string::npos ||
                why.find("oneDNN") != std::string::npos)
        << why;
  }
  EXPECT_EQ(CpuBackend::Create({1, DType::kBF16}).ok(), why.empty());
}

TEST(EmbedderLoadTest, RejectsBadOptions) {
  EmbedderOptions o;
  o.preset = "resnet18";
  o.weights_path = TempPath("none.safetensors");
  o.num_threads = 1;

  EmbedderOptions bad = o;
  bad.preset = "alexnet";
  EXPECT_NE(Embedder::Load(bad).status().message().find("unknown preset 'alexnet'"),
            std::string::npos);
  bad = o;
  bad.max_batch = 0;
  EXPECT_EQ(Embedder::Load(bad).status().code(), StatusCode::kInvalidArgument);
  bad = o;
  bad.output = "features";
  EXPECT_NE(Embedder::Load(bad).status().message().find("output must be"), std::string::npos);
  bad = o;
  bad.preset = "vit_s16";
  bad.output = "logits";
  EXPECT_NE(Embedder::Load(bad).status().message().find("has no classifier head"),
            std::string::npos);
  bad = o;
  bad.precision = "fp64";
  auto precision = Embedder::Load(bad);
  EXPECT_EQ(precision.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(precision.status().message().find("precision \"fp64\" is not one of fp32, fp16, bf16"),
            std::string::npos)
      << precision.status().ToString();
  auto missing = Embedder::Load(o);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("none.safetensors"), std::string::npos);
}

TEST(EmbedderLoadTest, Bf16WithoutTheCpuFeatureFailsAtLoad) {
  const std::string why = CpuBf16UnavailableReason();
  if (why.empty()) GTEST_SKIP() << "this CPU computes bf16 (models_parity_bf16_* check it)";
  EmbedderOptions o;
  o.preset = "resnet18";
  o.num_threads = 1;
  o.precision = "bf16";
  o.weights_path = TempPath("bf16.safetensors");
  ASSERT_TRUE(WriteSafetensors(o.weights_path, {MakeF32Tensor("unrelated", {1}, {0})}).ok());
  auto r = Embedder::Load(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().ToString();
  EXPECT_NE(r.status().message().find(why), std::string::npos) << r.status().ToString();
}

TEST(EmbedderLoadTest, WeightErrorsNameTheTensor) {
  EmbedderOptions o;
  o.preset = "resnet18";
  o.num_threads = 1;
  o.weights_path = TempPath("empty.safetensors");
  ASSERT_TRUE(WriteSafetensors(o.weights_path, {MakeF32Tensor("unrelated", {1}, {0})}).ok());
  auto r = Embedder::Load(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(
      r.status().message().find("missing tensor 'conv1.weight' (expected shape [64, 3, 7, 7])"),
      std::string::npos)
      << r.status().ToString();

  o.weights_path = TempPath("misshaped.safetensors");
  ASSERT_TRUE(WriteSafetensors(o.weights_path, {MakeF32Tensor("conv1.weight", {64, 3, 3, 3},
                                                              std::vector<float>(64 * 27))})
                  .ok());
  r = Embedder::Load(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(
                "tensor 'conv1.weight' has shape [64, 3, 3, 3], expected [64, 3, 7, 7]"),
            std::string::npos)
      << r.status().ToString();

  o.preset = "clip_vit_b32";
  o.weights_path = TempPath("clip.safetensors");
  ASSERT_TRUE(WriteSafetensors(o.weights_path, {MakeF32Tensor("x", {1}, {0})}).ok());
  r = Embedder::Load(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(
                "missing tensor 'vision_model.embeddings.patch_embedding.weight' (expected shape "
                "[768, 3, 32, 32])"),
            std::string::npos)
      << r.status().ToString();
}

}  // namespace
}  // namespace lookalike
