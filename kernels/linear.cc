#include "kernels/linear.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>
#include <string>
#include <tuple>

#include "kernels/cublas_loader.h"
#include "kernels/elementwise.h"

namespace lookalike {
namespace kernels {
namespace {

Status CublasStatus(cublasStatus_t s, const std::string& what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  if (s == CUBLAS_STATUS_ALLOC_FAILED)
    return ResourceExhaustedError(what + ": cuBLAS allocation failed");
  return InternalError(what + ": cuBLAS status " + std::to_string(static_cast<int>(s)));
}

cudaDataType_t CudaType(DType t) {
  switch (t) {
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF32:
      return CUDA_R_32F;
  }
  return CUDA_R_16F;
}

// What the matmul itself computes; the remainder goes to BiasAct / Add.
struct Plan {
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  bool bias_in_matmul = false;
  bool residual_in_matmul = false;  // as C with beta = 1
  bool post_bias_act = false;       // BiasAct pass (bias and/or act and/or residual)
  bool post_add = false;            // residual added by a separate Add
};

Plan MakePlan(const LinearParams& p) {
  Plan plan;
  const bool has_bias = p.bias != nullptr;
  const bool has_res = p.residual != nullptr;
  switch (p.act) {
    case Activation::kNone:
      plan.epilogue = has_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
      plan.bias_in_matmul = has_bias;
      plan.residual_in_matmul = has_res;
      break;
    case Activation::kRelu:
      plan.epilogue = has_bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
      plan.bias_in_matmul = has_bias;
      plan.post_add = has_res;
      break;
    case Activation::kGeluTanh:  // cuBLASLt's GELU is the tanh approximation
      plan.epilogue = has_bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
      plan.bias_in_matmul = has_bias;
      plan.post_add = has_res;
      break;
    default:  // exact GELU, QuickGELU, ReLU6: no cuBLASLt epilogue
      plan.post_bias_act = true;
      break;
  }
  return plan;
}

struct LtEntry {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool usable = false;
};

}  // namespace

struct LinearRunner::Impl {
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  // key: type, rows, in, out, epilogue, residual-in-matmul
  std::map<std::tuple<int, int64_t, int, int, int, bool>, LtEntry> cache;

  ~Impl() {
    for (auto& kv : cache) {
      LtEntry& e = kv.second;
      if (e.a) cublasLtMatrixLayoutDestroy(e.a);
      if (e.b) cublasLtMatrixLayoutDestroy(e.b);
      if (e.c) cublasLtMatrixLayoutDestroy(e.c);
      if (e.desc) cublasLtMatmulDescDestroy(e.desc);
    }
    if (workspace) cudaFree(workspace);
    if (lt) cublasLtDestroy(lt);
    if (blas) cublasDestroy(blas);
  }

