// GpuFlatStore host side: memory accounting, storage growth, search tiling. Contracts are in
// gpu_flat_store.h; kernels in flat_kernels.cu.
#include "index/gpu/gpu_flat_store.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <utility>

#include "common/device.h"
#include "index/gpu/flat_kernels.h"
#include "kernels/cublas_loader.h"

namespace lookalike {

// Every k in 1..kMaxK must fit the selection kernels' padded k.
static_assert(gpu_detail::kSelectMaxKPow2 >= kMaxK && gpu_detail::kSelectMaxKPow2 / 2 < kMaxK,
              "the selection kernels are sized for the next power of two of kMaxK");

const char* StorageTypeName(StorageType type) {
  switch (type) {
    case StorageType::kFloat32:
      return "fp32";
    case StorageType::kFloat16:
      return "fp16";
  }
  return "unknown";
}

Status CheckGpuFlatStoreOptions(const GpuFlatStoreOptions& o) {
  if (o.dim < 1 || o.dim > 65536) {
    return InvalidArgumentError("dim must be in 1..65536, got " + std::to_string(o.dim));
  }
  if (o.metric != Metric::kL2 && o.metric != Metric::kInnerProduct && o.metric != Metric::kCosine) {
    return InvalidArgumentError("metric must be l2, ip or cosine");
  }
  if (o.storage != StorageType::kFloat32 && o.storage != StorageType::kFloat16) {
    return InvalidArgumentError("storage must be fp32 or fp16");
  }
  if (o.device < 0) return InvalidArgumentError("device must be >= 0");
  if (o.memory_budget_bytes < 0) return InvalidArgumentError("memory_budget_bytes must be >= 0");
  if (o.workspace_bytes < (int64_t{1} << 20)) {
    return InvalidArgumentError("workspace_bytes must be >= 1 MiB");
  }
  if (o.tile_rows < 0) return InvalidArgumentError("tile_rows must be >= 0");
  return Status::Ok();
}

Status CheckSearchArgs(int dim, int64_t nq, const float* queries, int query_dim, int k,
                       const float* distances, const int64_t* labels) {
  if (nq < 0) return InvalidArgumentError("nq must be >= 0, got " + std::to_string(nq));
  if (query_dim != dim) {
    return InvalidArgumentError("query dim " + std::to_string(query_dim) +
                                " does not match the index dim " + std::to_string(dim));
  }
  if (k < 1 || k > kMaxK) {
    return InvalidArgumentError("k must be in 1.." + std::to_string(kMaxK) + ", got " +
                                std::to_string(k));
  }
  if (nq > 0 && (queries == nullptr || distances == nullptr || labels == nullptr)) {
    return InvalidArgumentError("queries, distances and labels must be non-null");
  }
  return Status::Ok();
}

Status CheckVectorValues(const float* x, int64_t n, int dim, StorageType storage, Metric metric,
                         const char* what) {
  // Cosine rows are normalized before rounding, so only finiteness matters.
  const bool fp16_range = storage == StorageType::kFloat16 && metric != Metric::kCosine;
  const int64_t total = n * dim;
  for (int64_t i = 0; i < total; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) {
      return InvalidArgumentError(std::string(what) + " " + std::to_string(i / dim) +
                                  " component " + std::to_string(i % dim) + " is not finite");
    }
    if (fp16_range && std::fabs(v) > 65504.f) {
      return InvalidArgumentError(std::string(what) + " " + std::to_string(i / dim) +
                                  " component " + std::to_string(i % dim) +
                                  " is outside the fp16 range");
    }
  }
  return Status::Ok();
}

