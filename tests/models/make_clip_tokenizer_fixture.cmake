# Writes the CLIP tokenizer parity fixture (ctest FIXTURES_SETUP step).
#   cmake -DPYTHON=... -DSCRIPT=tools/make_clip_tokenizer_reference.py -DOUT=dir
#         -P make_clip_tokenizer_fixture.cmake
# $LOOKALIKE_PYTHON, when set, replaces PYTHON. When the reference (open_clip's
# tokenizer.py with ftfy and regex) is absent, writes OUT/SKIPPED with the
# reason (the C++ test reports GTEST_SKIP with it) and succeeds; any other
# failure of the generator fails the fixture. A fixture newer than the
# generator is reused, with only the reference's speed measured again.
include(${CMAKE_CURRENT_LIST_DIR}/python_reference.cmake)
lookalike_choose_python()
set(corpus ${OUT}/corpus.tsv)
file(REMOVE ${OUT}/SKIPPED)
if(EXISTS ${corpus} AND EXISTS ${OUT}/summary.txt AND NOT ${SCRIPT} IS_NEWER_THAN ${corpus})
  message(STATUS "fixture ${OUT}: up to date; timing the reference again")
  # The speed comparison wants both timings from this run.
  execute_process(COMMAND ${PYTHON} ${SCRIPT} --out ${OUT} --time-only RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "make_clip_tokenizer_reference.py --time-only failed (exit ${rc})")
  endif()
  return()
endif()
lookalike_reference_python(${OUT}
  "import ftfy, regex, torch, importlib.util as u; assert u.find_spec('open_clip'), 'No module named open_clip (open-clip-torch)'"
  ok)
if(NOT ok)
  return()
endif()
execute_process(COMMAND ${PYTHON} ${SCRIPT} --out ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${corpus})
  message(FATAL_ERROR "make_clip_tokenizer_reference.py failed (exit ${rc})")
endif()
