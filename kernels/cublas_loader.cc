// cuBLAS / cuBLASLt entry points resolved on first use (kernels/cublas_loader.h).
#include "kernels/cublas_loader.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <dlfcn.h>

#include <string>

namespace lookalike {
namespace kernels {
namespace {

#define LOOKALIKE_STR2(x) #x
#define LOOKALIKE_STR(x) LOOKALIKE_STR2(x)

struct CublasLibraries {
  void* lt = nullptr;
  void* blas = nullptr;
  std::string error;  // "" when both loaded
};

// dlopen by soname (LD_LIBRARY_PATH, the loader cache, this binary's
// RUNPATH), then from the toolkit directory this build was configured with.
void* Open(const std::string& soname, std::string* error) {
  void* h = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h != nullptr) return h;
  const std::string first = dlerror();
  const std::string in_toolkit = std::string(LOOKALIKE_CUDA_LIBRARY_DIR) + "/" + soname;
  h = dlopen(in_toolkit.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) *error = "cannot load " + soname + " (" + first + "; " + dlerror() + ")";
  return h;
}

const CublasLibraries& Libraries() {
  static const CublasLibraries libs = [] {
    CublasLibraries l;
    const std::string major = LOOKALIKE_STR(CUBLAS_VER_MAJOR);
    l.lt = Open("libcublasLt.so." + major, &l.error);
    if (l.lt != nullptr) l.blas = Open("libcublas.so." + major, &l.error);
    return l;
  }();
  return libs;
}

void* Resolve(bool lt, const char* name) {
  const CublasLibraries& l = Libraries();
  void* h = lt ? l.lt : l.blas;
  return h == nullptr ? nullptr : dlsym(h, name);
}

}  // namespace

std::string CublasLoadError() { return Libraries().error; }

}  // namespace kernels
}  // namespace lookalike

// Each entry point: the real function, looked up once (thread-safe static
// initialization) and called with the same arguments; NOT_INITIALIZED when the
// library or the symbol is missing. The parameter lists are the headers'; a
// mismatch would declare a different function and fail to link.
#define LOOKALIKE_CUBLAS_FORWARD(lt, name, params, args)                               \
  cublasStatus_t CUBLASWINAPI name params {                                            \
    using Fn = cublasStatus_t(CUBLASWINAPI*) params;                                   \
    static const Fn fn = reinterpret_cast<Fn>(lookalike::kernels::Resolve(lt, #name)); \
    return fn == nullptr ? CUBLAS_STATUS_NOT_INITIALIZED : fn args;                    \
  }

// cuBLAS (cublas_v2.h maps cublasCreate etc. to the _v2 names).
LOOKALIKE_CUBLAS_FORWARD(false, cublasCreate_v2, (cublasHandle_t * handle), (handle))
LOOKALIKE_CUBLAS_FORWARD(false, cublasDestroy_v2, (cublasHandle_t handle), (handle))
LOOKALIKE_CUBLAS_FORWARD(false, cublasSetStream_v2, (cublasHandle_t handle, cudaStream_t stream),
                         (handle, stream))
LOOKALIKE_CUBLAS_FORWARD(false, cublasSetMathMode, (cublasHandle_t handle, cublasMath_t mode),
                         (handle, mode))
LOOKALIKE_CUBLAS_FORWARD(false, cublasGemmEx,
                         (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                          int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype,
                          int lda, const void* B, cudaDataType Btype, int ldb, const void* beta,
                          void* C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                          cublasGemmAlgo_t algo),
                         (handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb,
                          beta, C, Ctype, ldc, computeType, algo))

// cuBLASLt.
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtCreate, (cublasLtHandle_t * handle), (handle))
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtDestroy, (cublasLtHandle_t handle), (handle))
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtMatmul,
                         (cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha,
                          const void* A, cublasLtMatrixLayout_t Adesc, const void* B,
                          cublasLtMatrixLayout_t Bdesc, const void* beta, const void* C,
                          cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc,
                          const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes,
                          cudaStream_t stream),
                         (handle, desc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algo,
                          workspace, workspace_bytes, stream))
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtMatmulAlgoGetHeuristic,
                         (cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                          cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                          cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                          cublasLtMatmulPreference_t preference, int requested,
                          cublasLtMatmulHeuristicResult_t results[], int* returned),
                         (handle, desc, Adesc, Bdesc, Cdesc, Ddesc, preference, requested, results,
                          returned))
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtMatmulDescCreate,
                         (cublasLtMatmulDesc_t * desc, cublasComputeType_t compute,
                          cudaDataType_t scale),
                         (desc, compute, scale))
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtMatmulDescDestroy, (cublasLtMatmulDesc_t desc), (desc))
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtMatmulDescSetAttribute,
                         (cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                          const void* buf, size_t bytes),
                         (desc, attr, buf, bytes))
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtMatmulPreferenceCreate, (cublasLtMatmulPreference_t * pref),
                         (pref))
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtMatmulPreferenceDestroy, (cublasLtMatmulPreference_t pref),
                         (pref))
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtMatmulPreferenceSetAttribute,
                         (cublasLtMatmulPreference_t pref,
                          cublasLtMatmulPreferenceAttributes_t attr, const void* buf, size_t bytes),
                         (pref, attr, buf, bytes))
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtMatrixLayoutCreate,
                         (cublasLtMatrixLayout_t * layout, cudaDataType type, uint64_t rows,
                          uint64_t cols, int64_t ld),
                         (layout, type, rows, cols, ld))
LOOKALIKE_CUBLAS_FORWARD(true, cublasLtMatrixLayoutDestroy, (cublasLtMatrixLayout_t layout),
                         (layout))
