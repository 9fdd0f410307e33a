# lookalike_models: backbone definitions, presets, safetensors weights and the
# Embedder (the engine's public API). Included from models/CMakeLists.txt after
# the backends, so their targets exist here.
add_library(lookalike_models STATIC
  ${CMAKE_CURRENT_LIST_DIR}/json.cc
  ${CMAKE_CURRENT_LIST_DIR}/safetensors.cc
  ${CMAKE_CURRENT_LIST_DIR}/weights.cc
  ${CMAKE_CURRENT_LIST_DIR}/presets.cc
  ${CMAKE_CURRENT_LIST_DIR}/pos_embed.cc
  ${CMAKE_CURRENT_LIST_DIR}/model.cc
  ${CMAKE_CURRENT_LIST_DIR}/resnet.cc
  ${CMAKE_CURRENT_LIST_DIR}/vit.cc
  ${CMAKE_CURRENT_LIST_DIR}/efficientnet_lite.cc
  ${CMAKE_CURRENT_LIST_DIR}/backend_factory.cc
  ${CMAKE_CURRENT_LIST_DIR}/embedder.cc
  ${CMAKE_CURRENT_LIST_DIR}/clip_tokenizer.cc
)
target_include_directories(lookalike_models PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(lookalike_models PUBLIC lookalike_models_core lookalike_common)
find_package(ZLIB REQUIRED)  # clip_tokenizer.cc reads bpe_simple_vocab_16e6.txt.gz
target_link_libraries(lookalike_models PRIVATE ZLIB::ZLIB)
# The CPU backend (models/cpu/) is the default device; without it "cpu" is a
# FAILED_PRECONDITION from MakeBackend().
if(TARGET lookalike_cpu_backend)
  target_link_libraries(lookalike_models PUBLIC lookalike_cpu_backend)
  target_compile_definitions(lookalike_models PUBLIC LOOKALIKE_HAVE_CPU_BACKEND=1)
else()
  message(WARNING "lookalike_models: no CPU backend target (models/cpu/); device \"cpu\" unavailable")
endif()
# The CUDA backend (models/cuda/, built only with CUDA) provides
# MakeCudaBackend() / CudaDeviceCount() declared in models/backend_factory.h.
if(TARGET lookalike_cuda_backend)
  target_link_libraries(lookalike_models PUBLIC lookalike_cuda_backend)
  target_compile_definitions(lookalike_models PUBLIC LOOKALIKE_HAVE_CUDA=1
                                                     LOOKALIKE_HAVE_CUDA_BACKEND=1)
endif()
