# Paths and knobs of the kit; source it (run_scripts and the Makefile do).
# Every value can be overridden by exporting it before sourcing.
_LPCNET_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
export LPCNET_ROOT="${LPCNET_ROOT:-$_LPCNET_ROOT}"
# Where prepared training audio, features.f32 and data.u8 live.
export DATA_DIR="${DATA_DIR:-$LPCNET_ROOT/work/data}"
# Where checkpoints, TensorBoard logs, throughput JSON, wavs and plots go.
export OUTPUT_DIR="${OUTPUT_DIR:-$LPCNET_ROOT/work/output}"
export MODEL_DIR="${MODEL_DIR:-$OUTPUT_DIR/models}"
# Bundled speech slice (CMU ARCTIC) and the Debian Asterisk prompts used by the demo.
export LPCNET_SLICE_DIR="${LPCNET_SLICE_DIR:-$LPCNET_ROOT/data/slice}"
export LPCNET_ASTERISK_DIR="${LPCNET_ASTERISK_DIR:-/usr/share/asterisk/sounds}"
# Horovod processes on this host and threads per process (NP ranks x threads <= cores).
export NP="${NP:-2}"
export LPCNET_NUM_THREADS="${LPCNET_NUM_THREADS:-$(nproc)}"
export TF_NUM_INTRAOP_THREADS="${TF_NUM_INTRAOP_THREADS:-$LPCNET_NUM_THREADS}"
export TF_NUM_INTEROP_THREADS="${TF_NUM_INTEROP_THREADS:-1}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$LPCNET_NUM_THREADS}"
# Quieter TensorFlow; oneDNN stays on (it is what makes the CPU fast).
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# Small-data mode for notebooks (1 = tiny models, few steps; 0 = full runs).
export LPCNET_NB_SMALL="${LPCNET_NB_SMALL:-1}"
# Use the kit's venv (python, lpcnet, horovodrun) when it exists.
if [ -d "$LPCNET_ROOT/.venv/bin" ]; then
  case ":$PATH:" in *":$LPCNET_ROOT/.venv/bin:"*) ;; *) export PATH="$LPCNET_ROOT/.venv/bin:$PATH" ;; esac
fi
# Multi-node Horovod: HOSTS="h1:4,h2:4" or HOSTFILE=/path/hostfile (passed to horovodrun untouched).
export HOSTS="${HOSTS:-}"
export HOSTFILE="${HOSTFILE:-}"
# Counts must be whole numbers >= 1 (a junk value would reach TensorFlow or horovodrun).
for _lpcnet_var in NP LPCNET_NUM_THREADS TF_NUM_INTRAOP_THREADS TF_NUM_INTEROP_THREADS OMP_NUM_THREADS \
                   LPCNET_THREADS_PER_RANK; do
  [ "$_lpcnet_var" = LPCNET_THREADS_PER_RANK ] && [ -z "${LPCNET_THREADS_PER_RANK:-}" ] && continue   # optional
  if ! [[ ${!_lpcnet_var} =~ ^[1-9][0-9]*$ ]]; then
    echo "env.sh: $_lpcnet_var=${!_lpcnet_var}: expected a whole number >= 1" >&2
    unset _lpcnet_var
    return 2 2>/dev/null || exit 2
  fi
done
unset _lpcnet_var
