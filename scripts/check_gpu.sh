#!/usr/bin/env bash
# dopatut on a CUDA GPU: the unit tests on it, then the whole protocol on it from an empty cache, timed, and
# compared with the CPU bundle (the same grid choices, or near-ties; the same verdicts; accuracies within
# dopatut.study.bundle_check.ACROSS: a GPU rounds otherwise), then two chapters that train on it.
#
#   scripts/check_gpu.sh [output folder]      # default _build/gpu; writes gpu_check.json and the logs there
#
# No GPU has yet been lent to this project's sessions: the CUDA path is tested on the CPU with explicit devices
# (tests/test_device.py). This script is what to run the first time one is.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-_build/gpu}
mkdir -p "$out"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: torch.cuda.is_available() is False')"
python -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"
export DOPATUT_DEVICE=cuda
unset DOPATUT_RECOMPUTE
start=$(date +%s)

# 1. The unit tests, with CUDA as every default device (the simulated Colab brings its own CPU setup: skipped).
unit=0
python -m pytest -q -p no:cacheprovider tests --ignore=tests/test_colab.py 2>&1 | tee "$out/unit_tests.log" || unit=$?
echo "unit tests on CUDA: $(( $(date +%s) - start )) s, exit status $unit"

# 2. The protocol on CUDA from an empty cache (timed by the script), compared with the CPU bundle.
cache=$(mktemp -d "${TMPDIR:-/tmp}/dopatut-gpu-XXXXXX")
status=0
python scripts/make_bundle.py --run "$cache" --device cuda --check "$cache" --json "$out/gpu_check.json" \
  2>&1 | tee "$out/protocol.log" || status=$?
python - "$out/gpu_check.json" <<'PY'
import json, sys, time, torch
from dopatut.study.perf import protocol_flops
report = json.load(open(sys.argv[1]))
flops = sum(protocol_flops().values())  # the training matmuls of the MLP protocol (chapter 9's foundations aside)
a = torch.randn(8192, 8192, device="cuda")
for _ in range(3):
    a @ a
torch.cuda.synchronize(); start = time.perf_counter()
for _ in range(10):
    a @ a
torch.cuda.synchronize(); peak = 10 * 2 * 8192 ** 3 / (time.perf_counter() - start)
seconds = report["protocol_seconds"]
report.update(flops=flops, matmul_peak_flops=peak, fraction_of_peak=flops / seconds / peak, gpu=torch.cuda.get_device_name(0))
json.dump(report, open(sys.argv[1], "w"), indent=1)
print(f"protocol on {report['gpu']}: {seconds:.1f} s for {flops / 1e12:.1f} TFLOP: {flops / seconds / 1e12:.2f} TFLOP/s, "
      f"{report['fraction_of_peak']:.1%} of this GPU's float32 matmul peak ({peak / 1e12:.1f} TFLOP/s)")
print("largest differences from the CPU bundle (points):",
      {kind: round(100 * d, 2) for kind, (d, _) in report["largest_difference"].items()})
PY

# 3. Two chapters that train on the device, with the cache the protocol filled.
chapters=0
DOPATUT_CACHE="$cache" python -m pytest -q -p no:cacheprovider --nbmake book/03_dopamine.ipynb book/09_beyond.ipynb \
  2>&1 | tee "$out/chapters.log" || chapters=$?
echo "check_gpu: $(( $(date +%s) - start )) s in all; exit status: unit tests $unit, protocol check $status, chapters $chapters"
[ "$unit" = 0 ] && [ "$status" = 0 ] && [ "$chapters" = 0 ]
