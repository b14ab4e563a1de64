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
# torch loads the shared CUDA runtime; we link it explicitly (CUDA::cudart) rather than let CMake add
# its static copy, which would keep state of its own next to torch's.
set(CMAKE_CUDA_RUNTIME_LIBRARY None)
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
# CMake adds the library folders of nvcc's host compiler to every link that has CUDA objects. Seen on
# a GPU machine: nvcc's host compiler folder held only libstdc++.a, so parts of libstdc++ were linked
# statically into _C next to torch's shared libstdc++, and every ostream use in _C crashed. We link
# the CUDA runtime explicitly (CUDA::cudart), so those folders and libraries are not needed.
set(CMAKE_CUDA_IMPLICIT_LINK_DIRECTORIES "")
set(CMAKE_CUDA_IMPLICIT_LINK_LIBRARIES "")
set(UNIME_WITH_CUDA ON)
message(STATUS "unime: CUDA kernels on (nvcc ${_nvcc_major}, archs ${UNIME_CUDA_ARCHS})")
