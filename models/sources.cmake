# lookalike_models: backbone definitions, presets, safetensors weights and the
# Embedder (the engine's public API). Included from models/CMakeLists.txt after
# the backends, so their targets exist here.
add_library(lookalike_models STATIC
  ${CMAKE_CURRENT_LIST_DIR}/safetensors.cc
  ${CMAKE_CURRENT_LIST_DIR}/weights.cc
  ${CMAKE_CURRENT_LIST_DIR}/presets.cc
  ${CMAKE_CURRENT_LIST_DIR}/pos_embed.cc
  ${CMAKE_CURRENT_LIST_DIR}/model.cc
  ${CMAKE_CURRENT_LIST_DIR}/layer_loading.cc
  ${CMAKE_CURRENT_LIST_DIR}/resnet.cc
  ${CMAKE_CURRENT_LIST_DIR}/vit.cc
  ${CMAKE_CURRENT_LIST_DIR}/clip_text.cc
  ${CMAKE_CURRENT_LIST_DIR}/efficientnet_lite.cc
  ${CMAKE_CURRENT_LIST_DIR}/convnext.cc
  ${CMAKE_CURRENT_LIST_DIR}/swin.cc
  # torchvision MobileNet, VGG, DenseNet, GoogLeNet / Inception
  ${CMAKE_CURRENT_LIST_DIR}/mobilenet.cc
  ${CMAKE_CURRENT_LIST_DIR}/vgg.cc
  ${CMAKE_CURRENT_LIST_DIR}/densenet.cc
  ${CMAKE_CURRENT_LIST_DIR}/inception.cc
  ${CMAKE_CURRENT_LIST_DIR}/backend_factory.cc
  ${CMAKE_CURRENT_LIST_DIR}/embedder.cc
)
target_include_directories(lookalike_models PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(lookalike_models PUBLIC lookalike_models_core lookalike_common
                                              lookalike_cpu_backend lookalike_clip_tokenizer)
# MakeCudaBackend() (models/backend_factory.h): the CUDA backend where this
# build has CUDA, else the stand-in that says the build has none.
if(LOOKALIKE_HAVE_CUDA)
  target_link_libraries(lookalike_models PUBLIC lookalike_cuda_backend)
else()
  target_sources(lookalike_models PRIVATE ${CMAKE_CURRENT_LIST_DIR}/cuda_backend_absent.cc)
endif()
