#!/usr/bin/env bash
# Load test of `fovea serve` on loopback with wrk (Debian): a LeNet-5 (1×28×28, trained briefly on Fashion-MNIST)
# and a ResNet-18 (3×224×224, trained briefly on a generated image folder), each at 1, 8 and 64 connections for
# DURATION seconds, POSTing one image per request to /v1/predict. Then ResNet-18 at 64 connections without batching
# (--max-batch 1), `fovea bench`'s batch-16 inference images/s for ResNet-18 next to it, and a SOAK-second soak of
# LeNet-5 at 8 connections, with the server's RSS after its first minute and at its end.
#
# Prints a Markdown table (also OUT/load.md) and OUT/load.json; exits 1 if a target of the serving issue is missed:
# no errors, ResNet-18 at 64 connections ≥ 80 % of bench's batch-16 inference, p99 < 4 × the single-connection p50
# + --max-delay-ms, RSS at the end of the soak within 10 % of the first minute's.
#
# Usage: scripts/load-serve.sh [OUT]   (default runs/load; about 20 minutes with the defaults)
# Knobs: DURATION (60), SOAK (600), MAX_BATCH (16), MAX_DELAY_MS (5), FOVEA (binary; default: build it).
# Traffic goes to 127.0.0.1 only, and every wrk run is bounded by its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/load}
duration=${DURATION:-60}
soak=${SOAK:-600}
max_batch=${MAX_BATCH:-16}
max_delay=${MAX_DELAY_MS:-5}
if [[ -z "${FOVEA:-}" ]]; then
    scripts/install-dependencies.sh
    swift build -c release --product fovea > /dev/null
    FOVEA=.build/release/fovea
fi
mkdir -p "$out"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
lscpu | grep -E '^(Model name|CPU family|Model):' | sed 's/  */ /g' | tee "$out/cpu.txt"

# The two models and one request image for each.
if [[ ! -f "$out/lenet/model.safetensors" ]]; then
    "$FOVEA" train --model lenet5 --dataset fashion-mnist --epochs 1 --output "$out/lenet" --quiet > /dev/null
fi
if [[ ! -f "$out/resnet18/model.safetensors" ]]; then
    python3 - "$out/folder" <<'PY'
import os, random, struct, sys, zlib
root = sys.argv[1]
random.seed(0)
def png(path, w, h, shade):
    rows = b"".join(b"\0" + bytes((min(255, shade + random.randrange(40)), random.randrange(256), 128) * w) for _ in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
for split in ("train", "val"):
    for label, shade in (("dark", 20), ("light", 200)):
        os.makedirs(f"{root}/{split}/{label}", exist_ok=True)
        for i in range(8):
            png(f"{root}/{split}/{label}/{i}.png", 256, 256, shade)
PY
    "$FOVEA" train --model resnet18 --dataset imagefolder --data-dir "$out/folder" --image-size 224 --epochs 1 \
        --batch-size 8 --output "$out/resnet18" --quiet > /dev/null
fi
python3 - "$out" <<'PY'
import gzip, struct, sys, zlib
out = sys.argv[1]
pixels = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()[16:16 + 784]
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
rows = b"".join(b"\0" + pixels[y * 28:(y + 1) * 28] for y in range(28))
open(f"{out}/lenet.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
                                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
cp "$out/folder/val/light/0.png" "$out/resnet18.png"
for model in lenet resnet18; do
    cat > "$out/$model.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/png"
local file = io.open("$out/$model.png", "rb")
wrk.body = file:read("*a")
file:close()
LUA
done

server_pid=
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2> /dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" || { echo "the server did not exit 0 after SIGTERM" >&2; exit 1; }
    fi
    server_pid=
}
trap 'if [[ -n "$server_pid" ]]; then kill "$server_pid" 2> /dev/null || true; fi' EXIT
start_server() {  # MODEL [flags…]: starts fovea serve on a free port, sets $port once /readyz answers 200
    local model=$1; shift
    "$FOVEA" serve --weights "$out/$model/model.safetensors" --port 0 --max-delay-ms "$max_delay" --max-queue 1024 \
        --log-level warning "$@" 2> "$out/serve-$model.log" &
    server_pid=$!
    # With --log-level warning the port is not logged: find it from the process's listening socket.
    port=
    for _ in $(seq 1 200); do
        port=$(ss -ltnpH 2> /dev/null | awk -v pid="pid=$server_pid," '$0 ~ pid { split($4, a, ":"); print a[length(a)] }' | head -1)
        if [[ -n "$port" ]] && curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; then return; fi
        sleep 0.1
    done
    echo "fovea serve did not become ready" >&2; exit 1
}
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status"; }
peak_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status"; }
run_wrk() {  # NAME MODEL CONNECTIONS SECONDS
    local threads=$(( $3 < 2 ? 1 : 2 ))
    wrk -t "$threads" -c "$3" -d "${4}s" --timeout 30s --latency -s "$out/$2.lua" "http://127.0.0.1:$port/v1/predict" > "$out/wrk-$1.txt"
}

declare -A peak
for model in lenet resnet18; do
    start_server "$model" --max-batch "$max_batch"
    for connections in 1 8 64; do
        echo "$model, $connections connections, ${duration} s"
        run_wrk "$model-$connections" "$model" "$connections" "$duration"
    done
    peak[$model]=$(peak_mb)
    echo "${peak[$model]}" > "$out/peak-$model.txt"
    stop_server
done
echo "resnet18 without batching (--max-batch 1), 64 connections"
start_server resnet18 --max-batch 1
run_wrk resnet18-64-unbatched resnet18 64 "$duration"
stop_server
echo "fovea bench: resnet18 inference at batch 16"
"$FOVEA" bench --model resnet18 --batch-size 16 --inference-only --json 2> /dev/null | tail -1 > "$out/bench-resnet18.json"
echo "soak: lenet, 8 connections, ${soak} s"
start_server lenet --max-batch "$max_batch"
wrk -t 2 -c 8 -d "${soak}s" --timeout 30s --latency -s "$out/lenet.lua" "http://127.0.0.1:$port/v1/predict" > "$out/wrk-soak.txt" &
wrk_pid=$!
sleep 60
rss_first=$(rss_mb)
wait "$wrk_pid"
rss_last=$(rss_mb)
echo "$rss_first $rss_last" > "$out/soak-rss.txt"
stop_server

python3 - "$out" "$max_delay" <<'PY'
import json, re, sys
out, max_delay = sys.argv[1], float(sys.argv[2])
def seconds(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[unit]
def parse(name):
    text = open(f"{out}/wrk-{name}.txt").read()
    latency = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)", text, re.M))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    return {"requests": requests, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
            "p50_ms": seconds(latency["50"]) * 1e3, "p99_ms": seconds(latency["99"]) * 1e3, "errors": errors}
