// Fused attention kernel at ViT shapes: (B, heads, T, head_dim) fp16.
//   cuda_attention_bench [--batch 1,8,32,256] [--heads 12] [--seq 197] [--head-dim 64]
// Prints one JSON line per shape: {"op":"attention","impl":"lookalike",...,"ms":...}.
// The peer (torch SDPA flash / cuDNN / efficient) is bench/cuda/peer_attention.py,
// run by bench/cuda/run.sh in the same session.
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "bench/cuda/bench_util.h"
#include "kernels/attention.h"

using namespace lookalike;

static std::vector<int> ParseList(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::stoi(item));
  return v;
}

int main(int argc, char** argv) {
  std::vector<int> batches = {1, 8, 32, 256};
  int heads = 12, seq = 197, hd = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--batch")
      batches = ParseList(argv[i + 1]);
    else if (a == "--heads")
      heads = std::stoi(argv[i + 1]);
    else if (a == "--seq")
      seq = std::stoi(argv[i + 1]);
    else if (a == "--head-dim")
      hd = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 1;
    }
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "no CUDA device: nothing measured\n");
    return 3;
  }
  cudaStream_t stream;
  BENCH_CUDA_CHECK(cudaStreamCreate(&stream));
  for (int b : batches) {
    const int dim = heads * hd;
    const size_t qkv_n = static_cast<size_t>(b) * seq * 3 * dim;
    const size_t out_n = static_cast<size_t>(b) * seq * dim;
    const int rot = bench::RotationCount(qkv_n * 2);
    std::vector<void*> qkv(rot), out(rot);
    for (int r = 0; r < rot; ++r) {
      BENCH_CUDA_CHECK(cudaMalloc(&qkv[r], qkv_n * 2));
      BENCH_CUDA_CHECK(cudaMalloc(&out[r], out_n * 2));
      bench::FillRandomHalf(qkv[r], qkv_n, r + 1);
    }
    kernels::AttentionParams p;
    p.type = DType::kF16;
    p.batch = b;
    p.seq = seq;
    p.heads = heads;
    p.head_dim = hd;
    p.qkv_row_stride = 3 * dim;
    p.out_row_stride = dim;
    bool failed = false;
    const double ms = bench::TimeMs(stream, [&](int i) {
      p.qkv = qkv[i % rot];
      p.out = out[i % rot];
      const Status s = kernels::Attention(p, stream);
      if (!s.ok() && !failed) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        failed = true;
      }
    });
    BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (failed) return 2;
    const double flops = 4.0 * b * heads * static_cast<double>(seq) * seq * hd;
    std::printf(
        "{\"op\":\"attention\",\"impl\":\"lookalike\",\"batch\":%d,\"heads\":%d,\"seq\":%d,"
        "\"head_dim\":%d,\"ms\":%.5f,\"tflops\":%.2f}\n",
        b, heads, seq, hd, ms, flops / (ms * 1e-3) / 1e12);
    for (int r = 0; r < rot; ++r) {
      cudaFree(qkv[r]);
      cudaFree(out[r]);
    }
  }
  cudaStreamDestroy(stream);
  return 0;
}
