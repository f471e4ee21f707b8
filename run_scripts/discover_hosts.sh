#!/usr/bin/env bash
# Host discovery for elastic Horovod runs: prints the hosts that may run workers now, one
# "host:slots" per line. Horovod runs it every second; a host that disappears loses its workers,
# one that appears gets new ones (they receive the committed state). Sources, first found:
#   LPCNET_HOSTS_FILE   a file of "host:slots" lines (edit it while the run goes)
#   HOSTS               "node1:4,node2:4"
#   otherwise           localhost:MAX (LPCNET_ELASTIC_MAX_NP, set by the kit's launcher), else localhost:NP
# A cluster scheduler's own list (e.g. the nodes of a job) can replace this script:
# lpcnet launch --elastic --host-discovery-script YOURS.
set -euo pipefail
if [ -n "${LPCNET_HOSTS_FILE:-}" ]; then
  [ -f "$LPCNET_HOSTS_FILE" ] && grep -v '^\s*\(#\|$\)' "$LPCNET_HOSTS_FILE" || true
elif [ -n "${HOSTS:-}" ]; then
  tr ',' '\n' <<< "$HOSTS"
else
  echo "localhost:${LPCNET_ELASTIC_MAX_NP:-${NP:-2}}"
fi
