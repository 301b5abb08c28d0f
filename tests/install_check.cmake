# Installs the build into a scratch prefix, then configures and builds examples/ as an
# outside project that finds zflow with find_package.
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "failed: ${ARGN}\n${out}\n${err}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples -B ${WORK_DIR}/consumer -G Ninja
    -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer)
# The training-API example trains through a custom objective and callback; it exits 1
# unless the flow learnt the data (a validation NLL within 0.6 nats of the entropy).
run(${WORK_DIR}/consumer/zflow_custom_objective 300)
# The variational example fits a flow to a C++ density and integrates it; it exits 1 unless
# the flow is a good proposal (ESS above 50%, log Z within its error bar).
run(${WORK_DIR}/consumer/zflow_integrate_target 600)
message(STATUS "an outside project found zflow and built and ran the examples")