namespace {

Status CudaError(cudaError_t err, const char* what) {
  const std::string msg =
      std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
  if (err == cudaErrorMemoryAllocation) return ResourceExhaustedError(msg);
  return InternalError(msg);
}

#define LK_CUDA_RETURN(expr, what)                               \
  do {                                                           \
    cudaError_t lk_err_ = (expr);                                \
    if (lk_err_ != cudaSuccess) return CudaError(lk_err_, what); \
  } while (0)

Status CublasError(cublasStatus_t st, const char* what) {
  const std::string msg =
      std::string(what) + ": cuBLAS status " + std::to_string(static_cast<int>(st));
  if (st == CUBLAS_STATUS_ALLOC_FAILED) return ResourceExhaustedError(msg);
  return InternalError(msg);
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int NextPow2(int v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

std::string Bytes(int64_t b) { return std::to_string(b) + " bytes"; }

// One device allocation, counted against the owner's budget.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(void* ptr, int64_t bytes, int64_t* used) : ptr_(ptr), bytes_(bytes), used_(used) {}
  ~DeviceBuffer() { Release(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
      used_ = std::exchange(o.used_, nullptr);
    }
    return *this;
  }
  void Release() {
    if (ptr_ != nullptr) {
      cudaFree(ptr_);
      *used_ -= bytes_;
    }
    ptr_ = nullptr;
    bytes_ = 0;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  int64_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  int64_t bytes_ = 0;
  int64_t* used_ = nullptr;
};

}  // namespace

struct GpuFlatStore::Impl {
  GpuFlatStoreOptions opt;
  std::mutex mu;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  int sm_count = 1;
  int smem_optin = 48 * 1024;  // largest dynamic shared memory per block
  int64_t used = 0;            // device bytes held

  // Storage.
  DeviceBuffer vecs, norms, ids;
  int64_t capacity = 0;
  int64_t rows = 0;
  std::vector<int64_t> labels_host;  // per row: its position

  DeviceBuffer workspace;

  ~Impl() {
    vecs.Release();
    norms.Release();
    ids.Release();
    workspace.Release();
    if (cublas != nullptr) cublasDestroy(cublas);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }

  int64_t ElemBytes() const { return opt.storage == StorageType::kFloat16 ? 2 : 4; }
  int64_t RowBytes() const { return ElemBytes() * opt.dim; }
  int64_t BytesForCapacity(int64_t cap) const { return cap * (RowBytes() + 4 + 8); }

  Status Allocate(int64_t bytes, const char* what, DeviceBuffer* out) {
    if (bytes <= 0) bytes = 16;
    if (opt.memory_budget_bytes > 0 && used + bytes > opt.memory_budget_bytes) {
      return ResourceExhaustedError(std::string("GPU index memory budget exceeded allocating ") +
                                    what + ": needs " + Bytes(bytes) + ", " + Bytes(used) +
                                    " in use, budget " + Bytes(opt.memory_budget_bytes));
    }
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, static_cast<size_t>(bytes));
    if (err != cudaSuccess) {
      cudaGetLastError();
      return ResourceExhaustedError(std::string("cudaMalloc of ") + Bytes(bytes) + " for " + what +
                                    " failed: " + cudaGetErrorString(err));
    }
    used += bytes;
    *out = DeviceBuffer(p, bytes, &used);
    return Status::Ok();
  }

  bool FitsBudget(int64_t extra) const {
    return opt.memory_budget_bytes == 0 || used + extra <= opt.memory_budget_bytes;
  }

  // Grows capacity to hold `needed` rows, keeping the contents.
  Status Reserve(int64_t needed) {
    if (needed <= capacity) return Status::Ok();
    int64_t cap = std::max<int64_t>({needed, capacity * 2, 1024});
    if (!FitsBudget(BytesForCapacity(cap))) cap = needed;
    DeviceBuffer nv, nn, ni;
    RETURN_IF_ERROR(Allocate(cap * RowBytes(), "vectors", &nv));
    RETURN_IF_ERROR(Allocate(cap * 4, "norms", &nn));
    RETURN_IF_ERROR(Allocate(cap * 8, "ids", &ni));
    if (rows > 0) {
      LK_CUDA_RETURN(cudaMemcpyAsync(nv.as<void>(), vecs.as<void>(), rows * RowBytes(),
                                     cudaMemcpyDeviceToDevice, stream),
                     "copy vectors");
      LK_CUDA_RETURN(cudaMemcpyAsync(nn.as<void>(), norms.as<void>(), rows * 4,
                                     cudaMemcpyDeviceToDevice, stream),
                     "copy norms");
      LK_CUDA_RETURN(cudaMemcpyAsync(ni.as<void>(), ids.as<void>(), rows * 8,
                                     cudaMemcpyDeviceToDevice, stream),
                     "copy ids");
    }
    LK_CUDA_RETURN(cudaStreamSynchronize(stream), "grow storage");
    vecs = std::move(nv);
    norms = std::move(nn);
    ids = std::move(ni);
    capacity = cap;
    return Status::Ok();
  }

  Status UploadLabels(int64_t first_row, int64_t n) {
    if (n <= 0) return Status::Ok();
    LK_CUDA_RETURN(cudaMemcpyAsync(ids.as<int64_t>() + first_row, labels_host.data() + first_row,
                                   n * 8, cudaMemcpyHostToDevice, stream),
                   "upload labels");
    return Status::Ok();
  }

  Status AddLocked(int64_t n, const float* x) {
    if (n < 0) return InvalidArgumentError("n must be >= 0");
    if (n == 0) return Status::Ok();
    if (x == nullptr) return InvalidArgumentError("x must be non-null");
    if (rows + n > std::numeric_limits<int32_t>::max()) {
      return ResourceExhaustedError("GPU flat index holds at most 2^31-1 rows");
    }
    RETURN_IF_ERROR(CheckVectorValues(x, n, opt.dim, opt.storage, opt.metric, "vector"));
    RETURN_IF_ERROR(Reserve(rows + n));

    // Upload and prepare in chunks through a bounded staging buffer.
    const int64_t row_in = int64_t{4} * opt.dim;
    int64_t chunk = std::min<int64_t>(n, (int64_t{32} << 20) / row_in);
    if (opt.memory_budget_bytes > 0) {
      chunk = std::min<int64_t>(chunk, (opt.memory_budget_bytes - used) / row_in);
    }
    chunk = std::max<int64_t>(chunk, 1);
    DeviceBuffer staging;
    RETURN_IF_ERROR(Allocate(chunk * row_in, "add staging", &staging));
    const bool normalize = opt.metric == Metric::kCosine;
    const bool to_fp16 = opt.storage == StorageType::kFloat16;
    for (int64_t done = 0; done < n; done += chunk) {
      const int64_t m = std::min(chunk, n - done);
      LK_CUDA_RETURN(cudaMemcpyAsync(staging.as<float>(), x + done * opt.dim, m * row_in,
                                     cudaMemcpyHostToDevice, stream),
                     "upload vectors");
      char* dst = vecs.as<char>() + (rows + done) * RowBytes();
      LK_CUDA_RETURN(
          gpu_detail::LaunchPrepareRows(staging.as<float>(), m, opt.dim, normalize, to_fp16, dst,
                                        norms.as<float>() + rows + done, stream),
          "prepare rows");
      // The staging buffer is reused: wait before overwriting it.
      LK_CUDA_RETURN(cudaStreamSynchronize(stream), "add vectors");
    }
    labels_host.resize(rows + n);
    for (int64_t i = 0; i < n; ++i) labels_host[rows + i] = rows + i;
    RETURN_IF_ERROR(UploadLabels(rows, n));
    LK_CUDA_RETURN(cudaStreamSynchronize(stream), "add labels");
    rows += n;
    return Status::Ok();
  }

  Status SearchLocked(int64_t nq, const float* queries, int k, float* distances, int64_t* labels,
                      const RowAllowSets* allow, SearchTiming* timing);
};

GpuFlatStore::GpuFlatStore(std::unique_ptr<Impl> impl, const GpuFlatStoreOptions& options)
    : impl_(std::move(impl)), options_(options) {}

GpuFlatStore::~GpuFlatStore() {
  if (impl_) cudaSetDevice(options_.device);
}

StatusOr<std::unique_ptr<GpuFlatStore>> GpuFlatStore::Create(const GpuFlatStoreOptions& options) {
  RETURN_IF_ERROR(CheckGpuFlatStoreOptions(options));
  const int count = CudaDeviceCount();
  if (count == 0) {
    return FailedPreconditionError("no CUDA device is available for the GPU index: " +
                                   CudaUnavailableReason());
  }
  if (options.device >= count) {
    return InvalidArgumentError("CUDA device " + std::to_string(options.device) +
                                " does not exist (" + std::to_string(count) + " present)");
  }
  auto impl = std::make_unique<Impl>();
  impl->opt = options;
  LK_CUDA_RETURN(cudaSetDevice(options.device), "cudaSetDevice");
  LK_CUDA_RETURN(
      cudaDeviceGetAttribute(&impl->sm_count, cudaDevAttrMultiProcessorCount, options.device),
      "query SM count");
  LK_CUDA_RETURN(cudaDeviceGetAttribute(&impl->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                        options.device),
                 "query shared memory size");
  LK_CUDA_RETURN(cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking), "create stream");
  if (const std::string why = kernels::CublasLoadError(); !why.empty()) {
    return UnavailableError("GPU flat index: " + why);
  }
  const cublasStatus_t st = cublasCreate(&impl->cublas);
  if (st != CUBLAS_STATUS_SUCCESS) {
    impl->cublas = nullptr;
    return CublasError(st, "cublasCreate");
  }
  if (cublasSetStream(impl->cublas, impl->stream) != CUBLAS_STATUS_SUCCESS ||
      cublasSetMathMode(impl->cublas, CUBLAS_DEFAULT_MATH) != CUBLAS_STATUS_SUCCESS) {
    return InternalError("cuBLAS stream/math mode setup failed");
  }
  return std::unique_ptr<GpuFlatStore>(new GpuFlatStore(std::move(impl), options));
}

