# lookalike_index: collections = SQLite storage (source of truth) + derived
# FAISS index (CPU) or the GPU flat index (index/gpu, when built).
find_package(OpenMP REQUIRED)
find_package(faiss REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(BLAS REQUIRED)

add_library(lookalike_index STATIC
  ${CMAKE_CURRENT_LIST_DIR}/collection.cc
  ${CMAKE_CURRENT_LIST_DIR}/collection_manager.cc
  ${CMAKE_CURRENT_LIST_DIR}/cpu_index_flat.cc
  ${CMAKE_CURRENT_LIST_DIR}/derived_index.cc
  ${CMAKE_CURRENT_LIST_DIR}/index_factory.cc
  ${CMAKE_CURRENT_LIST_DIR}/storage.cc
)
target_include_directories(lookalike_index PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(lookalike_index
  PUBLIC lookalike_common faiss OpenMP::OpenMP_CXX SQLite::SQLite3
  PRIVATE spdlog::spdlog BLAS::BLAS)
# GpuIndexFlat (a faiss::Index) exists only when the GPU index found FAISS.
if(TARGET lookalike_gpu_index AND LOOKALIKE_GPU_INDEX_HAVE_FAISS)
  target_link_libraries(lookalike_index PRIVATE lookalike_gpu_index)
  target_compile_definitions(lookalike_index PUBLIC LOOKALIKE_HAVE_GPU_INDEX=1)
endif()

# Throughput measurement (not a test): build/index/index_throughput.
if(LOOKALIKE_BUILD_BENCHMARKS)
  add_executable(index_throughput ${CMAKE_CURRENT_LIST_DIR}/tools/index_throughput.cc)
  target_link_libraries(index_throughput PRIVATE lookalike_index)
endif()
