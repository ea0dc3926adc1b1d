#!/usr/bin/env bash
# Data-parallel speed on one machine: ResNet-20 training on real Fashion-MNIST as 1 process × 2 OpenMP threads against
# 2 mpirun ranks × 1 thread (default 25 MB buckets; 0.25 MB buckets with and without overlapping the allreduce with
# the backward pass). The configurations alternate, REPEATS times (default 3), so that they see the same machine;
# each figure is the training images/s of the last epoch, and for the ranks the share of the forward–backward–sum
# spent waiting for gradients after the backward pass (rank 0's count). Needs a release build (swift build -c release).
#
#     scripts/bench-ddp.sh [REPEATS] [OUT]      (OUT: a directory for the runs, default /tmp/fovea-bench-ddp)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
out=${2:-/tmp/fovea-bench-ddp}
fovea=.build/release/fovea
[[ -x $fovea ]] || { echo "no $fovea: run swift build -c release first" >&2; exit 1; }
export OMP_WAIT_POLICY=passive
[[ $(id -u) == 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(train --model resnet20 --dataset fashion-mnist --limit-train 8192 --limit-test 512 --epochs 3 --batch-size 128)
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p') (family $(lscpu | sed -n 's/^CPU family: *//p'), model $(lscpu | sed -n 's/^Model: *//p')), $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
rate() { python3 -c "import json,sys; print('%.1f' % [json.loads(l) for l in open(sys.argv[1])][-1]['images_per_second'])" "$1/metrics.jsonl"; }
wait_share() { sed -n 's/.*per step (\([0-9.]*\) %) waiting.*/\1 %/p' "$1"; }
mkdir -p "$out"
declare -A rates waits
names=("1x2-threads" "2x1-ranks-25MB" "2x1-ranks-0.25MB-overlap" "2x1-ranks-0.25MB-no-overlap")
for r in $(seq 1 "$repeats"); do
    for name in "${names[@]}"; do
        dir=$out/$name-$r
        rm -rf "$dir"
        case $name in
            1x2-threads) OMP_NUM_THREADS=2 $fovea "${common[@]}" --output "$dir" > "$dir.log" 2>&1 ;;
            2x1-ranks-25MB) OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe --bind-to none $fovea "${common[@]}" --output "$dir" > "$dir.log" 2>&1 ;;
            2x1-ranks-0.25MB-overlap) OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe --bind-to none $fovea "${common[@]}" --bucket-mb 0.25 --output "$dir" > "$dir.log" 2>&1 ;;
            2x1-ranks-0.25MB-no-overlap) OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe --bind-to none $fovea "${common[@]}" --bucket-mb 0.25 --no-overlap --output "$dir" > "$dir.log" 2>&1 ;;
        esac
        rates[$name]="${rates[$name]:-} $(rate "$dir")"
        waits[$name]="${waits[$name]:-} $(wait_share "$dir.log" | tr -d ' ')"
    done
done
echo "| configuration | last-epoch training img/s (each repeat) | waiting share of a step |"
echo "|---|---|---|"
for name in "${names[@]}"; do echo "| $name |${rates[$name]} |${waits[$name]:- –} |"; done