Status GpuFlatStore::Add(int64_t n, const float* x) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  LK_CUDA_RETURN(cudaSetDevice(options_.device), "cudaSetDevice");
  return impl_->AddLocked(n, x);
}

Status GpuFlatStore::Search(int64_t nq, const float* queries, int query_dim, int k,
                            float* distances, int64_t* labels, const RowAllowSets* allow,
                            SearchTiming* timing) {
  RETURN_IF_ERROR(CheckSearchArgs(options_.dim, nq, queries, query_dim, k, distances, labels));
  // A non-finite (or, in fp16, out-of-range) query would turn every key into
  // inf or NaN and silently drop rows from the results.
  RETURN_IF_ERROR(
      CheckVectorValues(queries, nq, options_.dim, options_.storage, options_.metric, "query"));
  std::lock_guard<std::mutex> lock(impl_->mu);
  LK_CUDA_RETURN(cudaSetDevice(options_.device), "cudaSetDevice");
  return impl_->SearchLocked(nq, queries, k, distances, labels, allow, timing);
}

Status GpuFlatStore::SearchFiltered(int64_t nq, const float* queries, int query_dim, int k,
                                    float* distances, int64_t* labels,
                                    const RowAllowBuilder& make_allow) {
  RETURN_IF_ERROR(CheckSearchArgs(options_.dim, nq, queries, query_dim, k, distances, labels));
  RETURN_IF_ERROR(
      CheckVectorValues(queries, nq, options_.dim, options_.storage, options_.metric, "query"));
  std::lock_guard<std::mutex> lock(impl_->mu);
  LK_CUDA_RETURN(cudaSetDevice(options_.device), "cudaSetDevice");
  const int64_t words = CeilDiv(impl_->rows, 32);
  const std::vector<uint32_t> bits = make_allow(impl_->labels_host.data(), impl_->rows);
  if (static_cast<int64_t>(bits.size()) < words) {
    return InvalidArgumentError("allow-set has " + std::to_string(bits.size()) + " words for " +
                                std::to_string(impl_->rows) + " rows");
  }
  RowAllowSets allow;
  allow.bits = bits.data();
  allow.words_per_set = static_cast<int64_t>(bits.size());
  allow.num_sets = 1;
  return impl_->SearchLocked(nq, queries, k, distances, labels, &allow, nullptr);
}

