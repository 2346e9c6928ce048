# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# bpf_object(<name> <source.bpf.c>)
#
# Compiles a BPF C source with clang for the BPF target and generates its
# libbpf skeleton with bpftool. Yields an INTERFACE target <name> whose
# include directory holds <stem>.skel.h, plus the variable <name>_OBJECT with
# the path of the .o (tests load it directly). The headers it includes are
# found by the compiler (-MD), not listed by hand.
find_program(BPF_CLANG NAMES clang clang-16 clang-15 clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

execute_process(COMMAND uname -m OUTPUT_VARIABLE BPF_UNAME_M OUTPUT_STRIP_TRAILING_WHITESPACE)
if(BPF_UNAME_M STREQUAL "x86_64")
  set(BPF_TARGET_ARCH x86)
elseif(BPF_UNAME_M STREQUAL "aarch64")
  set(BPF_TARGET_ARCH arm64)
else()
  set(BPF_TARGET_ARCH ${BPF_UNAME_M})
endif()
# <asm/types.h> lives in the multiarch include directory on Debian.
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
  OUTPUT_VARIABLE BPF_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)

function(bpf_object name source)
  get_filename_component(stem ${source} NAME_WE)
  set(outdir ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  set(obj ${outdir}/${stem}.bpf.o)
  set(skel ${outdir}/${stem}.skel.h)
  set(inc -I${PROJECT_SOURCE_DIR}/include)
  if(BPF_MULTIARCH)
    list(APPEND inc -I/usr/include/${BPF_MULTIARCH})
  endif()
  add_custom_command(OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${outdir}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_${BPF_TARGET_ARCH}
            -Wall -Wno-unused-function ${inc} -MD -MF ${obj}.d -c ${source} -o ${obj}
    DEPENDS ${source}
    DEPFILE ${obj}.d
    COMMENT "BPF ${stem}.bpf.c"
    VERBATIM)
  add_custom_command(OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${stem}_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "bpftool gen skeleton ${stem}"
    VERBATIM)
  add_custom_target(${name}_gen DEPENDS ${obj} ${skel})
  add_library(${name} INTERFACE)
  add_dependencies(${name} ${name}_gen)
  target_include_directories(${name} INTERFACE ${outdir})
  set(${name}_OBJECT ${obj} PARENT_SCOPE)
endfunction()
