/* LPCNet research kit: native feature extraction (public API), and the constants and SIMD
 * levels shared by the three native libraries (lpcnet_synth.h and lpcnet_gru.h include it).
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause.
 *
 * One encoder state processes 160-sample frames of 16 kHz speech and yields the
 * 36-float feature vector of docs/formats.md per frame (and, in training mode, the 160
 * four-byte data.u8 records of docs/features.md). Plain C99 + libm; no allocation
 * inside the per-frame calls. */
#ifndef LPCNET_H
#define LPCNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LPCNET_SAMPLE_RATE 16000
#define LPCNET_FRAME_SIZE 160
#define LPCNET_NB_BANDS 18
#define LPCNET_LPC_ORDER 16
#define LPCNET_NB_FEATURES 20
#define LPCNET_NB_TOTAL_FEATURES 36
#define LPCNET_PITCH_MIN_PERIOD 32
#define LPCNET_PITCH_MAX_PERIOD 256
#define LPCNET_DATA_CHANNELS 4
/* Feature indices (docs/formats.md): 0..17 cepstrum, then these. */
#define LPCNET_PITCH_INDEX 18
#define LPCNET_PITCH_CORR_INDEX 19
#define LPCNET_LPC_INDEX 20
/** Frames between two draws of the training augmentation (docs/features.md, Modes). */
#define LPCNET_GAIN_CHANGE_FRAMES 2822
/** Pre-emphasis of the features' signal chain, undone by the synthesiser's de-emphasis. */
#define LPCNET_PREEMPHASIS 0.85
/** mu-law codes (docs/formats.md): 256 levels, mu = 255, full scale 32768. */
#define LPCNET_ULAW_LEVELS 256
#define LPCNET_ULAW_FULL_SCALE 32768.0

/** SIMD levels, one scale for the three native libraries (docs/native.md). Each level
 * includes the ones below it; a library runs the best kernel table it has at or below
 * the level in use, and its *_simd_level() reports that table's level. 1 is unused. */
enum {
  LPCNET_SIMD_AUTO = -1,       /**< (when forcing) the best the CPU supports */
  LPCNET_SIMD_SCALAR = 0,      /**< portable C, the reference of every kernel */
  LPCNET_SIMD_AVX2 = 2,        /**< AVX2 + FMA */
  LPCNET_SIMD_AVX512 = 3,      /**< AVX-512 F, VL, BW, DQ and VNNI */
  LPCNET_SIMD_AVX512_BF16 = 4  /**< the above + AVX512-BF16 */
};

/** Feature-extraction modes. */
#define LPCNET_MODE_TEST 0  /**< features only, DC block + pre-emphasis + dither */
#define LPCNET_MODE_TRAIN 1 /**< augmentation + data.u8 records */
/** As LPCNET_MODE_TRAIN (same features, bytes 0-2 and random draws) but byte 3 of each data.u8
 * record is the mu-law of the clean signal s[n] instead of the target excitation: training
 * data of the end-to-end model (docs/features.md, Modes). */
#define LPCNET_MODE_TRAIN_END2END 2

/** Opaque encoder state. */
typedef struct LPCNetFeatState LPCNetFeatState;

/** @return size in bytes of an LPCNetFeatState (for caller-owned memory). */
size_t lpcnet_feat_get_size(void);

/** Initialise caller-owned state memory.
 * @param st   memory of lpcnet_feat_get_size() bytes
 * @param mode LPCNET_MODE_TEST, LPCNET_MODE_TRAIN or LPCNET_MODE_TRAIN_END2END
 * @param seed seed of every random draw (dither, augmentation, excitation noise)
 * @return 0 on success, -1 on a bad mode */
int lpcnet_feat_init(LPCNetFeatState *st, int mode, uint64_t seed);

/** Allocate and initialise a state; NULL on failure. */
LPCNetFeatState *lpcnet_feat_create(int mode, uint64_t seed);

/** Free a state made by lpcnet_feat_create(). */
void lpcnet_feat_destroy(LPCNetFeatState *st);

/** Process one 160-sample frame (docs/features.md).
 *
 * The caller realises the one-frame read lag (docs/features.md, Timing and alignment):
 * the first frame passed should be all zeros (see lpcnet_feat_process()).
 * @param st       state
 * @param pcm      160 int16 input samples
 * @param features out: 36 floats (docs/formats.md)
 * @param data     out: 640 bytes (160 x 4 mu-law codes) in training mode; may be
 *                 NULL in test mode */
void lpcnet_feat_frame(LPCNetFeatState *st, const int16_t *pcm, float *features, uint8_t *data);

/** Process a stream of frames with the one-frame read lag.
 *
 * Feeds a zero frame first (on the state's first call), then input frames; the
 * last frame passed is kept for the next call. With nb_frames input frames it
 * writes nb_frames feature records. Call repeatedly on consecutive chunks.
 * @param pcm       nb_frames*160 int16 samples
 * @param features  out: nb_frames*36 floats
 * @param data      out: nb_frames*640 bytes in training mode, else NULL */
void lpcnet_feat_process(LPCNetFeatState *st, const int16_t *pcm, long nb_frames,
                         float *features, uint8_t *data);

/** @return the LPCNET_SIMD_* level of the cross-correlation kernel in use (0, 2 or 3). */
int lpcnet_simd_level(void);

/** Force a LPCNET_SIMD_* level for states initialised afterwards (LPCNET_SIMD_AUTO = the
 * best; clamped to what the CPU supports). For tests. @return lpcnet_simd_level(). */
int lpcnet_set_simd_level(int level);

/** Exact mu-law (docs/formats.md): natural log, round half to even, clamp 0..255. */
int lpcnet_lin2ulaw(double x);

/** Self-test: number of float inputs where the table-driven mu-law used for
 * data.u8 differs from lpcnet_lin2ulaw() (expected 0). */
long lpcnet_ulaw_selftest(const float *x, long n);

/** Inverse mu-law (docs/formats.md). */
double lpcnet_ulaw2lin(int u);

#ifdef __cplusplus
}
#endif
#endif
