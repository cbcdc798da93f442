# nacrith's pinned llama.cpp kernel set: the CMake arguments native/install.sh passes to
# llama-cpp-python's source build (one per line; '#' starts a comment).
#
# Why: llama.cpp picks its CPU kernels when it is compiled.  A build for this machine's
# AVX-512 and one for a laptop's AVX2 give logits up to 1.9 apart after a few tokens, so an
# archive made by one cannot be decoded by the other.  Every nacrith install on x86-64 builds
# the same kernels instead: x86-64-v3 (AVX2, FMA, F16C, BMI2; nearly every x86 CPU since
# 2013), whatever else the CPU has.  nacrith.native.kernels checks at run time that the
# loaded library is this build, and every archive carries a probe of its numerics.

# No -march=native, no runtime-selected CPU variants, no GPU or BLAS backend.
-DGGML_NATIVE=OFF
-DGGML_CPU_ALL_VARIANTS=OFF
-DGGML_BACKEND_DL=OFF
-DGGML_CUDA=OFF
-DGGML_METAL=OFF
-DGGML_VULKAN=OFF
-DGGML_BLAS=OFF
# x86-64-v3 exactly.
-DGGML_SSE42=ON
-DGGML_AVX=ON
-DGGML_AVX2=ON
-DGGML_BMI2=ON
-DGGML_FMA=ON
-DGGML_F16C=ON
-DGGML_AVX_VNNI=OFF
-DGGML_AVX512=OFF
-DGGML_AVX512_VBMI=OFF
-DGGML_AVX512_VNNI=OFF
-DGGML_AVX512_BF16=OFF
-DGGML_AMX_TILE=OFF
-DGGML_AMX_INT8=OFF
-DGGML_AMX_BF16=OFF
# The compiler may not fuse a*b+c into one FMA where the source does not ask for it (GCC's
# default in GNU C mode): whether it does depends on the compiler version, and each fused
# operation rounds differently.  ggml's own intrinsics keep their FMAs.  No -ffast-math.
-DCMAKE_C_FLAGS=-ffp-contract=off
-DCMAKE_CXX_FLAGS=-ffp-contract=off
