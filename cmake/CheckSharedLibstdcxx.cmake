# Post-link check of unime._C: it must use the shared libstdc++ that torch uses.
#
#   cmake -DMODULE=path/to/_C.so -DREADELF=readelf -P CheckSharedLibstdcxx.cmake
#
# Some toolchains (a GCC built without libstdc++.so, or one whose specs add -static-libstdc++) link
# libstdc++ into the module statically. The module then has its own copies of the locale facets' ids,
# and the first integer formatted into a stream that torch created (every error message naming a size)
# crashes the interpreter. A clear build error is better than that crash.
execute_process(COMMAND "${READELF}" -d "${MODULE}" OUTPUT_VARIABLE dynamic RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(WARNING "unime: could not read the dynamic section of ${MODULE} with ${READELF}; "
                  "libstdc++ linkage not checked")
  return()
endif()
if(NOT dynamic MATCHES "NEEDED[^\n]*libstdc\\+\\+\\.so")
  message(FATAL_ERROR
    "unime: ${MODULE} links libstdc++ statically (no libstdc++.so among its NEEDED libraries), so it "
    "cannot share C++ streams and exceptions with torch and would crash on the first error message. "
    "The C++ compiler (CMAKE_CXX_COMPILER) links libstdc++ statically: build with a compiler that links "
    "it as a shared library, e.g. CXX=/usr/bin/g++ CC=/usr/bin/gcc pip install ...")
endif()
