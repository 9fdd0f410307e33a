# lookalike_index: collections = storage (source of truth: SQLite, or
# PostgreSQL through libpq) + derived FAISS index (CPU) or the GPU flat index
# (index/gpu, when built).
find_package(faiss CONFIG REQUIRED)  # Debian's config; see index/gpu/CMakeLists.txt
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(SQLite3 REQUIRED)
find_package(PostgreSQL REQUIRED)  # libpq (Debian: libpq-dev)
find_package(BLAS REQUIRED)

add_library(lookalike_index STATIC
  ${CMAKE_CURRENT_LIST_DIR}/collection.cc
  ${CMAKE_CURRENT_LIST_DIR}/collection_manager.cc
  ${CMAKE_CURRENT_LIST_DIR}/cpu_index_flat.cc
  ${CMAKE_CURRENT_LIST_DIR}/derived_index.cc
  ${CMAKE_CURRENT_LIST_DIR}/follower.cc
  ${CMAKE_CURRENT_LIST_DIR}/index_factory.cc
  ${CMAKE_CURRENT_LIST_DIR}/pg_database.cc
  ${CMAKE_CURRENT_LIST_DIR}/postgres_storage.cc
  ${CMAKE_CURRENT_LIST_DIR}/snapshot.cc
  ${CMAKE_CURRENT_LIST_DIR}/sqlite_storage.cc
  ${CMAKE_CURRENT_LIST_DIR}/storage.cc
)
target_include_directories(lookalike_index PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(lookalike_index
  PUBLIC lookalike_common lookalike_index_types faiss OpenMP::OpenMP_CXX SQLite::SQLite3
         PostgreSQL::PostgreSQL
  PRIVATE spdlog::spdlog BLAS::BLAS)
# index_factory.cc builds GpuIndexFlat for index_device cuda[:N] when this
# build has it (CUDA present); tests/index checks the other answer without it.
if(TARGET lookalike_gpu_index_flat)
  target_link_libraries(lookalike_index PRIVATE lookalike_gpu_index_flat)
  target_compile_definitions(lookalike_index PUBLIC LOOKALIKE_HAVE_GPU_INDEX=1)
endif()

# Throughput measurement (not a test): build/index/index_throughput.
if(LOOKALIKE_BUILD_BENCHMARKS)
  add_executable(index_throughput ${CMAKE_CURRENT_LIST_DIR}/tools/index_throughput.cc)
  target_link_libraries(index_throughput PRIVATE lookalike_index)
  # Follower lag between two managers on one PostgreSQL (bench/replicas/run.sh).
  add_executable(follow_lag ${CMAKE_CURRENT_LIST_DIR}/tools/follow_lag.cc)
  target_link_libraries(follow_lag PRIVATE lookalike_index Threads::Threads)
endif()
