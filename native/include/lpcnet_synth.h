/* LPCNet research kit: native synthesis engine (public API).
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause.
 *
 * A model is loaded once from a weight blob written by `lpcnet export`
 * (docs/weights-format.md) and shared read-only by any number of synthesis
 * states. A state turns one 36-float feature frame (docs/formats.md) into 160 int16
 * samples. The frame-rate network has centred 3-tap convolutions, so the
 * output lags the input by two frames: the first two calls of
 * lpcnet_synth_frame() return no samples and lpcnet_synth_flush() returns the
 * last two frames. Output sample t belongs to input frame t / 160 (no shift).
 * Nothing is allocated per frame or per sample. A blob of the end-to-end model (flag
 * END2END, docs/weights-format.md) makes each frame's LPC from its conditioning vector
 * instead of reading features 20..35. */
#ifndef LPCNET_SYNTH_H
#define LPCNET_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "lpcnet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LPCNET_SYNTH_FRAME_SIZE LPCNET_FRAME_SIZE
#define LPCNET_SYNTH_NB_TOTAL_FEATURES LPCNET_NB_TOTAL_FEATURES
/** Frames of lookahead of the frame-rate network (two centred 3-tap convs). */
#define LPCNET_SYNTH_DELAY_FRAMES 2

/* Option flags of lpcnet_synth_create(). */
#define LPCNET_SYNTH_INT8 1        /**< int8 GRU block matrices (blob exported with --int8) */
#define LPCNET_SYNTH_SHARPEN 2     /**< pitch-correlation sharpening of the bit probabilities */
#define LPCNET_SYNTH_LPC_CEPSTRUM 4 /**< LPC from the cepstrum (as the features do) instead of features 20..35;
                                      refused for an end-to-end model */
#define LPCNET_SYNTH_ARGMAX 8      /**< deterministic: each bit is 1 iff its probability > 0.5 */

/* Commands of lpcnet_synth_multi_step(), one per stream and step. */
#define LPCNET_SYNTH_IDLE 0 /**< the stream does nothing this step */
#define LPCNET_SYNTH_FEED 1 /**< the stream takes its next frame of 36 features */
#define LPCNET_SYNTH_END 2  /**< end of the stream: one of its LPCNET_SYNTH_DELAY_FRAMES padding steps */
/** Most streams of one LPCNetSynthMulti. */
#define LPCNET_SYNTH_MAX_STREAMS 64

/** Read-only network weights (opaque). */
typedef struct LPCNetSynthModel LPCNetSynthModel;
/** Synthesis state of one stream (opaque). */
typedef struct LPCNetSynthState LPCNetSynthState;
/** Several streams synthesised together (opaque). */
typedef struct LPCNetSynthMulti LPCNetSynthMulti;

/** Parse and validate a weight blob; the bytes are copied.
 * @param data   blob bytes
 * @param len    blob length in bytes
 * @param err    out: one-line reason on failure (may be NULL)
 * @param errlen size of err
 * @return the model, or NULL for a bad, truncated or unsupported blob */
LPCNetSynthModel *lpcnet_synth_model_load(const void *data, size_t len, char *err, size_t errlen);

/** Free a model (after every state using it is destroyed). */
void lpcnet_synth_model_free(LPCNetSynthModel *model);

/** Model sizes: out[0..4] = GRU A units, GRU B units, conditioning width, has int8 (0/1),
 * end-to-end model (0/1: LPC from the conditioning). */
void lpcnet_synth_model_sizes(const LPCNetSynthModel *model, int *out);

/** Create a synthesis state.
 * @param model weights (must outlive the state)
 * @param flags LPCNET_SYNTH_* options
 * @param seed  seed of the sampling random stream
 * @return the state, or NULL (out of memory, INT8 asked of a float-only blob, or
 *         LPC_CEPSTRUM asked of an end-to-end model) */
LPCNetSynthState *lpcnet_synth_create(const LPCNetSynthModel *model, int flags, uint64_t seed);

