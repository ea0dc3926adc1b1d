#!/usr/bin/env bash
# Data-parallel training across two "machines": two network namespaces of this host joined by a veth pair, each
# with its own address (10.231.0.1 and 10.231.0.2, inside the namespaces only), Open MPI's TCP transport between them
# and mpirun's remote launcher replaced by `ip netns exec` (instead of ssh). Trains LeNet-5 for one epoch on a part of
# real Fashion-MNIST on the two nodes, then the same on two ranks over loopback, and compares the weights.
#
#   sudo scripts/mpi-netns.sh [OUT]        (needs root: ip netns; Debian's openmpi-bin, iproute2)
#
# Exit 0 when the weights are the same (bit for bit: a sum of two ranks does not depend on the transport); the
# namespaces are removed on exit. FOVEA (default .build/release/fovea) names the binary; it is built if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/fovea-netns}"
fovea="${FOVEA:-$PWD/.build/release/fovea}"
[[ "$(id -u)" -eq 0 ]] || { echo "mpi-netns.sh needs root (ip netns)" >&2; exit 69; }
command -v ip > /dev/null && command -v mpirun > /dev/null || { echo "needs ip (iproute2) and mpirun (openmpi-bin)" >&2; exit 69; }
if [[ ! -x "$fovea" || ! -f "$(dirname "$fovea")/libFoveaMPI.so" ]]; then swift build -c release > /dev/null; fi

tag="fv$$"
nodes=("$tag-a" "$tag-b")
addresses=(10.231.0.1 10.231.0.2)
cleanup() {
    for ns in "${nodes[@]}"; do ip netns del "$ns" 2> /dev/null || true; done
    rm -rf "$work"
}
work="$(mktemp -d)"
trap cleanup EXIT
for i in 0 1; do ip netns add "${nodes[$i]}"; ip -n "${nodes[$i]}" link set lo up; done
ip link add "$tag-0" type veth peer name "$tag-1"
for i in 0 1; do
    ip link set "$tag-$i" netns "${nodes[$i]}"
    ip -n "${nodes[$i]}" addr add "${addresses[$i]}/24" dev "$tag-$i"
    ip -n "${nodes[$i]}" link set "$tag-$i" up
done

# mpirun starts its daemon on a remote node as `AGENT [options] HOST COMMAND…`; this agent runs COMMAND in the
# node's namespace instead of logging in with ssh.
cat > "$work/agent" << EOF
#!/bin/sh
while [ "\${1#-}" != "\$1" ]; do shift; done
host="\$1"; shift
case "\$host" in
    ${addresses[0]}) ns=${nodes[0]} ;;
    ${addresses[1]}) ns=${nodes[1]} ;;
    *) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" sh -c "\$*"
EOF
chmod +x "$work/agent"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
data="${FOVEA_DATA:-/usr/share/datasets/fashion-mnist}"
job=(train --data-dir "$data" --epochs 1 --batch-size 128 --limit-train 6000 --limit-test 2000 --quiet)
rm -rf "$out"
mkdir -p "$out"
echo "two nodes: ${nodes[0]} (${addresses[0]}) and ${nodes[1]} (${addresses[1]}), TCP over a veth pair"
ip netns exec "${nodes[0]}" mpirun --host "${addresses[0]}:1,${addresses[1]}:1" -np 2 \
    --mca plm_rsh_agent "$work/agent" --mca btl tcp,self \
    --mca btl_tcp_if_include 10.231.0.0/24 --mca oob_tcp_if_include 10.231.0.0/24 \
    -x OMP_NUM_THREADS -x OMP_WAIT_POLICY -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
    "$fovea" "${job[@]}" --output "$out/netns" | tail -3
echo "loopback: two ranks on this host"
mpirun --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS -x OMP_WAIT_POLICY "$fovea" "${job[@]}" --output "$out/loopback" | tail -3
if cmp -s "$out/netns/model.safetensors" "$out/loopback/model.safetensors"; then
    echo "same weights: $out/netns/model.safetensors = $out/loopback/model.safetensors (bit for bit)"
else
    echo "the weights differ: $out/netns/model.safetensors and $out/loopback/model.safetensors" >&2
    exit 1
fi
