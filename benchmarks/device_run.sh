#!/usr/bin/env bash
# The GPU checks of the few-shot engine, as one script for a lent CUDA machine with its own torch
# (no venv, no internet). Expects in .gpu/ (git-ignored through .git/info/exclude, carried):
#   mkdir -p .gpu/data/omniglot && cp ../shared/data/omniglot/*.zip .gpu/data/omniglot/
#   .venv/bin/pip download --no-deps higher==0.2.1 -d .gpu && echo /.gpu/ >> .git/info/exclude
# Writes each step's output to $OUT (or ./device-out). Budget: about 6 minutes on an H100/H200.
# Arguments name the steps to run (agreement throughput accuracy advisor); none: all four.
set -u
export PYTHONUNBUFFERED=1
out=${OUT:-device-out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/*.whl
export PYTHONPATH=$PWD:/tmp/site MAMLPAPER_DATA=$PWD/.gpu/data
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/device.txt"
wanted=${*:-agreement throughput accuracy advisor}
step() {  # name, seconds, command...
    local name=$1 seconds=$2; shift 2
    [[ " $wanted " == *" $name "* ]] || return 0
    echo "== $name"
    timeout "$seconds" "$@" 2>&1 | tee "$out/$name.txt"
}
step agreement 90 python3 benchmarks/device_agreement.py --device cuda
step throughput 180 python3 benchmarks/fewshot_throughput.py --device cuda --grid 64 --iterations 2 --repeats 2
step accuracy 200 python3 benchmarks/omniglot_accuracy.py --device cuda --minutes 2.5 --json "$out/accuracy.json"
step advisor 240 python3 benchmarks/advisor_speed.py --device cuda --conv4 --conv4-tasks 32
