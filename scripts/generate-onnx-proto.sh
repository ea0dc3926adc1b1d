#!/usr/bin/env bash
# Regenerates Sources/FoveaONNX/Generated/onnx.pb.swift from Debian's onnx.proto (libonnx-dev) with protoc
# (protobuf-compiler) and swift-protobuf's protoc-gen-swift at the version Package.swift names. The generated file is
# committed: building the plugin costs minutes, and the proto changes only with Debian's ONNX.
# Usage: scripts/generate-onnx-proto.sh [PATH-TO-protoc-gen-swift]
set -euo pipefail
cd "$(dirname "$0")/.."
for package in libonnx-dev protobuf-compiler; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || {
        if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$package" >/dev/null
    }
done
version=1.39.0
plugin="${1:-}"
if [ -z "$plugin" ]; then
    work=/tmp/fovea-swift-protobuf-$version
    if [ ! -x "$work/.build/release/protoc-gen-swift" ]; then
        rm -rf "$work"
        git clone -q https://github.com/apple/swift-protobuf "$work"
        git -C "$work" checkout -q "$version"
        (cd "$work" && swift build -c release --product protoc-gen-swift)
    fi
    plugin="$work/.build/release/protoc-gen-swift"
fi
proto_dir=/usr/include/onnx
output=Sources/FoveaONNX/Generated
mkdir -p "$output"
protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$proto_dir" \
    --swift_out="$output" --swift_opt=Visibility=Internal onnx.proto
echo "wrote $output/onnx.pb.swift ($(wc -l < "$output/onnx.pb.swift") lines) from $proto_dir/onnx.proto" \
     "($(dpkg-query -W -f='${Version}' libonnx-dev)) with protoc-gen-swift $version"
