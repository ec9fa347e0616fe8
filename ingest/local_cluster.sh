#!/usr/bin/env bash
# Start a Dask scheduler plus N single-threaded worker processes on this host.
# Usage: ingest/local_cluster.sh [N_WORKERS] [PORT]; stop with: kill $(cat .dask-cluster.pids)
set -euo pipefail
n="${1:-2}"
port="${2:-8786}"
dask scheduler --host 127.0.0.1 --port "$port" --dashboard-address :0 >.dask-scheduler.log 2>&1 &
echo $! >.dask-cluster.pids
sleep 3
dask worker "tcp://127.0.0.1:$port" --nworkers "$n" --nthreads 1 --memory-limit 0 >.dask-worker.log 2>&1 &
echo $! >>.dask-cluster.pids
echo "scheduler: tcp://127.0.0.1:$port  (genolake ingest --scheduler tcp://127.0.0.1:$port ...)"
