"""Weight export: checkpoint -> versioned binary blob for the native synthesiser.

``lpcnet export CHECKPOINT OUT.bin [--int8]`` reads a kit checkpoint (``.keras``)
or a seed-style ``.h5`` and writes the blob documented in docs/weights-format.md:
a fixed header (magic, version, flags, model sizes), a table of named tensors, the
64-byte aligned tensor data and a CRC-32 trailer. It precomputes what the C
decoder needs per sample: the embedding x GRU-A input-kernel tables,
the conditioning parts of both GRU input kernels, GRU A's recurrent matrix as
4x8 blocks with the three gate diagonals stored apart, and (``--int8``) int8
copies of the block matrices with the "subias" compensation of the unsigned
input trick.

Paired ``dump_*`` / ``load_*`` functions per layer type are inverse of each
other (tested by round trip in tests/test_export.py).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lpcnet.errors import FormatError, LpcnetError
from lpcnet.formats import INT8_WEIGHT_SCALE

MAGIC = b"LPCNWGT\0"
#: Version written. Version 2 added the flag FLAG_END2END; version-1 blobs (same layout,
#: flags INT8 only) are still read.
VERSION = 2
#: Flag bits each readable version may set.
VERSION_FLAGS = {1: 1, 2: 1 | 2}
ALIGN = 64
NAME_LEN = 32
MAX_DIMS = 4
#: dtype code in the blob <-> NumPy dtype
DTYPES = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i4")}
_CODES = {v: k for k, v in DTYPES.items()}
#: header: magic, version, flags, 8 sizes, tensor count
_HEADER = struct.Struct("<8sII8II")
#: tensor table entry: name, dtype, ndim, dims[4], offset, nbytes
_ENTRY = struct.Struct(f"<{NAME_LEN}sII{MAX_DIMS}IQQ")
SIZE_KEYS = ("gru_a", "gru_b", "cond_size", "nb_features", "embed_size", "pitch_embed",
             "frame_size", "pcm_levels")
FLAG_INT8 = 1
#: The end-to-end model (docs/model.md): the engine derives each frame's LPC from the first
#: 16 conditioning values (reflection coefficients) instead of reading features 20..35.
FLAG_END2END = 2
#: Conditioning values the end-to-end model turns into its 16 LPCs.
END2END_RC = 16
BLOCK_ROWS, BLOCK_COLS = 4, 8


@dataclass
class WeightBlob:
    """In-memory form of the blob: sizes, flags and named tensors."""

    sizes: dict
    tensors: dict
    flags: int = 0

    @property
    def has_int8(self) -> bool:
        return bool(self.flags & FLAG_INT8)

    @property
    def end2end(self) -> bool:
        """The end-to-end model: LPC from the conditioning (:data:`FLAG_END2END`)."""
        return bool(self.flags & FLAG_END2END)


# --- blob container ---------------------------------------------------------------
def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def blob_to_bytes(blob: WeightBlob) -> bytes:
    """Serialise a WeightBlob (little-endian, 64-byte aligned tensors, CRC-32 trailer)."""
    names = list(blob.tensors)
    header = _HEADER.pack(MAGIC, VERSION, blob.flags, *[int(blob.sizes[k]) for k in SIZE_KEYS],
                          len(names))
    offset = _align(len(header) + _ENTRY.size * len(names))
    table, chunks = [], []
    for name in names:
        a = np.asarray(blob.tensors[name])
        dt = np.dtype(a.dtype).newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
        if dt not in _CODES:
            raise LpcnetError(f"tensor {name}: unsupported dtype {a.dtype}")
        if a.ndim > MAX_DIMS or len(name.encode()) >= NAME_LEN:
            raise LpcnetError(f"tensor {name}: too many dims or name too long")
        data = np.ascontiguousarray(a, dtype=dt).tobytes()
        dims = list(a.shape) + [0] * (MAX_DIMS - a.ndim)
        table.append(_ENTRY.pack(name.encode(), _CODES[dt], a.ndim, *dims, offset, len(data)))
        chunks.append((offset, data))
        offset = _align(offset + len(data))
    out = bytearray(offset)
    head = header + b"".join(table)
    out[:len(head)] = head
    for off, data in chunks:
        out[off:off + len(data)] = data
    out += struct.pack("<I", zlib.crc32(out) & 0xFFFFFFFF)
    return bytes(out)


def blob_from_bytes(raw: bytes, name="weights") -> WeightBlob:
    """Parse and validate a blob; FormatError (one line) on any inconsistency."""
    raw = bytes(raw)
    if len(raw) < _HEADER.size + 4:
        raise FormatError(f"{name}: {len(raw)} bytes, too short for an LPCNet weight blob")
    magic, version, flags, *rest = _HEADER.unpack_from(raw, 0)
    if magic != MAGIC:
        raise FormatError(f"{name}: not an LPCNet weight blob (bad magic; use `lpcnet export`)")
    if version not in VERSION_FLAGS:
        raise FormatError(f"{name}: weight blob version {version}, this kit reads versions "
                          f"{', '.join(map(str, VERSION_FLAGS))}")
    (crc,) = struct.unpack_from("<I", raw, len(raw) - 4)
    if zlib.crc32(raw[:-4]) & 0xFFFFFFFF != crc:
        raise FormatError(f"{name}: weight blob is truncated or corrupt (CRC mismatch)")
    if flags & ~VERSION_FLAGS[version]:
        raise FormatError(f"{name}: weight blob version {version} with unknown flags {flags:#x}")
    sizes = dict(zip(SIZE_KEYS, rest[:len(SIZE_KEYS)]))
    count = rest[len(SIZE_KEYS)]
    body = len(raw) - 4
    if _HEADER.size + count * _ENTRY.size > body:
        raise FormatError(f"{name}: tensor table runs past the end of the blob")
    tensors = {}
    for i in range(count):
        tname, code, ndim, *dims_off = _ENTRY.unpack_from(raw, _HEADER.size + i * _ENTRY.size)
        dims, offset, nbytes = dims_off[:MAX_DIMS], dims_off[MAX_DIMS], dims_off[MAX_DIMS + 1]
        tname = tname.rstrip(b"\0").decode("ascii", "replace")
        if code not in DTYPES or ndim > MAX_DIMS:
            raise FormatError(f"{name}: tensor {tname}: bad dtype code {code} or ndim {ndim}")
        shape = tuple(dims[:ndim])
        dt = DTYPES[code]
        if int(np.prod(shape)) * dt.itemsize != nbytes or offset + nbytes > body or offset % ALIGN:
            raise FormatError(f"{name}: tensor {tname}: size/offset inconsistent with the blob")
        tensors[tname] = np.frombuffer(raw, dtype=dt, count=int(np.prod(shape)),
                                       offset=offset).reshape(shape)
        if dt.kind == "f" and not np.isfinite(tensors[tname]).all():
            raise FormatError(f"{name}: tensor {tname} holds NaN or Inf weights (exported from a "
                              f"diverged model?); refusing to use it")
    return WeightBlob(sizes, tensors, flags)


def write_blob(path, blob: WeightBlob) -> Path:
    """Write a blob atomically (no partial file on failure)."""
    from lpcnet.formats import atomic_output

    with atomic_output(path) as f:
        f.write(blob_to_bytes(blob))
    return Path(path)


#: The weight files the kit reads, told apart by their first bytes, not their names
#: (docs/synthesis.md): what a refusal says was expected.
CHECKPOINT_KINDS = {"blob": "a weight blob from `lpcnet export` (starts with LPCNWGT)",
                    "keras": "a Keras checkpoint (.keras zip archive)",
                    "h5": "seed-style weights (.h5, an HDF5 file)"}


def checkpoint_kind(path) -> str | None:
    """``"blob"``, ``"keras"`` or ``"h5"`` by the file's content; None for none of them."""
    import zipfile

    import h5py

    with open(path, "rb") as f:
        if f.read(len(MAGIC)) == MAGIC:
            return "blob"
    if zipfile.is_zipfile(path):
        return "keras"
    return "h5" if h5py.is_hdf5(str(path)) else None


