#!/usr/bin/env bash
# Train LPCNet data-parallel with Horovod (gloo) on NP processes, mixed precision: run_scripts/train_hvd.sh amp.
# Usage: run_scripts/train_hvd_amp.sh [NP] [extra `lpcnet train` flags...]   (paths and NP from env.sh)
exec "$(dirname "$0")/train_hvd.sh" amp "$@"