/** Destroy a state. */
void lpcnet_synth_destroy(LPCNetSynthState *st);

/** Feed one frame of 36 features.
 * @param out 160 samples written when the return value is 160
 * @return 0 during the first two calls (lookahead), else 160 */
int lpcnet_synth_frame(LPCNetSynthState *st, const float *features, int16_t *out);

/** Feed nframes frames (the same as nframes calls of lpcnet_synth_frame(), faster: the
 * frame-rate network runs on blocks of frames).
 * @param features nframes*36 floats
 * @param out      room for nframes*160 samples
 * @return samples written (160 per call past the first two), or -1 */
long lpcnet_synth_frames(LPCNetSynthState *st, const float *features, long nframes, int16_t *out);

/** End of stream: synthesise the (up to two) frames still held back.
 * @param out room for 320 samples
 * @return number of samples written (0, 160 or 320) */
int lpcnet_synth_flush(LPCNetSynthState *st, int16_t *out);

/** Whole utterance: nb_frames*160 samples aligned with the frames.
 * @param features nb_frames*36 floats
 * @param out      nb_frames*160 samples
 * @param probs    optional (NULL): out nb_frames*160*256 bit probabilities
 *                 (entry u = P(bit = 1) at tree node u, entry 0 unused), for tests
 * @param forced   optional (NULL): nb_frames*160 excitation codes used instead of
 *                 sampling (teacher forcing), for tests
 * @return samples written, or -1 if the state was already used */
long lpcnet_synth_run(LPCNetSynthState *st, const float *features, long nb_frames, int16_t *out,
                      float *probs, const uint8_t *forced);

/** For tests: from now on, every frame f the state synthesises (f = its first sample / 160)
 * writes its conditioning vector (dense2's output) to cond + f * width and the 16 LPCs its
 * samples use to lpc + f * 16. NULL stops it.
 * @param cond room for (frames) x conditioning width floats
 * @param lpc  room for (frames) x 16 floats */
void lpcnet_synth_trace(LPCNetSynthState *st, float *cond, float *lpc);

/** Create nstreams (1..LPCNET_SYNTH_MAX_STREAMS) streams synthesised together, all with the
 * same flags; each starts as lpcnet_synth_multi_start(ms, s, 0) leaves it.
 * @return NULL (out of memory, bad count, INT8 asked of a float-only blob, or LPC_CEPSTRUM
 *         asked of an end-to-end model) */
LPCNetSynthMulti *lpcnet_synth_multi_create(const LPCNetSynthModel *model, int flags, int nstreams);

/** Destroy the streams. */
void lpcnet_synth_multi_destroy(LPCNetSynthMulti *ms);

/** (Re)start stream `stream` as a fresh state seeded with `seed` (a new utterance).
 * @return 0, or -1 (bad stream index, out of memory) */
int lpcnet_synth_multi_start(LPCNetSynthMulti *ms, int stream, uint64_t seed);

/** nsteps steps; at each, stream s does what cmd[step*nstreams + s] says (LPCNET_SYNTH_*):
 * FEED takes the 36 features at features + (step*nstreams + s)*36, END is one of the
 * LPCNET_SYNTH_DELAY_FRAMES steps that end a stream (as lpcnet_synth_flush()). Stream s
 * writes nout[step*nstreams + s] samples (0 or 160) at out + (step*nstreams + s)*160; the
 * samples are those of a single state given the same frames.
 * @return samples written in all, or -1 (a bad command) */
long lpcnet_synth_multi_step(LPCNetSynthMulti *ms, int nsteps, const float *features,
                             const int8_t *cmd, int16_t *out, int16_t *nout);

/** @return the LPCNET_SIMD_* level of the kernels in use: 0, 2 or 3. */
int lpcnet_synth_simd_level(void);

/** Force a LPCNET_SIMD_* level for states created afterwards (LPCNET_SIMD_AUTO = the best);
 * clamped to what the CPU supports. @return the level now in use. */
int lpcnet_synth_set_simd_level(int level);

#ifdef __cplusplus
}
#endif
#endif
