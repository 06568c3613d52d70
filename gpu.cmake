# The GPU layer's build (src/gpu/): included from the top-level
# CMakeLists.txt after p2p_core is defined. The C files of src/gpu/ are in
# p2p_core through its glob; this adds what needs more than a C compiler:
#  - the device-unpack kernel, compiled by nvcc (when found) into a fatbin
#    for sm_80 and sm_90 plus compute_90 PTX, embedded in p2p_core as a
#    byte array (without nvcc the array is empty and the GPU receive path
#    says "unpack kernel not built");
#  - the build-time check of src/gpu/cudadrv.h against the real <cuda.h>.
# libcuda is never linked: src/gpu/cudadrv.c loads it at run time.
include_guard(GLOBAL)

find_program(P2P_NVCC nvcc HINTS $ENV{CUDA_HOME}/bin /usr/local/cuda/bin
             DOC "nvcc for the GPU unpack kernel (empty: do not build it)")
find_path(P2P_CUDA_INCLUDE cuda.h HINTS $ENV{CUDA_HOME}/include
          /usr/local/cuda/include DOC "folder of the CUDA driver header")

set(P2P_GPU_DIR ${CMAKE_CURRENT_LIST_DIR}/src/gpu)
set(P2P_GPU_GEN ${CMAKE_BINARY_DIR}/gpu)
set(P2P_UNPACK_C ${P2P_GPU_GEN}/unpack_fatbin.c)
set(P2P_EMBED ${CMAKE_COMMAND} -DNAME=gpu_unpack_fatbin -DOUT=${P2P_UNPACK_C})
file(MAKE_DIRECTORY ${P2P_GPU_GEN})

if(P2P_NVCC)
  set(P2P_UNPACK_FATBIN ${P2P_GPU_GEN}/unpack_kernel.fatbin)
  add_custom_command(
    OUTPUT ${P2P_UNPACK_FATBIN}
    COMMAND ${P2P_NVCC} -fatbin -O3 -std=c++17 -I${P2P_GPU_DIR}
            -gencode arch=compute_80,code=sm_80
            -gencode arch=compute_90,code=sm_90
            -gencode arch=compute_90,code=compute_90
            -o ${P2P_UNPACK_FATBIN} ${P2P_GPU_DIR}/unpack_kernel.cu
    DEPENDS ${P2P_GPU_DIR}/unpack_kernel.cu ${P2P_GPU_DIR}/unpack_meta.h
    COMMENT "nvcc: device-unpack kernel (sm_80, sm_90, compute_90)"
    VERBATIM)
  add_custom_command(
    OUTPUT ${P2P_UNPACK_C}
    COMMAND ${P2P_EMBED} -DIN=${P2P_UNPACK_FATBIN}
            -P ${P2P_GPU_DIR}/embed_fatbin.cmake
    DEPENDS ${P2P_UNPACK_FATBIN} ${P2P_GPU_DIR}/embed_fatbin.cmake
    COMMENT "embedding the unpack kernel"
    VERBATIM)
  set_property(TARGET p2p_core PROPERTY P2P_UNPACK_KERNEL ON) # for the tests
  message(STATUS "GPU unpack kernel: built with ${P2P_NVCC}")
else()
  add_custom_command(
    OUTPUT ${P2P_UNPACK_C}
    COMMAND ${P2P_EMBED} -P ${P2P_GPU_DIR}/embed_fatbin.cmake
    DEPENDS ${P2P_GPU_DIR}/embed_fatbin.cmake
    VERBATIM)
  message(STATUS "GPU unpack kernel: not built (nvcc not found); GPU "
                 "receives from UNPACK plugins will be refused")
endif()
target_sources(p2p_core PRIVATE ${P2P_UNPACK_C})
# src/gpu/unpack.c refers to the array weakly (a build without this file
# still links and loads); a weak reference does not pull an archive member
# in, so ask the linker for it wherever tcpx_p2p_static is linked.
target_link_options(p2p_core INTERFACE "LINKER:--undefined=gpu_unpack_fatbin")

if(P2P_CUDA_INCLUDE)
  set_source_files_properties(${P2P_GPU_DIR}/cudadrv_abi_check.c PROPERTIES
    COMPILE_DEFINITIONS P2P_HAVE_CUDA_H=1
    INCLUDE_DIRECTORIES ${P2P_CUDA_INCLUDE})
endif()
