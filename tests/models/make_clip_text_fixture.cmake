# Writes one CLIP text-tower parity fixture (ctest FIXTURES_SETUP step).
#   cmake -DPYTHON=... -DSCRIPT=tools/make_clip_text_reference.py -DVARIANT=v -DOUT=dir
#         -P make_clip_text_fixture.cmake
# $LOOKALIKE_PYTHON, when set, replaces PYTHON. When the reference stack
# (torch, transformers, safetensors, open_clip) is absent, writes OUT/SKIPPED
# with the reason (the C++ test reports GTEST_SKIP with it) and succeeds; any
# other failure of the generator fails the fixture. A fixture newer than the
# generator is reused.
include(${CMAKE_CURRENT_LIST_DIR}/python_reference.cmake)
lookalike_choose_python()
set(ref ${OUT}/reference.safetensors)
set(weights ${OUT}/model.safetensors)
file(REMOVE ${OUT}/SKIPPED)
if(EXISTS ${ref} AND EXISTS ${weights} AND EXISTS ${OUT}/config.json
   AND NOT ${SCRIPT} IS_NEWER_THAN ${ref})
  message(STATUS "fixture ${OUT}: up to date")
  return()
endif()
lookalike_reference_python(${OUT} "import torch, transformers, safetensors, open_clip" ok)
if(NOT ok)
  return()
endif()
execute_process(COMMAND ${PYTHON} ${SCRIPT} --out ${OUT} --variant ${VARIANT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${ref} ${weights})
  message(FATAL_ERROR "make_clip_text_reference.py --variant ${VARIANT} failed (exit ${rc})")
endif()
