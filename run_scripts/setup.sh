#!/usr/bin/env bash
# Set up the kit on a fresh Debian machine with Python 3.11; idempotent and fast when done.
# Usage: bash run_scripts/setup.sh        (called by `make demo` / `make test`)
#   1. Debian packages the kit needs (Asterisk G.722 speech prompts; chromium for the browser
#      test of notebook 05), via apt-get when missing
#   2. .venv with the exact pins of requirements.txt / requirements-lock.txt
#   3. Horovod 0.28.1 (TensorFlow + gloo, no MPI) with the kit's one patch (third_party/horovod/:
#      the background thread wakes on a new tensor instead of polling), built once into a wheel
#      cache, then reused
#   4. the kit itself, editable, with its native library
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
VENV="${LPCNET_VENV:-$ROOT/.venv}"
WHEEL_CACHE="${LPCNET_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lpcnet-kit/wheels}"
HOROVOD_VERSION=0.28.1
HOROVOD_PATCH="$ROOT/third_party/horovod/wake-on-enqueue.patch"
APT_PACKAGES=(asterisk-core-sounds-en-g722 make gcc g++ patch chromium)
STAMP="$VENV/.lpcnet-setup-stamp"
log() { printf '[setup] %s\n' "$*"; }

# Everything that changes what gets installed goes into the stamp.
stamp_value() {
  { cat requirements.txt requirements-lock.txt requirements-nodeps.txt pyproject.toml run_scripts/setup.sh \
        "$HOROVOD_PATCH"
    [ -f setup.py ] && cat setup.py
    [ -d native ] && find native -type f \( -name '*.c' -o -name '*.h' -o -name 'Makefile' \) -print0 \
      | sort -z | xargs -0 -r cat
    printf '%s\n' "${APT_PACKAGES[@]}"; } | sha256sum | cut -d' ' -f1
}

missing_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing_apt+=("$pkg")
done

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_value)" ] \
   && [ ${#missing_apt[@]} -eq 0 ]; then
  log "up to date ($VENV)"
  exit 0
fi
T0=$(date +%s)

if [ ${#missing_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log "apt-get install ${missing_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing_apt[@]}" >/dev/null
fi

if ! command -v "$PYTHON" >/dev/null; then
  echo "[setup] error: $PYTHON not found (the kit needs Python 3.11; set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade "pip==26.3" "setuptools==65.5.0" "wheel==0.48.0"
log "installing pinned requirements"
"${PIP[@]}" install -r requirements.txt -c requirements-lock.txt
"${PIP[@]}" install --no-deps -r requirements-nodeps.txt   # why --no-deps: see the file

# Horovod: building takes minutes, so build the wheel once and keep it in the cache, in a folder
# named after the patch (a changed patch builds anew; a stock Horovod wheel is never taken).
HOROVOD_ID="$(sha256sum "$HOROVOD_PATCH" | cut -c1-12)"
HOROVOD_WHEELS="$WHEEL_CACHE/horovod-$HOROVOD_VERSION-$HOROVOD_ID"
HOROVOD_MARK="$VENV/.horovod-patch-id"   # which patch the venv's Horovod was built with
if [ "$(cat "$HOROVOD_MARK" 2>/dev/null)" != "$HOROVOD_ID" ] \
   || ! "$VENV/bin/python" -c "import horovod, horovod.tensorflow.mpi_ops as m; assert horovod.__version__ == '$HOROVOD_VERSION'; assert m._basics.MPI_LIB_CTYPES.horovod_wake_on_enqueue_built() == 1" 2>/dev/null; then
  mkdir -p "$HOROVOD_WHEELS"
  if ! ls "$HOROVOD_WHEELS"/horovod-"$HOROVOD_VERSION"-*.whl >/dev/null 2>&1; then
    log "building Horovod $HOROVOD_VERSION (TensorFlow + gloo, no MPI, the kit's patch) into $HOROVOD_WHEELS; takes ~5 min"
    BUILD_LOG="$HOROVOD_WHEELS/horovod-build.log"
    SRC="$(mktemp -d)"
    if ! { "${PIP[@]}" download --no-deps --no-binary :all: -d "$SRC" "horovod==$HOROVOD_VERSION" \
           && tar xzf "$SRC/horovod-$HOROVOD_VERSION.tar.gz" -C "$SRC" \
           && patch -d "$SRC/horovod-$HOROVOD_VERSION" -p1 --forward <"$HOROVOD_PATCH" \
           && PATH="$VENV/bin:$PATH" HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
              HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS="-j$(nproc)" \
              "${PIP[@]}" wheel --no-deps --no-build-isolation --no-cache-dir -w "$HOROVOD_WHEELS" \
              "$SRC/horovod-$HOROVOD_VERSION"; } >"$BUILD_LOG" 2>&1; then
      tail -n 30 "$BUILD_LOG" >&2
      echo "[setup] error: Horovod build failed; full log in $BUILD_LOG" >&2
      rm -rf "$SRC"
      exit 1
    fi
    rm -rf "$SRC"
  fi
  log "installing Horovod from $HOROVOD_WHEELS"
  "${PIP[@]}" install --no-deps --no-index --force-reinstall --find-links "$HOROVOD_WHEELS" "horovod==$HOROVOD_VERSION"
  echo "$HOROVOD_ID" >"$HOROVOD_MARK"
fi

log "installing the kit (editable, native library built)"
"${PIP[@]}" install --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import lpcnet, horovod.tensorflow, tensorflow, keras; print('[setup] ok: TF', tensorflow.__version__, 'Keras', keras.__version__)" 2>/dev/null
stamp_value >"$STAMP"
log "done in $(( $(date +%s) - T0 )) s"