Status GpuFlatStore::Impl::SearchLocked(int64_t nq, const float* queries, int k, float* distances,
                                        int64_t* labels, const RowAllowSets* allow,
                                        SearchTiming* timing) {
  if (nq == 0) return Status::Ok();
  const int64_t words = CeilDiv(rows, 32);
  if (allow != nullptr) {
    if (allow->num_sets != 1 && allow->num_sets != nq) {
      return InvalidArgumentError("allow-set count must be 1 or nq (" + std::to_string(nq) +
                                  "), got " + std::to_string(allow->num_sets));
    }
    if (allow->bits == nullptr || allow->words_per_set < words) {
      return InvalidArgumentError("allow-set needs " + std::to_string(words) +
                                  " words per set, got " + std::to_string(allow->words_per_set));
    }
  }
  const bool l2 = opt.metric == Metric::kL2;
  if (rows == 0) {
    for (int64_t i = 0; i < nq * k; ++i) {
      labels[i] = -1;
      distances[i] = l2 ? FLT_MAX : -FLT_MAX;
    }
    return Status::Ok();
  }

  // Plan: query chunk qc, database tile T, segments per tile.
  const int kp = NextPow2(k);
  const int64_t min_seg = std::max<int64_t>(4 * kp, 1024);
  const bool per_query_allow = allow != nullptr && allow->num_sets > 1;
  int64_t qc = std::min<int64_t>(nq, 1024);
  int64_t tile = 0;
  int64_t nseg = 1;
  int64_t ws_bytes = 0;
  struct Layout {
    int64_t qin, qbuf, qnorm, ip, ckeys, cvals, odist, olab, allow;
  } lay{};
  int64_t ws_target = opt.workspace_bytes;
  const bool fp16_rows = opt.storage == StorageType::kFloat16;
  bool fused = opt.fused_small_batch && nq <= gpu_detail::kFusedMaxQueries &&
               k <= gpu_detail::kFusedMaxK && opt.dim % (fp16_rows ? 8 : 4) == 0 &&
               // The kernel's static shared variables (a few bytes) count
               // against the same per-block limit.
               gpu_detail::FusedSharedBytes(static_cast<int>(nq), k, opt.dim) + 1024 <=
                   static_cast<size_t>(smem_optin);
  int64_t fused_seg = 0;
  for (;;) {
    tile = opt.tile_rows > 0 ? opt.tile_rows : ws_target / (4 * qc);
    if (opt.tile_rows == 0) tile = std::max<int64_t>(tile, std::min<int64_t>(rows, 1024));
    tile = std::min<int64_t>(tile, rows);
    const int64_t want_blocks = 4 * static_cast<int64_t>(sm_count);
    nseg = std::max<int64_t>(1, std::min<int64_t>(CeilDiv(want_blocks, qc), tile / min_seg));
    if (fused) {
      // One pass over all rows: segments of whole kFusedChunk steps.
      tile = 0;
      fused_seg =
          CeilDiv(CeilDiv(rows, want_blocks), gpu_detail::kFusedChunk) * gpu_detail::kFusedChunk;
      nseg = CeilDiv(rows, fused_seg);
    }
    const int64_t slots = (1 + nseg) * k;
    const int64_t allow_sets = allow == nullptr ? 0 : (per_query_allow ? qc : 1);
    auto align = [](int64_t b) { return (b + 255) / 256 * 256; };
    int64_t off = 0;
    auto take = [&](int64_t bytes) {
      const int64_t at = off;
      off += align(bytes);
      return at;
    };
    lay.qin = take(qc * opt.dim * 4);
    lay.qbuf = take(qc * RowBytes());
    lay.qnorm = take(qc * 4);
    lay.ip = take(qc * tile * 4);
    lay.ckeys = take(qc * slots * 4);
    lay.cvals = take(qc * slots * 4);
    lay.odist = take(qc * k * 4);
    lay.olab = take(qc * k * 8);
    lay.allow = take(allow_sets * words * 4);
    ws_bytes = off;
    if (FitsBudget(ws_bytes - workspace.bytes())) break;
    if (fused) {  // the segment lists do not fit: tile through the GEMM path
      fused = false;
      continue;
    }
    // Over budget: smaller database tiles first, then smaller query chunks.
    if (opt.tile_rows == 0 && tile > 1024) {
      ws_target /= 2;
      continue;
    }
    if (qc > 1) {
      qc = (qc + 1) / 2;
      ws_target = opt.workspace_bytes;
      continue;
    }
    return ResourceExhaustedError("GPU index search needs a workspace of " + Bytes(ws_bytes) +
                                  ", " + Bytes(used - workspace.bytes()) + " in use, budget " +
                                  Bytes(opt.memory_budget_bytes));
  }
  if (workspace.bytes() < ws_bytes) {
    workspace.Release();
    RETURN_IF_ERROR(Allocate(ws_bytes, "search workspace", &workspace));
  }
  char* ws = workspace.as<char>();
  float* d_qin = reinterpret_cast<float*>(ws + lay.qin);
  void* d_qbuf = ws + lay.qbuf;
  float* d_qnorm = reinterpret_cast<float*>(ws + lay.qnorm);
  float* d_ip = reinterpret_cast<float*>(ws + lay.ip);
  float* d_ckeys = reinterpret_cast<float*>(ws + lay.ckeys);
  int32_t* d_cvals = reinterpret_cast<int32_t*>(ws + lay.cvals);
  float* d_odist = reinterpret_cast<float*>(ws + lay.odist);
  int64_t* d_olab = reinterpret_cast<int64_t*>(ws + lay.olab);
  uint32_t* d_allow = reinterpret_cast<uint32_t*>(ws + lay.allow);
  const int64_t ld = (1 + nseg) * k;
  const int64_t seg_len = CeilDiv(tile, nseg);
  const bool fp16 = opt.storage == StorageType::kFloat16;

  // Events for SearchTiming; destroyed on every return path.
  struct Events {
    cudaEvent_t start = nullptr, stop = nullptr;
    ~Events() {
      if (start) cudaEventDestroy(start);
      if (stop) cudaEventDestroy(stop);
    }
  } ev;
  if (timing != nullptr) {
    LK_CUDA_RETURN(cudaEventCreate(&ev.start), "create event");
    LK_CUDA_RETURN(cudaEventCreate(&ev.stop), "create event");
    LK_CUDA_RETURN(cudaEventRecord(ev.start, stream), "record event");
    timing->query_chunks = static_cast<int>(CeilDiv(nq, qc));
    timing->tile_rows = tile;
  }
  if (allow != nullptr && !per_query_allow) {
    LK_CUDA_RETURN(cudaMemcpyAsync(d_allow, allow->bits, words * 4, cudaMemcpyHostToDevice, stream),
                   "upload allow-set");
  }
  for (int64_t q0 = 0; q0 < nq; q0 += qc) {
    const int qn = static_cast<int>(std::min(qc, nq - q0));
    LK_CUDA_RETURN(cudaMemcpyAsync(d_qin, queries + q0 * opt.dim, int64_t{4} * qn * opt.dim,
                                   cudaMemcpyHostToDevice, stream),
                   "upload queries");
    LK_CUDA_RETURN(gpu_detail::LaunchPrepareRows(d_qin, qn, opt.dim, opt.metric == Metric::kCosine,
                                                 fp16, d_qbuf, d_qnorm, stream),
                   "prepare queries");
    if (per_query_allow) {
      LK_CUDA_RETURN(cudaMemcpy2DAsync(d_allow, words * 4, allow->bits + q0 * allow->words_per_set,
                                       allow->words_per_set * 4, words * 4, qn,
                                       cudaMemcpyHostToDevice, stream),
                     "upload allow-sets");
    }
    // Slot 0 of each query holds the running top-k; start it empty.
    LK_CUDA_RETURN(cudaMemset2DAsync(d_cvals, ld * 4, 0xFF, k * 4, qn, stream), "clear top-k");
    gpu_detail::SelectArgs select;
    select.nq = qn;
    select.l2 = l2;
    select.norms = norms.as<float>();
    select.allow = allow != nullptr ? d_allow : nullptr;
    select.allow_stride = per_query_allow ? words : 0;
    select.k = k;
    select.out_keys = d_ckeys;
    select.out_vals = d_cvals;
    select.out_ld = ld;
    select.out_slot0 = 1;
    if (fused) {
      gpu_detail::FusedArgs f;
      static_cast<gpu_detail::SelectArgs&>(f) = select;
      f.seg_len = fused_seg;
      f.vecs = vecs.as<void>();
      f.fp16 = fp16;
      f.dim = opt.dim;
      f.rows = rows;
      f.queries = d_qbuf;
      LK_CUDA_RETURN(gpu_detail::LaunchFusedSmallBatch(f, stream), "fused small-batch search");
      LK_CUDA_RETURN(gpu_detail::LaunchMergeSelect(d_ckeys, d_cvals, qn, ld, ld, k, stream),
                     "merge selection");
    }
    for (int64_t t0 = 0; !fused && t0 < rows; t0 += tile) {
      const int64_t tn = std::min(tile, rows - t0);
      const float alpha = 1.f;
      const float beta = 0.f;
      const char* base = vecs.as<char>() + t0 * RowBytes();
      const cudaDataType_t dt = fp16 ? CUDA_R_16F : CUDA_R_32F;
      // Column-major view: C (tn x qn, ldc tn) = X_tile^T (tn x dim) * Q (dim x qn).
      const cublasStatus_t st =
          cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(tn), qn, opt.dim, &alpha,
                       base, dt, opt.dim, d_qbuf, dt, opt.dim, &beta, d_ip, CUDA_R_32F,
                       static_cast<int>(tn), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      if (st != CUBLAS_STATUS_SUCCESS) return CublasError(st, "cublasGemmEx distances");
      gpu_detail::TileSelectArgs a;
      static_cast<gpu_detail::SelectArgs&>(a) = select;
      a.seg_len = seg_len;
      a.ip = d_ip;
      a.tile_n = tn;
      a.tile_row0 = t0;
      LK_CUDA_RETURN(gpu_detail::LaunchTileSelect(a, stream), "tile selection");
      const int64_t used_slots = 1 + CeilDiv(tn, seg_len);
      LK_CUDA_RETURN(
          gpu_detail::LaunchMergeSelect(d_ckeys, d_cvals, qn, used_slots * k, ld, k, stream),
          "merge selection");
    }
    LK_CUDA_RETURN(gpu_detail::LaunchFinishResults(d_ckeys, d_cvals, ld, qn, k, l2, d_qnorm,
                                                   ids.as<int64_t>(), d_odist, d_olab, stream),
                   "finish results");
    LK_CUDA_RETURN(cudaMemcpyAsync(distances + q0 * k, d_odist, int64_t{4} * qn * k,
                                   cudaMemcpyDeviceToHost, stream),
                   "download distances");
    LK_CUDA_RETURN(cudaMemcpyAsync(labels + q0 * k, d_olab, int64_t{8} * qn * k,
                                   cudaMemcpyDeviceToHost, stream),
                   "download labels");
    if (timing != nullptr && q0 + qc >= nq) {
      LK_CUDA_RETURN(cudaEventRecord(ev.stop, stream), "record event");
    }
    // The query staging buffers are reused by the next chunk.
    LK_CUDA_RETURN(cudaStreamSynchronize(stream), "search");
  }
  if (timing != nullptr) {
    LK_CUDA_RETURN(cudaEventElapsedTime(&timing->device_ms, ev.start, ev.stop), "event time");
  }
  return Status::Ok();
}

