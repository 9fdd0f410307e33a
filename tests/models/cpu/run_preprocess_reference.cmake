# ctest fixture: writes the PIL/torchvision reference for cpu_preprocess_test.
# Where the Python reference stack is missing (no interpreter at PY, or no
# PIL / torch / torchvision in it: the GPU build island), writes OUT.skip with
# the reason instead, and the C++ test reports itself skipped with it.
file(REMOVE "${OUT}" "${OUT}.skip")
if(NOT EXISTS "${PY}")
  file(WRITE "${OUT}.skip" "no Python interpreter at ${PY} (run tools/install_deps.sh)")
  return()
endif()
execute_process(COMMAND "${PY}" "${SCRIPT}" --out "${OUT}" RESULT_VARIABLE rv)
if(NOT rv EQUAL 0)
  message(FATAL_ERROR "${SCRIPT} failed (${rv})")
endif()
