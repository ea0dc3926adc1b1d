#!/usr/bin/env python3
"""Writes Benchmarks/ZOO.md: every zoo model's parameters, multiply-adds and forward/training images/s at its default
input size (batch 8 by default), each model measured by `fovea bench --model NAME` in its own process.

Usage: scripts/zoo-table.py [--batch-size 8] [--seconds 1] [--model NAME ...] [--output FILE]
Needs a release build (`swift build -c release`). The largest models (VGG, EfficientNet-B6/B7 at 528/600 pixels)
take minutes each and several GB.
"""
import argparse, datetime, json, os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1)
    parser.add_argument("--model", nargs="*")
    parser.add_argument("--output", default=os.path.join(ROOT, "Benchmarks", "ZOO.md"))
    args = parser.parse_args()
    fovea = os.path.join(ROOT, ".build", "release", "fovea")
    if not os.path.exists(fovea):
        sys.exit("no release build: run `swift build -c release` first")
    listing = subprocess.run([fovea, "models", "--json"] + (args.model or []), capture_output=True, text=True, check=True)
    models = [json.loads(line) for line in listing.stdout.splitlines() if line.startswith("{")]
    rows = []
    for model in models:
        done = subprocess.run([fovea, "bench", "--model", model["name"], "--batch-size", str(args.batch_size),
                               "--seconds", str(args.seconds), "--json"], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{model['name']}: failed: {done.stderr.strip()}", file=sys.stderr)
            rows.append((model, None))
            continue
        bench = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(bench), flush=True)
        rows.append((model, bench))
    lines = [
        "# Model zoo: size and speed",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on this machine ({os.cpu_count()} cores) by "
        f"`scripts/zoo-table.py` (`fovea bench --model NAME --batch-size {args.batch_size} --seconds {args.seconds}`): each model",
        "at its default input size (torchvision's evaluation size), 1000 classes (10 for LeNet-5 and the CIFAR ResNets),",
        "3 input channels (1 for LeNet-5). Training is forward, backward and an SGD step; inference runs without the tape with",
        "batch norm folded. Images/s are medians of at least 3 repeats after a warm-up.",
        "",
        "| model | family | parameters | multiply-adds | input | inference img/s | training img/s | peak RSS |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for model, bench in rows:
        macs = model["multiply_adds"]
        size = "×".join(str(d) for d in model["input_size"])
        macs_text = f"{macs / 1e9:.2f} G" if macs >= 1e8 else f"{macs / 1e6:.2f} M"
        speed = (f"{bench['infer_img_s']:,.1f} | {bench['train_img_s']:,.1f} | {bench['peak_rss_mb']:,.0f} MB" if bench
                 else "failed | failed | ")
        lines.append(f"| {model['name']} | {model['family']} | {model['parameters']:,} | {macs_text} | {size} | {speed} |")
    with open(args.output, "w") as out:
        out.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
