#!/usr/bin/env bash
# Every GPU check in one command, for whoever is lent a GPU; fits a 10-minute slot (the parts' time
# limits add up to 9 minutes):
#   1. the device: CuPy's version, the GPU, and minifcn's device check (one kernel, one product);
#   2. the GPU tests: every gpu-marked case, on CuPy and the device;
#   3. benchmarks/gpu_benchmark.py: time per training step against PyTorch+cuDNN, TF32 off and on,
#      after a warm-up (CuPy's first kernel compilations and cuDNN's algorithm search are not timed);
#   4. a short training run on the GPU: epoch 1 includes the kernel compilations, epoch 2 does not,
#      so epoch 2 is the time per epoch.
# Each part runs even if an earlier one failed, under its own time limit; the exit status is the
# number of parts that failed. Usage: bash benchmarks/gpu_check.sh  (from anywhere; prints everything)
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
failures=0

part() {  # part NAME SECONDS COMMAND...: run COMMAND under a time limit, report it, count a failure
  local name=$1 seconds=$2
  shift 2
  echo "== $name (limit ${seconds} s)"
  local started=$SECONDS
  timeout "$seconds" "$@"
  local status=$?
  echo "== $name: exit status $status after $((SECONDS - started)) s"
  [ "$status" -eq 0 ] || failures=$((failures + 1))
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
part "device" 60 "$PYTHON" -c "
import cupy
from minifcn import backend
print('CuPy', cupy.__version__, 'on', cupy.cuda.runtime.getDeviceProperties(0)['name'].decode())
print('minifcn device check:', backend.check_device('gpu'))"
part "GPU tests" 210 "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu
part "benchmark" 180 "$PYTHON" benchmarks/gpu_benchmark.py --warmup 3 --repeats 10
out=$(mktemp -d)
part "training" 90 "$PYTHON" -m minifcn.train --device gpu --epochs 2 --synthetic-size 400 100 --no-progress \
  --out "$out/run"
"$PYTHON" - "$out/run/log.csv" <<'PY' || failures=$((failures + 1))
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
seconds = [float(row["seconds"]) for row in rows]
print(f"training on the GPU: epoch 1 (with kernel compilation) {seconds[0]:.1f} s, "
      f"epoch 2 {seconds[1] - seconds[0]:.1f} s for 400 images; val mean IoU {float(rows[-1]['mean_iou']):.3f}")
PY
rm -rf "$out"
echo "gpu_check.sh: $failures part(s) failed"
exit "$failures"
