// Whole backbones on CudaBackend (fp16), model forward only (input already
// preprocessed on the device; no decode, no host copies inside the timing).
//   cuda_model_bench --preset resnet50 --weights W.safetensors [--batch 1,8,32,128,256]
//                    [--iters 20]
// W: the reference model's state_dict as .safetensors (bench/cuda/peer_models.py
// writes the same random weights it times PyTorch with). Two JSON lines per
// batch: eager (one launch per op) and CUDA graphs (CudaBackend::RunRecorded),
// each with throughput (back-to-back forwards) and latency (one forward, enqueue
// to completion).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "models/cuda/cuda_backend.h"
#include "models/model.h"
#include "models/presets.h"
#include "models/weights.h"

using namespace lookalike;

int main(int argc, char** argv) {
  std::string preset_name, weights_path;
  std::vector<int> batches = {1, 8, 32, 128, 256};
  int iters = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--preset")
      preset_name = v;
    else if (a == "--weights")
      weights_path = v;
    else if (a == "--iters")
      iters = std::stoi(v);
    else if (a == "--batch") {
      batches.clear();
      std::stringstream ss(v);
      std::string item;
      while (std::getline(ss, item, ',')) batches.push_back(std::stoi(item));
    } else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 1;
    }
  }
  if (preset_name.empty() || weights_path.empty()) {
    std::fprintf(stderr, "usage: %s --preset P --weights FILE [--batch 1,8] [--iters N]\n",
                 argv[0]);
    return 1;
  }
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  };
  auto preset = FindPreset(preset_name);
  if (!preset.ok()) return fail(preset.status());
  auto backend = CudaBackend::Create({});
  if (!backend.ok()) return fail(backend.status());
  auto weights = WeightStore::Open(weights_path);
  if (!weights.ok()) return fail(weights.status());
  auto model = BuildModel(*preset, **weights, **backend);
  if (!model.ok()) return fail(model.status());
  const int s = preset->input_size;
  for (int b : batches) {
    std::vector<float> host(static_cast<size_t>(b) * s * s * 3);
    std::mt19937 rng(b);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (float& v : host) v = nd(rng);
    auto x = (*backend)->Upload({b, s, s, 3}, host.data());
    if (!x.ok()) return fail(x.status());
    const Backend::ForwardFn forward = [&](const Tensor& in) {
      return (*model)->Forward(**backend, in);
    };
    // Eager: one launch per op. Graphs: RunRecorded (recorded at its second
    // call, replayed after; the warm-up calls cover both).
    for (const bool graphs : {false, true}) {
      auto run = [&]() -> Status {
        auto y = graphs ? (*backend)->RunRecorded(*x, forward) : forward(*x);
        return y.ok() ? Status::Ok() : y.status();
      };
      for (int i = 0; i < 3; ++i) {
        Status st = run();
        if (!st.ok()) return fail(st);
      }
      Status st = (*backend)->Synchronize();
      if (!st.ok()) return fail(st);
      std::vector<double> samples;
      for (int rep = 0; rep < 3; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < iters; ++i) {
          st = run();
          if (!st.ok()) return fail(st);
        }
        st = (*backend)->Synchronize();
        if (!st.ok()) return fail(st);
        samples.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count() /
            iters);
      }
      std::sort(samples.begin(), samples.end());
      const double ms = samples[1];
      // Latency: one forward from enqueue to completion, median of `iters`.
      std::vector<double> lat;
      for (int i = 0; i < iters; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        st = run();
        if (st.ok()) st = (*backend)->Synchronize();
        if (!st.ok()) return fail(st);
        lat.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      }
      std::sort(lat.begin(), lat.end());
      std::printf(
          "{\"op\":\"model\",\"preset\":\"%s\",\"impl\":\"%s\",\"batch\":%d,"
          "\"ms\":%.4f,\"img_per_s\":%.1f,\"latency_ms\":%.4f,\"pool_bytes\":%zu,"
          "\"graph_pool_bytes\":%zu,\"graph_error\":\"%s\"}\n",
          preset_name.c_str(), graphs ? "lookalike_cuda_fp16_graphs" : "lookalike_cuda_fp16", b, ms,
          b / (ms * 1e-3), lat[lat.size() / 2], (*backend)->pool_bytes(),
          (*backend)->graph_pool_bytes(), (*backend)->last_graph_error().c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}
