// End-to-end CPU engine benchmark: Embedder::Embed (preprocessing from
// decoded RGB8 images, backbone, pooling, L2 normalization) on the CPU
// backend, one preset per process so peak RSS is that model's.
//
//   lookalike_cpu_embedder_bench --preset resnet50 --weights W.safetensors
//       [--threads 2] [--batches 1,16] [--reps 5] [--image 320x240]
//       [--precision auto|fp32|bf16]   (EmbedderOptions::precision)
//   lookalike_cpu_embedder_bench --preset clip_vit_b32 --weights CLIPModel.safetensors --texts 1
//   lookalike_cpu_embedder_bench ... --engines 2 --threads 1   # the server's engine_replicas
//
// --engines R loads R embedders (R engine replicas, each with --threads
// threads) and times R batches embedded at once, one per engine on its own
// thread, as the server's batcher runs replicas under concurrent requests:
// images_per_s is then the total over the engines, ms_per_batch the time for
// all R batches.
//
// --texts 1 times Embedder::EmbedTexts instead (the model "<preset>_text"):
// search-query-sized texts, BenchTokenIds below (the same rule as
// bench/cpu/torch_bench.py), padded to the batch's longest as the server's
// text batcher does.
//
// Prints one JSON object per batch size:
//   {"impl": "lookalike", "model": ..., "batch": B, "threads": T,
//    "images_per_s": ..., "ms_per_batch": ..., "peak_rss_mb": ...}
// Timing: one untimed warm-up Embed per batch size (primitive creation,
// weight reorders, buffer pool fill), then `reps` timed calls; the median is
// reported. Peak RSS (getrusage ru_maxrss) covers the whole process: weights,
// prepared layers, activations of the largest batch.
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/process_cpu.h"
#include "models/embedder.h"

namespace {

// Process CPU time (all threads), milliseconds.
using lookalike::bench::ProcessCpuMs;

double PeakRssMb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // kilobytes on Linux
}

// Text i of a batch: start token, 6..18 ids, end token (8..20 tokens, a
// search query's length), 0-padded to the batch's longest. The ids are
// arbitrary but fixed (speed does not depend on them).
std::vector<std::vector<int32_t>> BenchTokenIds(int batch) {
  std::vector<std::vector<int32_t>> texts(batch);
  size_t longest = 0;
  for (int i = 0; i < batch; ++i) {
    const int length = 8 + (i * 5) % 13;
    std::vector<int32_t>& ids = texts[i];
    ids.push_back(49406);
    for (int j = 1; j + 1 < length; ++j) {
      ids.push_back(1 + static_cast<int32_t>((i * 7919LL + j * 104729LL) % 49404));
    }
    ids.push_back(49407);
    longest = std::max(longest, ids.size());
  }
  for (auto& ids : texts) ids.resize(longest, 0);
  return texts;
}

