#!/usr/bin/env bash
# Fuzzes Fovea's parsers with libFuzzer (the Swift toolchain's, with AddressSanitizer):
#
#   scripts/fuzz.sh TARGET [SECONDS]   TARGET: safetensors, checkpoint, sidecar, image, idx, cifar, onnx, or all (in turn)
#
# Builds the fuzzer once in .build-fuzz (FOVEA_FUZZ=1 adds the fovea-fuzz target, Fuzz/Fuzz.swift), seeds each
# target's corpus from valid files (a LeNet-5 trained for one epoch on 64 Fashion-MNIST images: its weights, sidecar
# and checkpoint; small PNGs, JPEGs and IDX files) and from the malformed corpus of scripts/hostile-corpus.py, then
# runs it for SECONDS (default 1800). Everything goes under fuzz/TARGET/: corpus/ (kept between runs), seeds/, log,
# and any finding as crash-*, timeout-*, oom-* or leak-* (replay one with: FOVEA_FUZZ_TARGET=TARGET
# .build-fuzz/release/fovea-fuzz FILE). Extra arguments after SECONDS go to libFuzzer (e.g. -jobs=2).
# Exits non-zero when a run leaves a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh safetensors|checkpoint|sidecar|image|idx|cifar|onnx|all [SECONDS] [libFuzzer flags]}
seconds=${2:-1800}
shift $(( $# >= 2 ? 2 : 1 ))
all=(safetensors checkpoint sidecar image idx cifar onnx)
if [[ $target == all ]]; then targets=("${all[@]}"); else targets=("$target"); fi
for t in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $t "* ]] || { echo "unknown fuzz target '$t' (${all[*]})" >&2; exit 64; }
done

scripts/install-dependencies.sh
command -v cjpeg > /dev/null || { apt-get update -qq && apt-get install -y -qq libjpeg-turbo-progs > /dev/null; }
if [[ ! -x .build-fuzz/release/fovea-fuzz ]] || [[ -n $(find Sources Fuzz Package.swift -newer .build-fuzz/release/fovea-fuzz -print -quit) ]]; then
    echo "building the fuzzer (.build-fuzz)"
    FOVEA_FUZZ=1 swift build -c release --scratch-path .build-fuzz --product fovea-fuzz \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
fi

# Seeds, made once: valid files of every kind and the malformed corpus.
seeds=fuzz/seeds
if [[ ! -f $seeds/done ]]; then
    echo "making seeds ($seeds)"
    rm -rf "$seeds" && mkdir -p "$seeds"
    swift build -c release --product fovea > /dev/null
    fovea=.build/release/fovea
    "$fovea" train --dataset fashion-mnist --limit-train 64 --limit-test 16 --epochs 1 --batch-size 16 \
        --output "$seeds/run" --quiet > /dev/null
    mkdir -p "$seeds/corpus/model"
    cp "$seeds/run/model.safetensors" "$seeds/run/model.json" "$seeds/corpus/model/"
    python3 - "$seeds" <<'PY'
import gzip, json, os, struct, sys, zlib
root = sys.argv[1]
def chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
def png(width, height, color, depth=8, extra=b""):
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    row = b"\x00" + bytes((i * 37) % 256 for i in range(width * channels * depth // 8))
    plte = chunk(b"PLTE", bytes(range(48))) if color == 3 else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)) + extra
            + plte + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))
os.makedirs(root + "/image", exist_ok=True)
open(root + "/corpus/model/image.png", "wb").write(png(28, 28, 0))
for name, data in [("grey.png", png(28, 28, 0)), ("rgb.png", png(16, 12, 2)), ("palette.png", png(8, 8, 3)),
                   ("grey16.png", png(9, 7, 0, 16)), ("rgba.png", png(5, 5, 6, extra=chunk(b"tEXt", b"a\x00b")))]:
    open(root + "/image/" + name, "wb").write(data)
with open(root + "/image.ppm", "wb") as f:
    f.write(b"P6 16 16 255\n" + bytes((i * 7) % 256 for i in range(16 * 16 * 3)))
