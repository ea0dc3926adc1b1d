#!/usr/bin/env python3
"""A/B measurement on a noisy machine: alternating `fovea bench` runs with and without an environment switch.

Runs `.build/release/fovea bench --workload W --json --seconds S` --pairs times as A (the environment as it is), each
followed at once by B (with --switch VAR=VALUE set, e.g. FOVEA_NO_FUSION=1 or FOVEA_ONEDNN_MAX_POOLING=1), prints each
pair's figures and ratio A/B, then the medians. The median of the paired ratios is what to report: both sides of a pair
ran within seconds of each other, so a slow phase of the machine moves both.
Usage: scripts/bench-ab.py WORKLOAD --switch VAR=VALUE [--pairs 6] [--seconds 2] [--figure train_img_s|infer_img_s]
"""
import argparse, json, os, statistics, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload")
    parser.add_argument("--switch", required=True, help="VAR=VALUE set for the B runs only")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--figure", default="train_img_s", choices=["train_img_s", "infer_img_s"])
    args = parser.parse_args()
    name, separator, value = args.switch.partition("=")
    if not name or not separator:
        sys.exit(f"--switch wants VAR=VALUE, got {args.switch!r}")
    if args.pairs < 1:
        sys.exit("--pairs must be at least 1")
    fovea = os.path.join(ROOT, ".build", "release", "fovea")
    if not os.path.exists(fovea):
        sys.exit("no release build: run `swift build -c release` first")

    def run(extra):
        environment = dict(os.environ, **extra)
        command = [fovea, "bench", "--workload", args.workload, "--json", "--seconds", str(args.seconds)]
        if args.figure == "infer_img_s":
            command.append("--inference-only")
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
        return json.loads(lines[-1])[args.figure]

    a, b, ratios = [], [], []
    print(f"{'A':>12} {'B (' + args.switch + ')':>24} {'A/B':>7}")
    for _ in range(args.pairs):
        a.append(run({}))
        b.append(run({name: value}))
        ratios.append(a[-1] / b[-1])
        print(f"{a[-1]:12.1f} {b[-1]:24.1f} {ratios[-1]:7.3f}", flush=True)
    print(f"median A {statistics.median(a):.1f}, median B {statistics.median(b):.1f}, "
          f"median paired ratio A/B {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