std::vector<int> ParseList(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::atoi(item.c_str()));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string preset, weights, batches = "1,16", image = "320x240", precision = "auto";
  int threads = 2, reps = 5, max_batch_opt = 0, texts = 0, engines = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset")
      preset = v;
    else if (k == "--weights")
      weights = v;
    else if (k == "--threads")
      threads = std::atoi(v.c_str());
    else if (k == "--batches")
      batches = v;
    else if (k == "--reps")
      reps = std::atoi(v.c_str());
    else if (k == "--image")
      image = v;
    else if (k == "--max-batch")
      max_batch_opt = std::atoi(v.c_str());
    else if (k == "--texts")
      texts = std::atoi(v.c_str());
    else if (k == "--precision")
      precision = v;
    else if (k == "--engines")
      engines = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (preset.empty() || weights.empty() || reps < 1 || engines < 1) {
    std::fprintf(stderr,
                 "usage: %s --preset P --weights FILE [--threads T] [--batches 1,16] "
                 "[--reps R] [--image WxH] [--engines R]\n",
                 argv[0]);
    return 2;
  }
  int iw = 320, ih = 240;
  if (std::sscanf(image.c_str(), "%dx%d", &iw, &ih) != 2 || iw <= 0 || ih <= 0) {
    std::fprintf(stderr, "bad --image %s\n", image.c_str());
    return 2;
  }
  const std::vector<int> batch_sizes = ParseList(batches);
  const int max_batch = *std::max_element(batch_sizes.begin(), batch_sizes.end());

  lookalike::EmbedderOptions options;
  options.preset = preset;
  options.weights_path = weights;
  options.device = "cpu";
  options.num_threads = threads;
  options.precision = precision;
  // --max-batch: EmbedderOptions::max_batch (Embed() runs larger batches in
  // pieces of this size); default: the largest batch measured.
  options.max_batch = max_batch_opt > 0 ? max_batch_opt : std::max(max_batch, 1);
  std::vector<std::unique_ptr<lookalike::Embedder>> embedders;
  for (int e = 0; e < engines; ++e) {
    auto embedder = lookalike::Embedder::Load(options);
    if (!embedder.ok()) {
      std::fprintf(stderr, "load failed: %s\n", embedder.status().ToString().c_str());
      return 1;
    }
    embedders.push_back(std::move(*embedder));
  }

  // Random decoded photos (speed does not depend on pixel values).
  std::mt19937 rng(1);
  std::vector<std::vector<uint8_t>> pixels(max_batch);
  std::vector<lookalike::ImageView> all;
  for (auto& p : pixels) {
    p.resize(static_cast<size_t>(iw) * ih * 3);
    for (auto& b : p) b = static_cast<uint8_t>(rng());
    all.push_back({p.data(), iw, ih, iw * 3});
  }
  std::vector<std::vector<float>> outs(engines);
  const std::string model = texts ? preset + "_text" : preset;
  for (int b : batch_sizes) {
    const std::vector<lookalike::ImageView> images(all.begin(), all.begin() + b);
    const std::vector<std::vector<int32_t>> ids = BenchTokenIds(b);
    auto embed_on = [&](int e) {
      return texts ? embedders[e]->EmbedTexts(ids, &outs[e])
                   : embedders[e]->Embed(images, &outs[e]);
    };
    // One batch per engine, all at once (one engine: on this thread).
    auto embed = [&]() {
      if (engines == 1) return embed_on(0);
      std::vector<lookalike::Status> status(engines);
      std::vector<std::thread> workers;
      for (int e = 0; e < engines; ++e) workers.emplace_back([&, e] { status[e] = embed_on(e); });
      for (std::thread& w : workers) w.join();
      for (const lookalike::Status& st : status) {
        if (!st.ok()) return st;
      }
      return lookalike::Status::Ok();
    };
    lookalike::Status warm = embed();
    if (!warm.ok()) {
      std::fprintf(stderr, "embed failed: %s\n", warm.ToString().c_str());
      return 1;
    }
    std::vector<double> ms, cpu;
    for (int r = 0; r < reps; ++r) {
      const double c0 = ProcessCpuMs();
      const auto t0 = std::chrono::steady_clock::now();
      lookalike::Status s = embed();
      const auto t1 = std::chrono::steady_clock::now();
      cpu.push_back(ProcessCpuMs() - c0);
      if (!s.ok()) {
        std::fprintf(stderr, "embed failed: %s\n", s.ToString().c_str());
        return 1;
      }
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::sort(cpu.begin(), cpu.end());
    const double med = ms[ms.size() / 2];
    std::printf(
        "{\"impl\": \"lookalike\", \"model\": \"%s\", \"batch\": %d, \"threads\": %d, "
        "\"engines\": %d, \"max_batch\": %d, \"images_per_s\": %.3f, \"ms_per_batch\": %.2f, "
        "\"best_ms\": %.2f, \"cpu_ms_per_batch\": %.2f, \"peak_rss_mb\": %.1f}\n",
        model.c_str(), b, threads, engines, options.max_batch, engines * b * 1000.0 / med, med,
        ms.front(), cpu[cpu.size() / 2], PeakRssMb());
    std::fflush(stdout);
  }
  return 0;
}
