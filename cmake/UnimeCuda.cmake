# Decides whether the CUDA kernels are built (UNIME_WITH_CUDA) from UNIME_CUDA = AUTO|ON|OFF.
#
# AUTO builds them only when all hold: torch is a CUDA build, nvcc is found, and nvcc's major
# version equals torch's CUDA major version (a kernel built by another major toolkit may not load
# next to torch's CUDA runtime). Otherwise it says why and builds the complete CPU library.

set(UNIME_WITH_CUDA OFF)
if(UNIME_CUDA STREQUAL "OFF")
  message(STATUS "unime: CUDA kernels off (UNIME_CUDA=OFF)")
  return()
endif()

set(_why "")
if(NOT UNIME_TORCH_HAS_CUDA)
  set(_why "torch ${UNIME_TORCH_VERSION} is a CPU build")
else()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    set(_why "no CUDA compiler (nvcc) found")
  else()
    execute_process(COMMAND "${CMAKE_CUDA_COMPILER}" --version OUTPUT_VARIABLE _nvcc_out)
    string(REGEX MATCH "release ([0-9]+)\\.([0-9]+)" _ "${_nvcc_out}")
    set(_nvcc_major "${CMAKE_MATCH_1}")
    string(REGEX MATCH "^([0-9]+)" _ "${UNIME_TORCH_CUDA_VERSION}")
    set(_torch_cuda_major "${CMAKE_MATCH_1}")
    if(NOT _nvcc_major STREQUAL _torch_cuda_major)
      set(_why "nvcc is CUDA ${_nvcc_major}.x but torch was built with CUDA ${UNIME_TORCH_CUDA_VERSION}")
    endif()
  endif()
endif()

if(NOT _why STREQUAL "")
  if(UNIME_CUDA STREQUAL "ON")
    message(FATAL_ERROR "unime: UNIME_CUDA=ON but ${_why}")
  endif()
  message(STATUS "unime: CUDA kernels off: ${_why}")
  return()
endif()

set(CMAKE_CUDA_ARCHITECTURES "${UNIME_CUDA_ARCHS}")
set(CMAKE_CUDA_STANDARD 17)
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
set(UNIME_WITH_CUDA ON)
message(STATUS "unime: CUDA kernels on (nvcc ${_nvcc_major}, archs ${UNIME_CUDA_ARCHS})")
