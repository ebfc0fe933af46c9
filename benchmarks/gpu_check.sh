#!/usr/bin/env bash
# Every GPU check in one command, for whoever is lent a GPU:
#   1. the whole test suite (its CuPy cases run where CuPy sees a device, and are skipped elsewhere),
#   2. a short training run on the GPU against the same run on the CPU (time per epoch).
# Usage: bash benchmarks/gpu_check.sh   (from the repository root; prints everything it measures)
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import cupy; print('CuPy', cupy.__version__, 'on', cupy.cuda.runtime.getDeviceProperties(0)['name'].decode())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -m pytest -q -p no:cacheprovider
out=$(mktemp -d)
for device in gpu cpu; do
  python -m minifcn.train --device "$device" --epochs 2 --synthetic-size 400 100 --no-progress \
    --out "$out/$device" | tail -n 3
done
python - "$out" <<'PY'
import csv, sys
for device in ("gpu", "cpu"):
    rows = list(csv.DictReader(open(f"{sys.argv[1]}/{device}/log.csv")))
    seconds = float(rows[-1]["seconds"]) / len(rows)
    print(f"{device}: {seconds:.1f} s per epoch (400 images), val mean IoU {float(rows[-1]['mean_iou']):.3f}")
PY
