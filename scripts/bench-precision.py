#!/usr/bin/env python3
"""Regenerates the reduced-precision section of Benchmarks/README.md: Fovea bf16 and int8 against PyTorch bf16 autocast
and ONNX Runtime int8, side by side (issue 19's table).

For each workload and each of --rounds rounds, in the same minute and each in its own process:
`fovea bench --workload W --precision fp32|bf16|int8 --json`, then Benchmarks/precision_anchor.py --only W (PyTorch fp32
and bf16 autocast, channels-last; ONNX Runtime fp32 and quantize_static QDQ int8, 2 intra-op threads). A round's ratios
are Fovea bf16 training and inference over PyTorch bf16's, and Fovea int8 inference over ONNX Runtime int8's; the table
shows the round with the median ratio and the range over the rounds. One more run of each Fovea precision with
ONEDNN_VERBOSE=1 lists the convolution implementations oneDNN executed. The section between the markers
<!-- precision:start --> and <!-- precision:end --> is replaced (appended when missing); scripts/bench-table.py keeps it.
Needs a release build (`swift build -c release`) and a venv with torch, torchvision, onnx and onnxruntime:
    python3 -m venv /tmp/pt && /tmp/pt/bin/pip install torch torchvision onnx onnxruntime
Usage: scripts/bench-precision.py [--python /tmp/pt/bin/python] [--seconds 6] [--rounds 3] [--workload W ...]
"""
import argparse, collections, datetime, json, os, re, statistics, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "Benchmarks", "README.md")
WORKLOADS = ["resnet20_32", "resnet18_224", "mobilenet_v2_224", "efficientnet_b0_224"]
TARGETS = {"resnet20_32": (1.5, 1.5, 1.3), "resnet18_224": (1.3, 1.5, 1.3), "mobilenet_v2_224": (1.5, 1.5, 1.3),
           "efficientnet_b0_224": (1.5, 1.5, 1.3)}
START, END = "<!-- precision:start -->", "<!-- precision:end -->"


def run(command, environment=None):
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=environment)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done


FOVEA = os.path.join(ROOT, ".build", "release", "fovea")


