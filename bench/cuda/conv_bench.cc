// Convolution kernels vs cuDNN (the peer, called directly, same run, same
// buffers): NHWC fp16, fp32 accumulation, bias + ReLU fused on both sides
// (cuDNN: cudnnConvolutionBiasActivationForward with the fastest algorithm
// cudnnFindConvolutionForwardAlgorithm reports).
//   cuda_conv_bench [--batch 32]
// Prints one JSON line per (layer, impl) with the median ms per call.
#include <cudnn.h>

#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda/bench_util.h"
#include "kernels/conv.h"

using namespace lookalike;

#define CUDNN_CHECK(expr)                                                                         \
  do {                                                                                            \
    const cudnnStatus_t s_ = (expr);                                                              \
    if (s_ != CUDNN_STATUS_SUCCESS) {                                                             \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudnnGetErrorString(s_)); \
      std::exit(2);                                                                               \
    }                                                                                             \
  } while (0)

struct Layer {
  const char* name;
  int h, w, cin, cout, k, stride, pad;
  bool depthwise;
};

int main(int argc, char** argv) {
  int batch = 32;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--batch") batch = std::stoi(argv[i + 1]);
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "no CUDA device: nothing measured\n");
    return 3;
  }
  const Layer layers[] = {
      {"resnet50_stem_7x7s2", 224, 224, 3, 64, 7, 2, 3, false},
      {"resnet50_1x1_64_256", 56, 56, 64, 256, 1, 1, 0, false},
      {"resnet50_3x3_64", 56, 56, 64, 64, 3, 1, 1, false},
      {"resnet50_3x3s2_128", 56, 56, 128, 128, 3, 2, 1, false},
      {"resnet50_1x1_1024_256", 14, 14, 1024, 256, 1, 1, 0, false},
      {"resnet50_3x3_512", 7, 7, 512, 512, 3, 1, 1, false},
      {"vit_b16_patch16", 224, 224, 3, 768, 16, 16, 0, false},
      {"effnet_dw3x3_144", 56, 56, 144, 144, 3, 1, 1, true},
      {"effnet_dw5x5_240", 28, 28, 240, 240, 5, 1, 2, true},
  };
  cudaStream_t stream;
  BENCH_CUDA_CHECK(cudaStreamCreate(&stream));
  cudnnHandle_t cudnn;
  CUDNN_CHECK(cudnnCreate(&cudnn));
  CUDNN_CHECK(cudnnSetStream(cudnn, stream));
  for (const Layer& L : layers) {
    kernels::ConvGeometry g;
    g.batch = batch;
    g.in_h = L.h;
    g.in_w = L.w;
    g.in_channels = L.cin;
    g.out_channels = L.cout;
    g.kernel_h = g.kernel_w = L.k;
    g.stride_h = g.stride_w = L.stride;
    g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = L.pad;
    const int oh = g.out_h(), ow = g.out_w();
    const size_t x_n = static_cast<size_t>(batch) * L.h * L.w * L.cin;
    const size_t y_n = static_cast<size_t>(batch) * oh * ow * L.cout;
    const int64_t k = static_cast<int64_t>(L.k) * L.k * (L.depthwise ? 1 : L.cin);
    const int64_t ldw = L.depthwise ? k : kernels::ConvWeightRowStride(k);
    const size_t w_n = static_cast<size_t>(L.cout) * ldw;
    const int rot = bench::RotationCount(x_n * 2);
    std::vector<void*> xs(rot);
    for (int r = 0; r < rot; ++r) {
      BENCH_CUDA_CHECK(cudaMalloc(&xs[r], x_n * 2));
      bench::FillRandomHalf(xs[r], x_n, r + 1);
    }
    void *w, *y, *bias32, *bias16;
    BENCH_CUDA_CHECK(cudaMalloc(&w, w_n * 2));
    BENCH_CUDA_CHECK(cudaMalloc(&y, y_n * 2));
    BENCH_CUDA_CHECK(cudaMalloc(&bias32, L.cout * 4));
    BENCH_CUDA_CHECK(cudaMalloc(&bias16, L.cout * 2));
    bench::FillRandomHalf(w, w_n, 99);
    bench::FillRandomHalf(bias16, L.cout, 98);
    BENCH_CUDA_CHECK(cudaMemset(bias32, 0, L.cout * 4));
    const double flops = 2.0 * batch * oh * ow * L.cout * static_cast<double>(k);

    // ours
    bool failed = false;
    const double ms_ours = bench::TimeMs(stream, [&](int i) {
      Status s;
      if (L.depthwise) {
        kernels::DepthwiseParams p;
        p.geo = g;
        p.input = xs[i % rot];
        p.weight = w;
        p.bias = static_cast<float*>(bias32);
        p.output = y;
        p.act = Activation::kRelu;
        s = kernels::DepthwiseConv2d(p, stream);
      } else {
        kernels::ConvParams p;
        p.geo = g;
        p.input = xs[i % rot];
        p.weight = w;
        p.weight_row_stride = ldw;
        p.bias = static_cast<float*>(bias32);
        p.output = y;
        p.act = Activation::kRelu;
        s = kernels::Conv2d(p, stream);
      }
      if (!s.ok() && !failed) {
        std::fprintf(stderr, "%s: %s\n", L.name, s.ToString().c_str());
        failed = true;
      }
    });
    if (failed) return 2;
    std::printf(
        "{\"op\":\"conv\",\"layer\":\"%s\",\"impl\":\"lookalike\",\"batch\":%d,\"ms\":%.5f,"
        "\"tflops\":%.2f}\n",
        L.name, batch, ms_ours, flops / (ms_ours * 1e-3) / 1e12);

    // cuDNN peer
    cudnnTensorDescriptor_t xd, yd, bd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnActivationDescriptor_t ad;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&xd));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&yd));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&bd));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&wd));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&cd));
    CUDNN_CHECK(cudnnCreateActivationDescriptor(&ad));
    CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NHWC, CUDNN_DATA_HALF, batch, L.cin, L.h, L.w));
    CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NHWC, CUDNN_DATA_HALF, batch, L.cout, oh, ow));
    CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NHWC, CUDNN_DATA_HALF, 1, L.cout, 1, 1));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_HALF, CUDNN_TENSOR_NHWC, L.cout,
                                           L.depthwise ? 1 : L.cin, L.k, L.k));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(cd, L.pad, L.pad, L.stride, L.stride, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(cd, CUDNN_TENSOR_OP_MATH));
    if (L.depthwise) CUDNN_CHECK(cudnnSetConvolutionGroupCount(cd, L.cin));
    CUDNN_CHECK(
        cudnnSetActivationDescriptor(ad, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
    cudnnConvolutionFwdAlgoPerf_t perf[8];
    int returned = 0;
    CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(cudnn, xd, wd, cd, yd, 8, &returned, perf));
    double best = -1;
    const char* best_algo = "none";
    for (int a = 0; a < returned; ++a) {
      if (perf[a].status != CUDNN_STATUS_SUCCESS) continue;
      size_t ws_bytes = 0;
      if (cudnnGetConvolutionForwardWorkspaceSize(cudnn, xd, wd, cd, yd, perf[a].algo, &ws_bytes) !=
          CUDNN_STATUS_SUCCESS)
        continue;
      void* ws = nullptr;
      if (ws_bytes > 0 && cudaMalloc(&ws, ws_bytes) != cudaSuccess) continue;
      const float one = 1.f, zero = 0.f;
      // Probe: the fused call supports only some algorithms.
      if (cudnnConvolutionBiasActivationForward(cudnn, &one, xd, xs[0], wd, w, cd, perf[a].algo, ws,
                                                ws_bytes, &zero, yd, y, bd, bias16, ad, yd,
                                                y) != CUDNN_STATUS_SUCCESS) {
        cudaFree(ws);
        continue;
      }
      const double ms = bench::TimeMs(stream, [&](int i) {
        cudnnConvolutionBiasActivationForward(cudnn, &one, xd, xs[i % rot], wd, w, cd, perf[a].algo,
                                              ws, ws_bytes, &zero, yd, y, bd, bias16, ad, yd, y);
      });
      cudaFree(ws);
      if (best < 0 || ms < best) {
        best = ms;
        best_algo = a == 0 ? "find_first" : "find_other";
      }
    }
    if (best > 0) {
      std::printf(
          "{\"op\":\"conv\",\"layer\":\"%s\",\"impl\":\"cudnn_fused_bias_relu\",\"batch\":%d,"
          "\"ms\":%.5f,\"tflops\":%.2f,\"algo_rank\":\"%s\",\"ours_over_peer\":%.3f}\n",
          L.name, batch, best, flops / (best * 1e-3) / 1e12, best_algo, ms_ours / best);
    } else {
      std::printf(
          "{\"op\":\"conv\",\"layer\":\"%s\",\"impl\":\"cudnn_fused_bias_relu\",\"error\":\"no "
          "algorithm\"}\n",
          L.name);
    }
    std::fflush(stdout);
    cudnnDestroyTensorDescriptor(xd);
    cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyTensorDescriptor(bd);
    cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyConvolutionDescriptor(cd);
    cudnnDestroyActivationDescriptor(ad);
    for (void* x : xs) cudaFree(x);
    cudaFree(w);
    cudaFree(y);
    cudaFree(bias32);
    cudaFree(bias16);
  }
  cudnnDestroy(cudnn);
  cudaStreamDestroy(stream);
  return 0;
}