os.makedirs(root + "/idx", exist_ok=True)
raw = bytes([0, 0, 8, 3]) + struct.pack(">III", 2, 4, 4) + bytes(range(32))
open(root + "/idx/images", "wb").write(raw)
open(root + "/idx/images.gz", "wb").write(gzip.compress(raw))
open(root + "/idx/labels", "wb").write(bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + bytes([1, 2, 3]))
# A checkpoint's metadata JSON, as the checkpoint target takes it.
with open(root + "/run/checkpoint-last.safetensors", "rb") as f:
    length = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(length))
os.makedirs(root + "/checkpoint", exist_ok=True)
open(root + "/checkpoint/metadata.json", "w").write(header["__metadata__"]["fovea_checkpoint"])
PY
    cjpeg -quality 80 "$seeds/image.ppm" > "$seeds/image/colour.jpg"
    cjpeg -grayscale -progressive "$seeds/image.ppm" > "$seeds/image/grey-progressive.jpg"
    python3 scripts/hostile-corpus.py "$seeds/corpus" > /dev/null
    # Per target: its valid files and the malformed ones of its kind, regular files under 4 MB only.
    pick() { find "$@" -type f -size -4M 2>/dev/null || true; }
    mkdir -p "$seeds/safetensors" "$seeds/sidecar"
    cp "$seeds/run/model.safetensors" "$seeds/safetensors/model.safetensors"
    cp "$seeds/run/checkpoint-last.safetensors" "$seeds/safetensors/checkpoint.safetensors"
    cp "$seeds/run/model.json" "$seeds/sidecar/model.json"
    i=0; for f in $(pick "$seeds"/corpus/models -name model.safetensors); do cp "$f" "$seeds/safetensors/hostile-$((i++))"; done
    i=0; for f in $(pick "$seeds"/corpus/models -name model.json); do cp "$f" "$seeds/sidecar/hostile-$((i++))"; done
    i=0; for f in $(pick "$seeds"/corpus/images); do cp "$f" "$seeds/image/hostile-$((i++))"; done
    i=0; for f in $(pick "$seeds"/corpus/mnist); do cp "$f" "$seeds/idx/hostile-$((i++))"; done
    touch "$seeds/done"
fi

if [[ ! -d $seeds/cifar ]]; then
    mkdir -p "$seeds/cifar"
    python3 -c "import sys; sys.stdout.buffer.write(bytes([3]) + bytes(range(256)) * 12 + bytes([7, 1]) + bytes(3072))" \
        > "$seeds/cifar/two-records.bin"
    i=0; for f in $(find "$seeds"/corpus/cifar -type f -size -4M); do cp "$f" "$seeds/cifar/hostile-$((i++))"; done
fi

if [[ ! -d $seeds/onnx ]]; then
    # ONNX: every conformance model of libonnx-testdata under 1 MB, and the hostile ONNX corpus.
    mkdir -p "$seeds/onnx"
    i=0; for f in $(find /usr/share/libonnx-testdata/data -name model.onnx -size -1024k); do cp "$f" "$seeds/onnx/case-$((i++)).onnx"; done
    i=0; for f in $(find "$seeds"/corpus/onnx -type f -size -4M 2>/dev/null); do cp "$f" "$seeds/onnx/hostile-$((i++))"; done
fi

status=0
for t in "${targets[@]}"; do
    out=fuzz/$t
    mkdir -p "$out/corpus"
    echo "fuzzing $t for $seconds s (log: $out/log)"
    # -rss_limit_mb: a malformed input may not take more than the 300 MB the corpus test allows, plus ASan's overhead.
    # No Swift backtracer: its memory reads after a trap show up as a (misleading) AddressSanitizer report.
    SWIFT_BACKTRACE=enable=no FOVEA_FUZZ_TARGET=$t .build-fuzz/release/fovea-fuzz "$out/corpus" "$seeds/$t" -max_total_time="$seconds" \
        -rss_limit_mb=1024 -malloc_limit_mb=1024 -timeout=10 -max_len=1048576 -artifact_prefix="$out/" \
        -detect_leaks=0 -print_final_stats=1 "$@" > "$out/log" 2>&1 || true
    findings=$(find "$out" -maxdepth 1 \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/log" | grep -o '[0-9]*$' || echo "?")
    echo "$t: $runs inputs in $seconds s, corpus $(ls "$out/corpus" | wc -l) files, $findings findings"
    (( findings == 0 )) || status=1
done
exit $status
