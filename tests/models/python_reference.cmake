# The Python reference stack of the parity fixtures, in one place: included by
# the fixture scripts (cmake -P make_*fixture.cmake).
#
#   lookalike_choose_python()
#     PYTHON becomes $LOOKALIKE_PYTHON when that is set (tools/test.sh and
#     tools/gpu_check.sh set it; the GPU machine has no .venv), else stays the
#     -DPYTHON given (the repository's .venv).
#   lookalike_reference_python(<out_dir> <python_code> <ok_var>)
#     Runs <python_code> (the imports the generator needs) in PYTHON. When the
#     interpreter or a module is missing, writes <out_dir>/SKIPPED with the
#     reason (the C++ test reports GTEST_SKIP with it) and sets <ok_var> to
#     FALSE; else TRUE.
macro(lookalike_choose_python)
  if(DEFINED ENV{LOOKALIKE_PYTHON})
    set(PYTHON $ENV{LOOKALIKE_PYTHON})
  endif()
endmacro()

function(lookalike_reference_python out code ok_var)
  set(python ${PYTHON})
  set(${ok_var} FALSE PARENT_SCOPE)
  file(MAKE_DIRECTORY ${out})
  if(NOT EXISTS ${python})
    file(WRITE ${out}/SKIPPED
         "Python reference stack absent: ${python} does not exist (run tools/install_deps.sh)")
    message(STATUS "fixture ${out}: skipped, no ${python}")
    return()
  endif()
  execute_process(COMMAND ${python} -c "${code}" RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    string(STRIP "${err}" err)
    string(REGEX REPLACE ".*\n" "" err "${err}")
    file(WRITE ${out}/SKIPPED
         "Python reference stack absent in ${python}: ${err} (run tools/install_deps.sh)")
    message(STATUS "fixture ${out}: skipped: ${err}")
    return()
  endif()
  set(${ok_var} TRUE PARENT_SCOPE)
endfunction()
