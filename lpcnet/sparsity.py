"""Block sparsity and int8 snapping of GRU weight matrices, in NumPy (docs/training.md, Sparsification).

The ground floor of training-time sparsification: no TensorFlow here. The Keras callbacks
that apply these masks during ``fit`` are :class:`lpcnet.callbacks.Sparsify` and
:class:`lpcnet.callbacks.SparsifyGRUB`; the export packs the same 4x8 blocks
(docs/weights-format.md).

Matrices are in the orientation Keras stores a GRU kernel: (inputs, outputs), gates
(z, r, h) side by side as three column blocks of ``units`` columns each.
"""

from __future__ import annotations

import numpy as np

from lpcnet.formats import INT8_WEIGHT_SCALE

#: Block shape: 4 rows (inputs) x 8 columns (outputs) of the (input, output) matrix.
BLOCK = (4, 8)


def split_gates(w: np.ndarray, units: int) -> list:
    """The (z, r, h) column blocks ``w[:, g*units:(g+1)*units]`` of a GRU weight, as views."""
    return [w[:, g * units:(g + 1) * units] for g in range(3)]


def block_scores(a: np.ndarray, block=BLOCK) -> np.ndarray:
    """Sum of squares of each (4 x 8) block of an (inputs, outputs) matrix -> (rows/4, cols/8)."""
    r, c = block
    rows, cols = a.shape
    return np.square(a.astype(np.float64)).reshape(rows // r, r, cols // c, c).sum(axis=(1, 3))


def block_mask(a: np.ndarray, density: float, keep_diagonal: bool, block=BLOCK) -> np.ndarray:
    """0/1 mask (shape and dtype of ``a``) keeping the strongest blocks of ``a``.

    Blocks are 4 consecutive rows (inputs) by 8 consecutive columns (outputs) of the
    matrix as stored, the orientation the export packs. With ``keep_diagonal`` the
    diagonal is excluded from the scores and always kept.
    ``thresh = sorted(scores)[round(nblocks * (1 - density))]``; blocks scoring
    ``>= thresh`` are kept, so ``density = 1`` keeps everything.
    """
    r, c = block
    a = np.asarray(a)
    if keep_diagonal:
        a = a * (1.0 - np.eye(a.shape[0], a.shape[1], dtype=a.dtype))
    scores = block_scores(a, block)
    k = int(round(scores.size * (1.0 - density)))
    thresh = np.inf if k >= scores.size else np.sort(scores, axis=None)[k]
    keep = (scores >= thresh).astype(a.dtype)
    mask = np.repeat(np.repeat(keep, r, axis=0), c, axis=1)
    if keep_diagonal:
        mask = np.maximum(mask, np.eye(a.shape[0], a.shape[1], dtype=a.dtype))
    return mask


def block_density(a: np.ndarray, exclude_diagonal: bool, block=BLOCK) -> float:
    """Fraction of (4 x 8) blocks of ``a`` holding any non-zero weight."""
    a = np.asarray(a)
    if exclude_diagonal:
        a = a * (1.0 - np.eye(a.shape[0], a.shape[1], dtype=a.dtype))
    return float(np.mean(block_scores(a, block) > 0))


def quantize_weights(w: np.ndarray, threshold: float) -> np.ndarray:
    """Snap weights within ``threshold`` (in units of 1/128) of a multiple of 1/128 onto it."""
    q = np.round(INT8_WEIGHT_SCALE * w)
    return np.where(np.abs(INT8_WEIGHT_SCALE * w - q) <= threshold, q / INT8_WEIGHT_SCALE,
                    w).astype(w.dtype)


def schedule_density(t: int, t_start: int, t_end: int, target: float, quantize: bool) -> float:
    """Density at batch ``t``: cubic ramp ``1 - (1 - target)(1 - r^3)`` from 1 down to ``target``.

    ``r = 1 - (t - t_start) / (t_end - t_start)``; from ``t_end`` on (and in quantise
    mode) it is ``target``.
    """
    if t < t_end and not quantize:
        r = 1.0 - (t - t_start) / (t_end - t_start)
        return 1.0 - (1.0 - target) * (1.0 - r ** 3)
    return float(target)


def sparsify_gates(w: np.ndarray, units: int, densities, *, keep_diagonal: bool,
                   rows: int | None = None) -> np.ndarray:
    """Block-prune each gate of a GRU weight to its density; returns a pruned copy.

    Args:
        w: (inputs, 3 * units) kernel or recurrent kernel.
        units: GRU units (columns per gate).
        densities: (z, r, h) densities in [0, 1]; a gate at density 1 is left as it is.
        keep_diagonal: keep each gate's diagonal (square recurrent kernels).
        rows: prune only rows ``0 .. rows - 1`` (GRU B: the rows fed by GRU A).
    """
    w = np.array(w, copy=True)
    top = w if rows is None else w[:rows]
    for gate, d in zip(split_gates(top, units), densities):
        if d < 1.0:
            gate *= block_mask(gate, d, keep_diagonal=keep_diagonal)
    return w