def fovea(workload, precision, seconds):
    done = run([FOVEA, "bench", "--workload", workload, "--precision", precision,
                "--seconds", str(seconds), "--json"])
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def implementations(workload, precision):
    environment = dict(os.environ, ONEDNN_VERBOSE="1")
    done = run([FOVEA, "bench", "--workload", workload, "--precision", precision, "--seconds", "0.3", "--json"], environment)
    counts = collections.Counter()
    for line in done.stdout.splitlines():
        fields = line.split(",")
        if len(fields) > 4 and fields[0] == "onednn_verbose" and fields[1] == "exec" and fields[3] == "convolution":
            counts[fields[4]] += 1
    return counts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default="/tmp/pt/bin/python")
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workload", nargs="*", default=WORKLOADS)
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    flags = sorted(set(re.findall(r"\b(amx_bf16|amx_int8|avx512_bf16|avx512_vnni)\b", open("/proc/cpuinfo").read())))
    started = datetime.datetime.utcnow()
    rows = []
    for workload in args.workload:
        rounds = []
        for _ in range(args.rounds):
            ours = {precision: fovea(workload, precision, args.seconds) for precision in ["fp32", "bf16", "int8"]}
            done = run([args.python, os.path.join(ROOT, "Benchmarks", "precision_anchor.py"), "--only", workload,
                        "--seconds", str(args.seconds)])
            theirs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
            torch_bf16 = next(r for r in theirs if r["framework"].startswith("torch") and r["precision"] == "bf16")
            ort_int8 = next(r for r in theirs if r["framework"].startswith("onnxruntime") and r["precision"] == "int8")
            ratio = (ours["bf16"]["train_img_s"] / torch_bf16["train_img_s"], ours["bf16"]["infer_img_s"] / torch_bf16["infer_img_s"],
                     ours["int8"]["infer_img_s"] / ort_int8["infer_img_s"])
            rounds.append({"fovea": ours, "anchors": theirs, "ratio": ratio})
            print(workload, [f"{r:.2f}" for r in ratio], file=sys.stderr, flush=True)
        rows.append((workload, rounds, {p: implementations(workload, p) for p in ["fp32", "bf16", "int8"]}))
    finished = datetime.datetime.utcnow()
    lines = [START, "", "## Reduced precision: bf16 and int8 against PyTorch bf16 and ONNX Runtime int8", "",
             f"Measured {started:%Y-%m-%d %H:%M}–{finished:%H:%M} UTC on {cpu} (2 cores; {', '.join(flags) or 'no bf16/int8 flags'}), "
             f"regenerated by `scripts/bench-precision.py --rounds {args.rounds} --seconds {args.seconds:g}`. Per round, in the same "
             "minute: `fovea bench --precision fp32|bf16|int8`, then `Benchmarks/precision_anchor.py` (PyTorch channels-last "
             "with `torch.autocast(\"cpu\", dtype=torch.bfloat16)`; ONNX Runtime with 2 intra-op threads, `quantize_static` QDQ "
             "int8 per channel from the same float weights). Images/s, batch sizes as `torch_anchor.py`; the round with the "
             "median ratio is shown, the range over the rounds beside it. Targets of issue 19 in brackets.", "",
             "| workload | Fovea fp32 train / infer | Fovea bf16 train / infer | PyTorch bf16 train / infer | bf16 train ratio | "
             "bf16 infer ratio | Fovea int8 infer | ORT int8 infer | int8 ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for workload, rounds, _ in rows:
        cells = []
        for index in range(3):
            values = sorted(r["ratio"][index] for r in rounds)
            chosen = sorted(rounds, key=lambda r: r["ratio"][index])[len(rounds) // 2]
            cells.append((chosen, f"**{chosen['ratio'][index]:.2f}×** ({values[0]:.2f}–{values[-1]:.2f}) [≥ {TARGETS[workload][index]}]"))
        chosen = cells[1][0]
        f32, b16, i8 = chosen["fovea"]["fp32"], chosen["fovea"]["bf16"], chosen["fovea"]["int8"]
        torch_bf16 = next(r for r in chosen["anchors"] if r["framework"].startswith("torch") and r["precision"] == "bf16")
        ort_int8 = next(r for r in chosen["anchors"] if r["framework"].startswith("onnxruntime") and r["precision"] == "int8")
        lines.append(f"| {workload} | {f32['train_img_s']:,.1f} / {f32['infer_img_s']:,.1f} | {b16['train_img_s']:,.1f} / "
                     f"{b16['infer_img_s']:,.1f} | {torch_bf16['train_img_s']:,.1f} / {torch_bf16['infer_img_s']:,.1f} | "
                     f"{cells[0][1]} | {cells[1][1]} | {i8['infer_img_s']:,.1f} | {ort_int8['infer_img_s']:,.1f} | {cells[2][1]} |")
    peaks = {p: [r["fovea"][p]["peak_gflops"] for _, rounds, _ in rows for r in rounds] for p in ["fp32", "bf16", "int8"]}
    lines += ["", "Measured peaks (`fovea bench`'s `peak_gflops`: oneDNN's sgemm, bf16 matmul, u8×s8 matmul; median over the runs): "
              + ", ".join(f"{p} {statistics.median(v):,.0f} G{'OP' if p == 'int8' else 'FLOP'}/s" for p, v in peaks.items()) + ".",
              "", "Convolution implementations oneDNN executed (`ONEDNN_VERBOSE=1`, a short `fovea bench` of each precision: "
              "training steps and inference, int8 inference only):", ""]
    for workload, _, kernels in rows:
        for precision, counts in kernels.items():
            lines.append(f"- {workload} {precision}: " + ", ".join(f"{name} ×{count}" for name, count in counts.most_common()))
    lines += ["", "Raw figures (one JSON object per workload and round):", "", "```"]
    lines += [json.dumps({"workload": w, **{k: r[k] for k in ["fovea", "anchors"]}}, sort_keys=True) for w, rounds, _ in rows for r in rounds]
    lines += ["```", "", END]
    text = open(README).read() if os.path.exists(README) else ""
    section = "\n".join(lines)
    if START in text and END in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(README, "w") as out:
        out.write(text)
    print("\n".join(lines[:len(rows) + 10]))


if __name__ == "__main__":
    main()
