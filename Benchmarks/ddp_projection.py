#!/usr/bin/env python3
"""Projected scaling of data-parallel ResNet-50 ImageNet training (Fovea on Open MPI) to many nodes.

The model of one step on K nodes (each node: one rank, batch b):
    compute  = b / node_images_per_second                       (measured: fovea bench, training, on one node)
    backward = backward_fraction × compute                      (the part the allreduce can overlap)
    ring allreduce of G gradient bytes in n buckets over links of B bytes/s with per-message latency α:
    comm     = 2 (K − 1) / K × G / (efficiency × B)  +  2 (K − 1) × α × n
    exposed  = max(comm − backward, 0) with overlap (the last bucket always waits: at least its own share),
               comm without it
    step     = compute + exposed;   efficiency = compute / step;   images/s = K × b / step
Weak scaling keeps b per node; strong scaling keeps the global batch (b = global / K), where the step shrinks with K
while the ring's G-term does not: scaling stops where exposed communication reaches the compute.

    python3 Benchmarks/ddp_projection.py [Benchmarks/ddp-projection-inputs.json]
"""
import json
import math
import sys

path = sys.argv[1] if len(sys.argv) > 1 else __file__.replace("ddp_projection.py", "ddp-projection-inputs.json")
inputs = json.load(open(path))
rate = inputs["node_images_per_second"]          # ResNet-50 training images/s of one node, measured
G = inputs["gradient_bytes"]                     # 4 × parameters
buckets = math.ceil(G / (inputs["bucket_mb"] * 1048576))
alpha = inputs["latency_seconds"]
efficiency = inputs["link_efficiency"]
backward = inputs["backward_fraction"]


def step(K, b, gbps, rate, overlap=True):
    compute = b / rate
    comm = 2 * (K - 1) / K * G / (efficiency * gbps * 1e9 / 8) + 2 * (K - 1) * alpha * buckets
    if overlap:
        exposed = max(comm - backward * compute, comm / buckets)
    else:
        exposed = comm
    return compute, comm, compute + exposed


def tables(rate, label):
    print(f"\n## {label}: {rate:g} training images/s per node")
    for title, batch in [("weak scaling, batch %d per node" % inputs["node_batch"], lambda K: inputs["node_batch"]),
                         ("strong scaling, global batch %d" % inputs["global_batch"], lambda K: inputs["global_batch"] / K)]:
        print(f"\n{title}")
        print("| nodes | link Gb/s | batch/node | compute s | allreduce s | step s (overlap) | efficiency | "
              "efficiency without overlap | images/s |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for gbps in (25, 100):
            for K in (8, 32, 128):
                b = batch(K)
                compute, comm, total = step(K, b, gbps, rate)
                plain = step(K, b, gbps, rate, overlap=False)[2]
                print(f"| {K} | {gbps} | {b:g} | {compute:.3f} | {comm:.3f} | {total:.3f} | {compute / total:.1%} | "
                      f"{compute / plain:.1%} | {K * b / total:,.0f} |")
        for gbps in (25, 100):
            # Where it stops scaling: the first K (power of two) at which efficiency falls below 50 %.
            K = 2
            while K <= 1 << 20:
                if batch(K) < 1:
                    break
                compute, comm, total = step(K, batch(K), gbps, rate)
                if compute / total < 0.5:
                    break
                K *= 2
            reason = "batch per node below 1 image" if batch(K) < 1 else "efficiency below 50 %"
            print(f"{gbps} Gb/s: scaling stops at about {K} nodes ({reason})")


print(f"inputs: {path}")
print(f"node: {inputs['node']}")
print(f"ResNet-50 training {rate} images/s per node at batch {inputs['node_batch']} (measured: {inputs['measured_with']})")
print(f"gradients {G / 1e6:.1f} MB in {buckets} buckets of {inputs['bucket_mb']} MB; links at {efficiency:.0%} of line rate, "
      f"α = {alpha * 1e6:.0f} µs per message; backward = {backward:.0%} of a step")
tables(rate, "measured node")
for other in inputs.get("what_if_node_images_per_second", []):
    tables(other["rate"], "what if: " + other["label"])
# The node speed above which the ring's allreduce no longer hides behind the backward pass (128 nodes, batch b).
print("\n## Break-even node speed (128 nodes): above it the allreduce outlasts the backward pass")
for gbps in (25, 100):
    comm = step(128, 1, gbps, 1.0)[1]
    for b in (inputs["node_batch"], inputs["global_batch"] / 128):
        print(f"{gbps} Gb/s, batch {b:g} per node: {b * backward / comm:,.0f} images/s per node")
