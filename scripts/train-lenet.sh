#!/usr/bin/env bash
# The quick start's main job: install what is missing, build in release mode, train LeNet-5 on
# Fashion-MNIST (10 epochs, SGD 0.05 momentum 0.9, weight decay 5e-4, cosine schedule) and print the report.
# Extra arguments are passed to `fovea train` (e.g. --epochs 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dependencies.sh
swift build -c release --product fovea >&2
exec .build/release/fovea train --model lenet5 --dataset fashion-mnist --epochs 10 --batch-size 128 \
    --optimizer sgd --lr 0.05 --momentum 0.9 --weight-decay 5e-4 --schedule cosine --seed 0 \
    --output runs/lenet5-fashion-mnist "$@"