  // Builds (once per shape) the descriptors and picks the heuristic's first algorithm.
  StatusOr<LtEntry*> Entry(const LinearParams& p, const Plan& plan) {
    const auto key =
        std::make_tuple(static_cast<int>(p.type), p.rows, p.in_features, p.out_features,
                        static_cast<int>(plan.epilogue), plan.residual_in_matmul);
    auto it = cache.find(key);
    if (it != cache.end()) return &it->second;
    LtEntry& e = cache[key];
    const cudaDataType_t t = CudaType(p.type);
    // Column-major view: Y^T {out, rows} = W {in, out}^T * X^T {in, rows}.
    RETURN_IF_ERROR(CublasStatus(cublasLtMatmulDescCreate(&e.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
                                 "cublasLtMatmulDescCreate"));
    const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
    RETURN_IF_ERROR(CublasStatus(cublasLtMatmulDescSetAttribute(e.desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                                                &trans_a, sizeof(trans_a)),
                                 "set TRANSA"));
    RETURN_IF_ERROR(CublasStatus(cublasLtMatmulDescSetAttribute(e.desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                                                &trans_b, sizeof(trans_b)),
                                 "set TRANSB"));
    RETURN_IF_ERROR(
        CublasStatus(cublasLtMatmulDescSetAttribute(e.desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                    &plan.epilogue, sizeof(plan.epilogue)),
                     "set EPILOGUE"));
    if (plan.bias_in_matmul) {
      // A valid bias pointer is needed for the heuristic query; the real one is set per call.
      const void* bias = p.bias;
      RETURN_IF_ERROR(
          CublasStatus(cublasLtMatmulDescSetAttribute(e.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                      &bias, sizeof(bias)),
                       "set BIAS_POINTER"));
    }
    RETURN_IF_ERROR(CublasStatus(
        cublasLtMatrixLayoutCreate(&e.a, t, p.in_features, p.out_features, p.in_features),
        "layout A"));
    RETURN_IF_ERROR(CublasStatus(
        cublasLtMatrixLayoutCreate(&e.b, t, p.in_features, p.rows, p.in_features), "layout B"));
    RETURN_IF_ERROR(CublasStatus(
        cublasLtMatrixLayoutCreate(&e.c, t, p.out_features, p.rows, p.out_features), "layout C"));
    cublasLtMatmulPreference_t pref = nullptr;
    RETURN_IF_ERROR(CublasStatus(cublasLtMatmulPreferenceCreate(&pref), "preference"));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                         &workspace_bytes, sizeof(workspace_bytes));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t s =
        cublasLtMatmulAlgoGetHeuristic(lt, e.desc, e.a, e.b, e.c, e.c, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_SUCCESS && found > 0) {
      e.algo = result.algo;
      e.usable = true;
    }
    return &e;
  }
};

LinearRunner::LinearRunner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LinearRunner::~LinearRunner() = default;

StatusOr<std::unique_ptr<LinearRunner>> LinearRunner::Create(size_t workspace_bytes) {
  if (const std::string why = CublasLoadError(); !why.empty()) {
    return UnavailableError("linear: " + why);
  }
  auto impl = std::make_unique<Impl>();
  RETURN_IF_ERROR(CublasStatus(cublasCreate(&impl->blas), "cublasCreate"));
  RETURN_IF_ERROR(CublasStatus(cublasLtCreate(&impl->lt), "cublasLtCreate"));
  if (workspace_bytes > 0) {
    const cudaError_t err = cudaMalloc(&impl->workspace, workspace_bytes);
    if (err != cudaSuccess) {
      return ResourceExhaustedError(
          "linear: cudaMalloc of " + std::to_string(workspace_bytes) +
          " bytes of matmul workspace failed: " + cudaGetErrorString(err));
    }
    impl->workspace_bytes = workspace_bytes;
  }
  return std::unique_ptr<LinearRunner>(new LinearRunner(std::move(impl)));
}

Status LinearRunner::Run(const LinearParams& p, cudaStream_t stream) {
  if (p.rows <= 0 || p.in_features <= 0 || p.out_features <= 0 || p.x == nullptr ||
      p.weight == nullptr || p.y == nullptr) {
    return InvalidArgumentError("linear: rows " + std::to_string(p.rows) + ", in " +
                                std::to_string(p.in_features) + ", out " +
                                std::to_string(p.out_features) + " (all must be positive)");
  }
  if (p.type == DType::kF32) return InvalidArgumentError("linear: f32 is not supported");
  if ((p.bias == nullptr) != (p.bias_f32 == nullptr)) {
    return InvalidArgumentError("linear: bias and bias_f32 must be given together");
  }
  if (p.residual != nullptr && p.residual == p.y) {
    return InvalidArgumentError("linear: residual must not alias the output");
  }
  Plan plan = MakePlan(p);
  const float one = 1.f, zero = 0.f;
  bool done = false;
  if (!force_fallback_) {
    ASSIGN_OR_RETURN(LtEntry * e, impl_->Entry(p, plan));
    if (e->usable) {
      if (plan.bias_in_matmul) {
        const void* bias = p.bias;
        RETURN_IF_ERROR(
            CublasStatus(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                        &bias, sizeof(bias)),
                         "set BIAS_POINTER"));
      }
      const void* c = plan.residual_in_matmul ? p.residual : p.y;
      const float* beta = plan.residual_in_matmul ? &one : &zero;
      RETURN_IF_ERROR(CublasStatus(
          cublasLtMatmul(impl_->lt, e->desc, &one, p.weight, e->a, p.x, e->b, beta, c, e->c, p.y,
                         e->c, &e->algo, impl_->workspace, impl_->workspace_bytes, stream),
          "cublasLtMatmul"));
      done = true;
    }
  }
  if (!done) {
    // Plain GEMM; everything else in the BiasAct pass.
    RETURN_IF_ERROR(CublasStatus(cublasSetStream(impl_->blas, stream), "cublasSetStream"));
    const cudaDataType_t t = CudaType(p.type);
    RETURN_IF_ERROR(
        CublasStatus(cublasGemmEx(impl_->blas, CUBLAS_OP_T, CUBLAS_OP_N, p.out_features,
                                  static_cast<int>(p.rows), p.in_features, &one, p.weight, t,
                                  p.in_features, p.x, t, p.in_features, &zero, p.y, t,
                                  p.out_features, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "cublasGemmEx"));
    plan = Plan{};
    plan.post_bias_act = true;
  }
  if (plan.post_bias_act) {
    BiasActParams b;
    b.type = p.type;
    b.data = p.y;
    b.bias = p.bias_f32;
    b.residual = p.residual;
    b.rows = p.rows;
    b.cols = p.out_features;
    b.act = p.act;
    return BiasAct(b, stream);
  }
  if (plan.post_add) {
    AddParams a;
    a.type = p.type;
    a.a = p.y;
    a.b = p.residual;
    a.out = p.y;
    a.n = p.rows * p.out_features;
    return Add(a, stream);
  }
  return Status::Ok();
}

}  // namespace kernels
}  // namespace lookalike
