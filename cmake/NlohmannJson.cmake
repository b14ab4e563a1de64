# Finds nlohmann/json (header-only) and defines the target nlohmann_json::nlohmann_json.
#
# First choice: the nlohmann-json package from PyPI (a build requirement in pyproject.toml, pinned in
# requirements.txt), installed next to the interpreter that builds us. It ships the headers only, no
# CMake config, so we ask the interpreter where the package is (without importing it) and read the
# version from its headers. Fallback: a CMake config installed on the system (Debian's
# nlohmann-json3-dev), for builds outside pip.
#
# Defines: nlohmann_json::nlohmann_json, UNIME_NLOHMANN_JSON_VERSION, UNIME_NLOHMANN_JSON_SOURCE.

set(_unime_json_min 3.10)

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
          "import importlib.util, os; s = importlib.util.find_spec('nlohmann_json'); print(os.path.join(list(s.submodule_search_locations)[0], 'include') if s else '')"
  OUTPUT_VARIABLE _unime_json_include
  OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _unime_json_rc)

set(_unime_json_macros "${_unime_json_include}/nlohmann/detail/abi_macros.hpp")
if(_unime_json_rc EQUAL 0 AND NOT _unime_json_include STREQUAL "" AND EXISTS "${_unime_json_macros}")
  file(STRINGS "${_unime_json_macros}" _unime_json_defines REGEX "^#define NLOHMANN_JSON_VERSION_(MAJOR|MINOR|PATCH) ")
  set(UNIME_NLOHMANN_JSON_VERSION "")
  foreach(_part MAJOR MINOR PATCH)
    string(REGEX MATCH "NLOHMANN_JSON_VERSION_${_part} +([0-9]+)" _ "${_unime_json_defines}")
    list(APPEND UNIME_NLOHMANN_JSON_VERSION "${CMAKE_MATCH_1}")
  endforeach()
  list(JOIN UNIME_NLOHMANN_JSON_VERSION "." UNIME_NLOHMANN_JSON_VERSION)
  if(UNIME_NLOHMANN_JSON_VERSION VERSION_LESS _unime_json_min)
    message(FATAL_ERROR "unime: nlohmann-json ${UNIME_NLOHMANN_JSON_VERSION} at ${_unime_json_include} is older "
                        "than ${_unime_json_min}: pip install -r requirements.txt (nlohmann-json==3.12.0)")
  endif()
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  # Imported include directories are system directories: searched before /usr/include, so a system
  # copy of another version cannot shadow this one.
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_unime_json_include}")
  set(UNIME_NLOHMANN_JSON_SOURCE "PyPI package nlohmann-json at ${_unime_json_include}")
else()
  find_package(nlohmann_json ${_unime_json_min} QUIET)
  if(NOT nlohmann_json_FOUND)
    message(FATAL_ERROR "unime: nlohmann/json not found. Install the PyPI package into the interpreter that "
                        "builds unime (${Python_EXECUTABLE} -m pip install nlohmann-json==3.12.0; pip does it "
                        "itself with build isolation), or a system package with a CMake config.")
  endif()
  set(UNIME_NLOHMANN_JSON_VERSION "${nlohmann_json_VERSION}")
  set(UNIME_NLOHMANN_JSON_SOURCE "CMake config at ${nlohmann_json_DIR}")
endif()
message(STATUS "unime: nlohmann/json ${UNIME_NLOHMANN_JSON_VERSION} from the ${UNIME_NLOHMANN_JSON_SOURCE}")
