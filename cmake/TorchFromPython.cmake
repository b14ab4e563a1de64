# Finds LibTorch inside the installed torch wheel and defines imported targets for it.
#
# Why not find_package(Torch): the PyPI torch wheel for Linux is a CUDA build, and its TorchConfig
# stops with a fatal error when no CUDA toolkit is found, and overwrites CMAKE_CUDA_ARCHITECTURES
# when one is (pytorch#115937). Our CPU build must work without a toolkit, so we read the paths from
# the interpreter (torch.utils.cmake_prefix_path, the same root TorchConfig uses) and link the
# libraries we need by name.
#
# Defines:
#   unime::torch_cpu     c10 + torch_cpu, include dirs, and the C++ ABI flag torch was built with
#   unime::torch_cuda    c10_cuda + torch_cuda (only when UNIME_TORCH_HAS_CUDA)
#   unime::torch_python  libtorch_python (pybind11 tensor casters) for the extension module
#   UNIME_TORCH_VERSION, UNIME_TORCH_CUDA_VERSION ("" for CPU wheels), UNIME_TORCH_LIB_DIR

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
          "import os, torch; p = os.path.dirname(torch.__file__); print(p); print(torch.__version__); print(torch.version.cuda or ''); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
  OUTPUT_VARIABLE _unime_torch_info
  OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _unime_torch_rc)
if(NOT _unime_torch_rc EQUAL 0)
  message(FATAL_ERROR "unime: `import torch` failed with ${Python_EXECUTABLE}. Install torch first "
                      "(see README) and build with --no-build-isolation.")
endif()
string(REPLACE "\n" ";" _unime_torch_info "${_unime_torch_info}")
list(GET _unime_torch_info 0 _unime_torch_root)
list(GET _unime_torch_info 1 UNIME_TORCH_VERSION)
list(GET _unime_torch_info 2 UNIME_TORCH_CUDA_VERSION)
list(GET _unime_torch_info 3 _unime_torch_cxx11_abi)
set(UNIME_TORCH_LIB_DIR "${_unime_torch_root}/lib")
message(STATUS "unime: torch ${UNIME_TORCH_VERSION} at ${_unime_torch_root} (CUDA '${UNIME_TORCH_CUDA_VERSION}', "
               "CXX11 ABI ${_unime_torch_cxx11_abi})")

set(_unime_torch_includes "${_unime_torch_root}/include"
                          "${_unime_torch_root}/include/torch/csrc/api/include")

function(_unime_import_torch_lib target libname)
  find_library(_lib_${libname} NAMES ${libname} PATHS "${UNIME_TORCH_LIB_DIR}" NO_DEFAULT_PATH REQUIRED)
  add_library(${target} SHARED IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${_lib_${libname}}")
endfunction()

_unime_import_torch_lib(unime_imported_c10 c10)
_unime_import_torch_lib(unime_imported_torch_cpu torch_cpu)
_unime_import_torch_lib(unime_imported_torch torch)
_unime_import_torch_lib(unime_imported_torch_python torch_python)

add_library(unime_torch_cpu INTERFACE)
add_library(unime::torch_cpu ALIAS unime_torch_cpu)
# torch's headers are system headers to us: their warnings are not ours to fix.
target_include_directories(unime_torch_cpu SYSTEM INTERFACE ${_unime_torch_includes})
target_compile_definitions(unime_torch_cpu INTERFACE _GLIBCXX_USE_CXX11_ABI=${_unime_torch_cxx11_abi})
target_link_libraries(unime_torch_cpu INTERFACE unime_imported_torch unime_imported_torch_cpu unime_imported_c10)

add_library(unime_torch_python INTERFACE)
add_library(unime::torch_python ALIAS unime_torch_python)
target_link_libraries(unime_torch_python INTERFACE unime_imported_torch_python)

set(UNIME_TORCH_HAS_CUDA OFF)
if(NOT UNIME_TORCH_CUDA_VERSION STREQUAL "")
  set(UNIME_TORCH_HAS_CUDA ON)
  _unime_import_torch_lib(unime_imported_c10_cuda c10_cuda)
  _unime_import_torch_lib(unime_imported_torch_cuda torch_cuda)
  add_library(unime_torch_cuda INTERFACE)
  add_library(unime::torch_cuda ALIAS unime_torch_cuda)
  target_link_libraries(unime_torch_cuda INTERFACE unime_torch_cpu unime_imported_torch_cuda
                                                   unime_imported_c10_cuda)
endif()