rows, failures = [], []
results = {}
for model in ("lenet", "resnet18"):
    peak = float(open(f"{out}/peak-{model}.txt").read())
    for c in (1, 8, 64):
        r = parse(f"{model}-{c}")
        results[f"{model}-{c}"] = r
        rows.append(f"| {model} | {c} | {r['rps']:.1f} | {r['rps']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {peak:.0f} |")
        if r["errors"]:
            failures.append(f"{model} at {c} connections: {r['errors']} errors")
    single = results[f"{model}-1"]["p50_ms"]
    if results[f"{model}-64"]["p99_ms"] >= 4 * single + max_delay:
        failures.append(f"{model}: p99 at 64 connections {results[f'{model}-64']['p99_ms']:.1f} ms ≥ 4 × {single:.2f} + {max_delay} ms")
unbatched = parse("resnet18-64-unbatched")
bench = json.load(open(f"{out}/bench-resnet18.json"))["infer_img_s"]
batched = results["resnet18-64"]["rps"]
first, last = (float(x) for x in open(f"{out}/soak-rss.txt").read().split())
soak = parse("soak")
if batched < 0.8 * bench:
    failures.append(f"resnet18 at 64 connections: {batched:.1f} img/s < 80 % of bench's {bench:.1f}")
if abs(last - first) > 0.1 * first:
    failures.append(f"soak RSS {first:.1f} MB after 1 min, {last:.1f} MB at the end (more than 10 % apart)")
if soak["errors"] or unbatched["errors"]:
    failures.append("errors in the soak or the unbatched run")
cpu = open(f"{out}/cpu.txt").read().strip().replace("\n", "; ")
table = "\n".join([
    f"CPU: {cpu}", "",
    "| model | connections | requests/s | images/s | p50 ms | p99 ms | errors | peak RSS MB |",
    "|---|---|---|---|---|---|---|---|", *rows, "",
    f"ResNet-18 at 64 connections: {batched:.1f} img/s batched (--max-batch {json.load(open(f'{out}/bench-resnet18.json')).get('infer_batch', 16)} ceiling), "
    f"{unbatched['rps']:.1f} img/s with --max-batch 1; `fovea bench` batch-16 inference {bench:.1f} img/s "
    f"({100 * batched / bench:.0f} % of it).",
    f"Soak (LeNet-5, 8 connections, {soak['requests']} requests, {soak['errors']} errors): RSS {first:.1f} MB after 1 minute, {last:.1f} MB at the end.",
])
print(table)
open(f"{out}/load.md", "w").write(table + "\n")
json.dump({"runs": results, "unbatched_resnet18_64": unbatched, "bench_resnet18_b16": bench,
           "soak": soak, "soak_rss_mb": [first, last], "failures": failures}, open(f"{out}/load.json", "w"), indent=2)
for failure in failures:
    print("target missed:", failure)
sys.exit(1 if failures else 0)
PY
