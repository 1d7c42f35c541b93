#!/usr/bin/env bash
# Spark GPU discovery script (spark.executor.resource.gpu.discoveryScript): prints the GPUs this
# executor may use as Spark's resource JSON, e.g. {"name":"gpu","addresses":["0","1"]}.
# Honors CUDA_VISIBLE_DEVICES when the cluster manager has already narrowed the devices.
set -euo pipefail

if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
  IFS=',' read -r -a devices <<< "$CUDA_VISIBLE_DEVICES"
  # Inside the container the visible devices are renumbered from 0.
  addresses=()
  for i in "${!devices[@]}"; do addresses+=("\"$i\""); done
elif command -v nvidia-smi >/dev/null 2>&1; then
  mapfile -t indexes < <(nvidia-smi --query-gpu=index --format=csv,noheader)
  addresses=()
  for i in "${indexes[@]}"; do addresses+=("\"${i// /}\""); done
else
  addresses=()
fi

joined=$(IFS=','; echo "${addresses[*]:-}")
echo "{\"name\":\"gpu\",\"addresses\":[${joined}]}"
