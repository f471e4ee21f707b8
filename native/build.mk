# Sources and compiler flags of every native build: included by native/Makefile and read by
# setup.py (which takes the `NAME = words` lines below as they are: keep them plain).
#
# -std=c99 and -ffp-contract=off: exact, reproducible float arithmetic (no contraction of a
# multiply and an add into an FMA, no fast-math), so every build (package, make, sanitizer
# builds at -O1) gives the same results (docs/native.md). No -march: SIMD kernels carry their
# own target attributes and are chosen at run time (src/simd.h).
BASE_CFLAGS = -std=c99 -D_DEFAULT_SOURCE -O3 -ffp-contract=off -Wall -Wextra -fPIC

# lpcnet/_lpcnet_features*.so, native/build/liblpcnet_features.so (docs/features.md)
FEATURES_SRC = src/enc.c src/freq.c src/fft.c src/xcorr.c src/simd.c
FEATURES_LIBS = -lm
# lpcnet/_lpcnet_synth*.so, native/build/liblpcnet_synth.so (docs/synthesis.md)
SYNTH_SRC = src/synth.c src/blob.c src/nnet.c src/nnet_avx2.c src/nnet_avx512.c src/freq.c src/fft.c src/simd.c
SYNTH_LIBS = -lm
# lpcnet/_lpcnet_gru*.so, native/build/liblpcnet_gru.so (lpcnet/fused_gru.py: training kernels)
GRU_SRC = src/gru_train.c src/gru_kernels.c src/train_head.c src/simd.c
GRU_LIBS = -lm -lpthread