def check_checkpoint_kind(path, accepted=("keras", "h5"), user: str = "lpcnet export") -> str | None:
    """The kind of the weight file ``path`` (None when it does not exist: its reader says so).

    Refuses in one line, naming the file, a blob where ``user`` needs a checkpoint, and a file
    that is none of the ``accepted`` kinds (zeroed, text), saying what was expected."""
    path = Path(path)
    if not path.is_file():
        return None
    kind = checkpoint_kind(path)
    if kind == "blob" and "blob" not in accepted:
        raise LpcnetError(f"{path}: is an exported weight blob; {user} needs the .keras or .h5 checkpoint")
    if kind is None:
        what = [CHECKPOINT_KINDS[k] for k in accepted]
        raise LpcnetError(f"{path}: expected {', '.join(what[:-1])} or {what[-1]}; this file is none "
                          f"of them (its first bytes are not those of any)")
    return kind


def read_blob(path) -> WeightBlob:
    """Read and validate a blob file."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: weight blob not found")
    return blob_from_bytes(path.read_bytes(), str(path))


# --- paired dump / load per layer type ----------------------------------------------
def dump_dense(prefix: str, kernel, bias) -> dict:
    """Dense (in, out) kernel + bias -> tensors ``prefix_w`` (in, out), ``prefix_b``."""
    return {f"{prefix}_w": np.asarray(kernel, np.float32), f"{prefix}_b": np.asarray(bias, np.float32)}


def load_dense(tensors: dict, prefix: str):
    """Inverse of :func:`dump_dense` -> (kernel, bias)."""
    return tensors[f"{prefix}_w"], tensors[f"{prefix}_b"]


def dump_conv1d(prefix: str, kernel, bias) -> dict:
    """Conv1D kernel (k, in, out) -> ``prefix_w`` (k*in, out): input = [x_{t-k+1}, ..., x_t]."""
    kernel = np.asarray(kernel, np.float32)
    k, n_in, n_out = kernel.shape
    return dump_dense(prefix, kernel.reshape(k * n_in, n_out), bias) | {
        f"{prefix}_shape": np.array([k, n_in, n_out], np.int32)}


def load_conv1d(tensors: dict, prefix: str):
    """Inverse of :func:`dump_conv1d` -> (kernel (k, in, out), bias)."""
    k, n_in, n_out = (int(v) for v in tensors[f"{prefix}_shape"])
    w, b = load_dense(tensors, prefix)
    return w.reshape(k, n_in, n_out), b


def dump_embedding(prefix: str, table) -> dict:
    """Embedding table (rows, dim) -> ``prefix`` tensor."""
    return {prefix: np.asarray(table, np.float32)}


def load_embedding(tensors: dict, prefix: str):
    """Inverse of :func:`dump_embedding`."""
    return tensors[prefix]


def pack_blocks(w, keep_diagonal_out: bool):
    """(in, out) matrix -> 4x8 block-sparse form (docs/weights-format.md).

    For each group of 8 output columns: ``idx`` holds the number of non-zero
    4-row blocks, then the first row of each. ``blocks`` (nblocks, 4, 8) holds
    the float blocks row-major (input row, output column). With
    ``keep_diagonal_out`` the square matrix's diagonal is removed first (stored
    apart by the caller). Returns (idx int32, blocks float32).
    """
    w = np.array(w, dtype=np.float32)
    if keep_diagonal_out:
        w[np.arange(w.shape[0]), np.arange(w.shape[0])] = 0.0
    n_in, n_out = w.shape
    if n_in % BLOCK_ROWS or n_out % BLOCK_COLS:
        raise LpcnetError(f"matrix {w.shape} is not a multiple of 4x8 blocks")
    idx, blocks = [], []
    for g in range(n_out // BLOCK_COLS):
        cols = w[:, g * BLOCK_COLS:(g + 1) * BLOCK_COLS]
        rows = [r for r in range(0, n_in, BLOCK_ROWS) if np.any(cols[r:r + BLOCK_ROWS])]
        idx.append(len(rows))
        for r in rows:
            idx.append(r)
            blocks.append(cols[r:r + BLOCK_ROWS])
    blocks = np.array(blocks, np.float32).reshape(-1, BLOCK_ROWS, BLOCK_COLS)
    return np.array(idx, np.int32), blocks


def unpack_blocks(idx, blocks, n_in: int, n_out: int) -> np.ndarray:
    """Inverse of :func:`pack_blocks` (diagonal not restored) -> dense (in, out)."""
    w = np.zeros((n_in, n_out), np.float32)
    pos, b = 0, 0
    for g in range(n_out // BLOCK_COLS):
        count = int(idx[pos]); pos += 1
        for _ in range(count):
            r = int(idx[pos]); pos += 1
            w[r:r + BLOCK_ROWS, g * BLOCK_COLS:(g + 1) * BLOCK_COLS] = blocks[b]; b += 1
    return w


def quantize_blocks(blocks):
    """Float blocks (n, 4, 8) -> int8 q = clip(round(128 w)) in the dot-product layout (n, 8, 4).

    Each block is stored output-major (for each of the 8 outputs, its 4
    consecutive inputs) so that one 32-bit lane of a u8 x s8 dot product holds
    one output's 4 products.
    """
    q = np.clip(np.round(INT8_WEIGHT_SCALE * np.asarray(blocks, np.float64)), -128, 127).astype(np.int8)
    return np.ascontiguousarray(q.transpose(0, 2, 1))


def dump_gru(prefix: str, kernel, recurrent_kernel, bias, *, input_rows: int | None = None,
             sparse_recurrent: bool = False, int8: bool = False) -> dict:
    """A reset_after GRU (docs/model.md) -> tensors (docs/weights-format.md).

    ``input_rows``: when given, the first ``input_rows`` rows of the input kernel
    (the sample-rate input) are packed as 4x8 blocks (``prefix_in_idx``,
    ``prefix_in_w``) and the remaining rows (the conditioning) are stored dense as
    ``prefix_cond_w`` with the input bias ``prefix_cond_b``. ``sparse_recurrent``:
    the recurrent kernel is packed in blocks without its gate diagonals
    (``prefix_diag`` (3, N)), else stored dense as ``prefix_rec_w``.
    ``prefix_rbias`` is the recurrent bias. ``int8`` adds ``*_wq`` int8 blocks
    and the ``prefix_subias`` / ``prefix_in_subias`` compensated biases.
    """
    kernel = np.asarray(kernel, np.float32)
    rk = np.asarray(recurrent_kernel, np.float32)
    bias = np.asarray(bias, np.float32).reshape(2, -1)
    n = rk.shape[0]
    out = {f"{prefix}_rbias": bias[1]}
    rows = 0 if input_rows is None else input_rows
    out[f"{prefix}_cond_w"] = kernel[rows:]
    out[f"{prefix}_cond_b"] = bias[0]
    if input_rows is not None and input_rows > 0:
        idx, blocks = pack_blocks(kernel[:rows], False)
        out[f"{prefix}_in_idx"], out[f"{prefix}_in_w"] = idx, blocks
        if int8:
            q = quantize_blocks(blocks)
            out[f"{prefix}_in_wq"] = q
            out[f"{prefix}_in_subias"] = bias[0] - _qcolsum(idx, q, 3 * n)
    if sparse_recurrent:
        diag = np.stack([np.diag(rk[:, g * n:(g + 1) * n]) for g in range(3)]).astype(np.float32)
        full = rk.copy()
        for g in range(3):
            full[np.arange(n), g * n + np.arange(n)] = 0.0
        idx, blocks = pack_blocks(full, False)
        out[f"{prefix}_diag"], out[f"{prefix}_rec_idx"], out[f"{prefix}_rec_w"] = diag, idx, blocks
        if int8:
            q = quantize_blocks(blocks)
            out[f"{prefix}_rec_wq"] = q
            out[f"{prefix}_subias"] = bias[1] - _qcolsum(idx, q, 3 * n)
    else:
        out[f"{prefix}_rec_w"] = rk
    return out


def _qcolsum(idx, q, n_out: int) -> np.ndarray:
    """Per output column: sum of q/128 over its stored blocks."""
    sums = np.zeros(n_out, np.float64)
    pos, b = 0, 0
    for g in range(n_out // BLOCK_COLS):
        c = int(idx[pos]); pos += 1 + c
        for _ in range(c):
            sums[g * BLOCK_COLS:(g + 1) * BLOCK_COLS] += q[b].astype(np.float64).sum(axis=1)
            b += 1
    return (sums / INT8_WEIGHT_SCALE).astype(np.float32)


def load_gru(tensors: dict, prefix: str, n: int, input_rows: int | None = None):
    """Inverse of :func:`dump_gru` (float part) -> (kernel, recurrent_kernel, bias (2, 3N))."""
    cond = tensors[f"{prefix}_cond_w"]
    if f"{prefix}_in_idx" in tensors:
        top = unpack_blocks(tensors[f"{prefix}_in_idx"], tensors[f"{prefix}_in_w"], input_rows, 3 * n)
        kernel = np.concatenate([top, cond], axis=0)
    else:
        kernel = cond
    if f"{prefix}_diag" in tensors:
        rk = unpack_blocks(tensors[f"{prefix}_rec_idx"], tensors[f"{prefix}_rec_w"], n, 3 * n)
        for g in range(3):
            rk[np.arange(n), g * n + np.arange(n)] = tensors[f"{prefix}_diag"][g]
    else:
        rk = tensors[f"{prefix}_rec_w"]
    bias = np.stack([tensors[f"{prefix}_cond_b"], tensors[f"{prefix}_rbias"]])
    return kernel, rk, bias


def dump_mdense(prefix: str, kernel, bias, factor) -> dict:
    """MDense kernel (units, in, channels) -> ``prefix_w`` (units, channels, in), bias, factor."""
    kernel = np.asarray(kernel, np.float32)
    return {f"{prefix}_w": np.ascontiguousarray(kernel.transpose(0, 2, 1)),
            f"{prefix}_b": np.asarray(bias, np.float32), f"{prefix}_f": np.asarray(factor, np.float32)}


def load_mdense(tensors: dict, prefix: str):
    """Inverse of :func:`dump_mdense` -> (kernel (units, in, channels), bias, factor)."""
    return (tensors[f"{prefix}_w"].transpose(0, 2, 1), tensors[f"{prefix}_b"], tensors[f"{prefix}_f"])


# --- whole model ------------------------------------------------------------------
def blob_from_weights(weights: dict, cfg, int8: bool = False) -> WeightBlob:
    """``{layer: {var: array}}`` (lpcnet.model.read_checkpoint_weights) -> WeightBlob.

    Weights with an ``rc2lpc`` entry (the end-to-end model's reflection-to-LPC layer, which
    has no variables) give a blob with :data:`FLAG_END2END`; the tensors are the same.
    """
    if cfg.nb_features != 20 or cfg.frame_size != 160 or cfg.pcm_levels != 256:
        raise LpcnetError("the native engine supports 20 features, 160-sample frames and 256 levels")
    end2end = "rc2lpc" in weights
    if end2end and cfg.cond_size < END2END_RC:
        raise LpcnetError(f"an end-to-end model needs a conditioning of at least {END2END_RC} "
                          f"values (its reflection coefficients), got {cfg.cond_size}")
    w = weights
    e = cfg.embed_size
    t = {}
    t |= dump_embedding("embed_pitch", w["embed_pitch"]["embeddings"])
    t |= dump_conv1d("conv1", w["feature_conv1"]["kernel"], w["feature_conv1"]["bias"])
    t |= dump_conv1d("conv2", w["feature_conv2"]["kernel"], w["feature_conv2"]["bias"])
    t |= dump_dense("dense1", w["feature_dense1"]["kernel"], w["feature_dense1"]["bias"])
    t |= dump_dense("dense2", w["feature_dense2"]["kernel"], w["feature_dense2"]["bias"])
    ka = np.asarray(w["gru_a"]["kernel"], np.float32)
    emb = np.asarray(w["embed_sig"]["embeddings"], np.float64)
    # Per-sample input of GRU A = three table rows + the per-frame conditioning product. Summed in
    # float64 and rounded once: a float32 product's last bits depend on the BLAS kernel of the CPU,
    # so the same weights exported on two machines gave different blobs.
    t["gru_a_embed"] = np.stack([emb @ ka[j * e:(j + 1) * e].astype(np.float64)
                                 for j in range(3)]).astype(np.float32)
    t |= dump_gru("gru_a", ka[3 * e:], w["gru_a"]["recurrent_kernel"], w["gru_a"]["bias"],
                  sparse_recurrent=True, int8=int8)
    t |= dump_gru("gru_b", w["gru_b"]["kernel"], w["gru_b"]["recurrent_kernel"], w["gru_b"]["bias"],
                  input_rows=cfg.gru_a, int8=int8)
    t |= dump_mdense("md", w["dual_fc"]["kernel"], w["dual_fc"]["bias"], w["dual_fc"]["factor"])
    sizes = {k: getattr(cfg, k) for k in SIZE_KEYS}
    return WeightBlob(sizes, t, (FLAG_INT8 if int8 else 0) | (FLAG_END2END if end2end else 0))


def export_checkpoint(checkpoint, output, int8: bool = False, h5=None) -> WeightBlob:
    """Read a checkpoint (.keras or seed .h5) and write the weight blob atomically; with ``h5``
    also its weights as a seed-style .h5 (to share, finetune or quantise from; docs/training.md).
    ``h5`` must end in ``.h5``: a path of another kind (features, a blob, a checkpoint) is
    refused before any work rather than replaced."""
    from lpcnet.formats import check_outputs
    from lpcnet.model import config_from_weights, read_checkpoint_weights, write_seed_h5

    if h5 is not None and not str(h5).lower().endswith(".h5"):
        raise LpcnetError(f"--h5 {h5}: expected the path of a seed-style weights file ending in .h5; "
                          f"refusing to write another kind of file")
    outputs = {f"output {output}": output} | ({f"--h5 {h5}": h5} if h5 is not None else {})
    check_outputs({f"checkpoint {checkpoint}": checkpoint}, outputs)
    check_checkpoint_kind(checkpoint)                     # a blob, a zeroed or text file: one line
    weights = read_checkpoint_weights(checkpoint)         # refuses NaN/Inf weights
    cfg = config_from_weights(weights)
    blob = blob_from_weights(weights, cfg, int8=int8)
    if h5 is not None:
        write_seed_h5(weights, h5)
    write_blob(output, blob)
    return blob


def add_arguments(p) -> None:
    p.add_argument("checkpoint", help="kit checkpoint (.keras) or seed-style weights (.h5)")
    p.add_argument("output", help="weight blob to write (e.g. lpcnet_weights.bin)")
    p.add_argument("--int8", action="store_true",
                   help="also store int8 copies of the GRU block matrices (for --int8 synthesis)")
    p.add_argument("--h5", metavar="PATH",
                   help="also write the weights as a seed-style .h5 (what --finetune/--quantize take); "
                        "PATH must end in .h5")


def run(args) -> int:
    blob = export_checkpoint(args.checkpoint, args.output, int8=args.int8, h5=args.h5)
    if args.h5:
        print(f"wrote {args.h5}: seed-style weights")
    nbytes = Path(args.output).stat().st_size
    print(f"wrote {args.output}: {len(blob.tensors)} tensors, {nbytes} bytes, "
          f"GRU A {blob.sizes['gru_a']} / GRU B {blob.sizes['gru_b']}"
          f"{', int8' if blob.has_int8 else ''}{', end-to-end' if blob.end2end else ''}")
    return 0


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main("lpcnet.export", "python -m lpcnet.export", argv)


if __name__ == "__main__":
    raise SystemExit(main())
