// cuBLAS / cuBLASLt loaded on first use (kernels/cublas_loader.h): not mapped
// before, found and mapped by the first call, without a GPU too (the calls
// then fail with cuBLAS's own status, not with the loader's).
#include "kernels/cublas_loader.h"

#include <cublasLt.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace lookalike {
namespace kernels {
namespace {

bool Mapped(const std::string& library) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find(library) != std::string::npos) return true;
  }
  return false;
}

// One test, one process (gtest_discover_tests): nothing has called cuBLAS yet.
TEST(CublasLoaderTest, LoadsOnFirstCall) {
  if (!std::ifstream("/proc/self/maps")) GTEST_SKIP() << "no /proc/self/maps on this system";
  EXPECT_FALSE(Mapped("libcublasLt.so"));
  cublasLtHandle_t handle = nullptr;
  const cublasStatus_t status = cublasLtCreate(&handle);
  // This build was linked against the toolkit, so its libraries are there.
  EXPECT_EQ(CublasLoadError(), "");
  EXPECT_TRUE(Mapped("libcublasLt.so"));
  EXPECT_TRUE(Mapped("libcublas.so"));
  if (status == CUBLAS_STATUS_SUCCESS) cublasLtDestroy(handle);
}

}  // namespace
}  // namespace kernels
}  // namespace lookalike
