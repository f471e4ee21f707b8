/* The one SIMD layer of the native libraries: CPU detection and level resolution.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause.
 *
 * Levels are the LPCNET_SIMD_* values of include/lpcnet.h (docs/native.md). Each library
 * keeps kernel tables (structs of function pointers, one per level it implements, the
 * scalar one the reference) and picks the best table at or below simd_resolve(forced). */
#ifndef LPCNET_SIMD_H
#define LPCNET_SIMD_H

#include "../include/lpcnet.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define SIMD_X86 1
#endif

/** Highest LPCNET_SIMD_* level this CPU (and OS) supports. */
int simd_cpu_level(void);

/** The level to use when `requested` is forced: LPCNET_SIMD_AUTO (or any negative value)
 * and levels above the CPU's give simd_cpu_level(). */
int simd_resolve(int requested);

#endif