Status GpuFlatStore::Reconstruct(int64_t label, float* out) {
  if (out == nullptr) return InvalidArgumentError("out must be non-null");
  std::lock_guard<std::mutex> lock(impl_->mu);
  LK_CUDA_RETURN(cudaSetDevice(options_.device), "cudaSetDevice");
  if (label < 0 || label >= impl_->rows) {
    return NotFoundError("no vector with id " + std::to_string(label));
  }
  const int64_t r = label;  // labels are positions
  const int dim = options_.dim;
  if (options_.storage == StorageType::kFloat32) {
    LK_CUDA_RETURN(cudaMemcpy(out, impl_->vecs.as<char>() + r * impl_->RowBytes(), int64_t{4} * dim,
                              cudaMemcpyDeviceToHost),
                   "reconstruct");
  } else {
    std::vector<__half> h(dim);
    LK_CUDA_RETURN(cudaMemcpy(h.data(), impl_->vecs.as<char>() + r * impl_->RowBytes(),
                              int64_t{2} * dim, cudaMemcpyDeviceToHost),
                   "reconstruct");
    for (int i = 0; i < dim; ++i) out[i] = __half2float(h[i]);
  }
  return Status::Ok();
}

Status GpuFlatStore::Reset() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  LK_CUDA_RETURN(cudaSetDevice(options_.device), "cudaSetDevice");
  LK_CUDA_RETURN(cudaStreamSynchronize(impl_->stream), "reset");
  Impl& m = *impl_;
  m.vecs.Release();
  m.norms.Release();
  m.ids.Release();
  m.workspace.Release();
  m.capacity = m.rows = 0;
  m.labels_host.clear();
  return Status::Ok();
}

std::vector<uint32_t> GpuFlatStore::MakeRowBitset(const std::function<bool(int64_t)>& allowed) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<uint32_t> bits(CeilDiv(impl_->rows, 32), 0u);
  for (int64_t r = 0; r < impl_->rows; ++r) {
    if (allowed(impl_->labels_host[r])) bits[r >> 5] |= 1u << (r & 31);
  }
  return bits;
}

std::vector<int64_t> GpuFlatStore::RowLabels() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return std::vector<int64_t>(impl_->labels_host.begin(), impl_->labels_host.begin() + impl_->rows);
}

int64_t GpuFlatStore::size() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->rows;
}

int64_t GpuFlatStore::RowBitsetWords() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return CeilDiv(impl_->rows, 32);
}

int64_t GpuFlatStore::device_bytes() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->used;
}

}  // namespace lookalike
