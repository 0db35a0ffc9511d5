# mbedTLS 3.6 LTS, as tools/setup builds it: from Debian 13's source package, with
# third_party/mbedtls/lwm2md_mbedtls_config.h, static and position independent, installed
# into LWM2MD_MBEDTLS_PREFIX. Defines the imported targets MbedTLS::mbedtls,
# MbedTLS::mbedx509 and MbedTLS::mbedcrypto; they carry MBEDTLS_CONFIG_FILE, so whoever
# links them compiles the mbedTLS headers with the configuration the libraries were
# built with.
#
# Debian 12's libmbedtls-dev (2.28), if installed, cannot be picked up instead: its
# headers live in /usr/include, which CMake never passes on the command line and the
# compiler searches after every -I and -isystem directory, and the libraries are linked
# by their full path in the prefix, never as -lmbedtls.
#
# Sanitizer and fuzzer flavours (LWM2MD_SANITIZE, LWM2MD_FUZZ) link these uninstrumented
# Release libraries: ASan and UBSan check our code and the buffers we hand to mbedTLS,
# not mbedTLS's own internals. Good enough until a DTLS fuzzer wants coverage inside it.

set(LWM2MD_MBEDTLS_PREFIX "${CMAKE_SOURCE_DIR}/.deps/mbedtls" CACHE PATH
  "Where tools/setup installed mbedTLS 3.6")

set(_lwm2md_mbedtls_config "${CMAKE_SOURCE_DIR}/third_party/mbedtls/lwm2md_mbedtls_config.h")
set(_lwm2md_mbedtls_built "${LWM2MD_MBEDTLS_PREFIX}/include/lwm2md_mbedtls_config.h")
# An edited header re-runs this check, which then asks for a rebuild of mbedTLS.
set_property(DIRECTORY "${CMAKE_SOURCE_DIR}" APPEND PROPERTY
  CMAKE_CONFIGURE_DEPENDS "${_lwm2md_mbedtls_config}")

if(NOT EXISTS "${LWM2MD_MBEDTLS_PREFIX}/lib/cmake/MbedTLS/MbedTLSConfig.cmake"
   OR NOT EXISTS "${_lwm2md_mbedtls_built}")
  message(FATAL_ERROR
    "mbedTLS 3.6 is not built in ${LWM2MD_MBEDTLS_PREFIX}.\n"
    "Run tools/setup: it builds mbedTLS from Debian 13's source package with "
    "third_party/mbedtls/lwm2md_mbedtls_config.h (or point LWM2MD_MBEDTLS_PREFIX elsewhere).")
endif()
find_package(MbedTLS 3.6 CONFIG REQUIRED PATHS "${LWM2MD_MBEDTLS_PREFIX}" NO_DEFAULT_PATH)
if(MbedTLS_VERSION VERSION_GREATER_EQUAL 3.7)
  message(FATAL_ERROR "mbedTLS ${MbedTLS_VERSION} in ${LWM2MD_MBEDTLS_PREFIX}: lwm2md is "
    "written for the 3.6 LTS branch. Run tools/setup.")
endif()

file(SHA256 "${_lwm2md_mbedtls_config}" _lwm2md_mbedtls_want)
file(SHA256 "${_lwm2md_mbedtls_built}" _lwm2md_mbedtls_have)
if(NOT _lwm2md_mbedtls_want STREQUAL _lwm2md_mbedtls_have)
  message(FATAL_ERROR "third_party/mbedtls/lwm2md_mbedtls_config.h changed since mbedTLS "
    "was built in ${LWM2MD_MBEDTLS_PREFIX}: run tools/setup to rebuild it.")
endif()
# The prefix names its copy of the header by absolute path: a moved prefix needs a rebuild.
get_target_property(_lwm2md_mbedtls_defs MbedTLS::mbedcrypto INTERFACE_COMPILE_DEFINITIONS)
string(FIND "${_lwm2md_mbedtls_defs}" "MBEDTLS_CONFIG_FILE=\"${_lwm2md_mbedtls_built}\"" _lwm2md_mbedtls_at)
if(_lwm2md_mbedtls_at EQUAL -1)
  message(FATAL_ERROR "mbedTLS in ${LWM2MD_MBEDTLS_PREFIX} was built for another location: "
    "run tools/setup to rebuild it.")
endif()
message(STATUS "mbedTLS ${MbedTLS_VERSION} from ${LWM2MD_MBEDTLS_PREFIX}")
