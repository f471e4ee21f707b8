#!/usr/bin/env bash
# Train LPCNet data-parallel with Horovod (gloo) on NP processes, FP32: run_scripts/train_hvd.sh fp32.
# Usage: run_scripts/train_hvd_fp32.sh [NP] [extra `lpcnet train` flags...]   (paths and NP from env.sh)
exec "$(dirname "$0")/train_hvd.sh" fp32 "$@"
