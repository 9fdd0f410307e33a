// cuBLAS and cuBLASLt, loaded on first use instead of at process start.
//
// A process that links libcublas / libcublasLt (DT_NEEDED) runs cuBLASLt's
// static initializers when it starts: about 150 MB of resident memory on CUDA
// 13, paid even by a CPU-only engine that never touches a GPU (the embedded
// default). So the project does not link them: target lookalike_cublas
// (kernels/cublas_loader.cc) defines the cuBLAS / cuBLASLt entry points the
// project calls, with the headers' own signatures, and each resolves the real
// function with dlopen / dlsym the first time any of them is called. Callers
// include <cublas_v2.h> / <cublasLt.h> and call cuBLAS as usual.
//
// When the libraries cannot be loaded, every entry point returns
// CUBLAS_STATUS_NOT_INITIALIZED and CublasLoadError() says why.
#pragma once

#include <string>

namespace lookalike {
namespace kernels {

// "" when cuBLAS and cuBLASLt are loaded (loading them now if they were not);
// otherwise which library could not be loaded and dlerror()'s reason.
std::string CublasLoadError();

}  // namespace kernels
}  // namespace lookalike
