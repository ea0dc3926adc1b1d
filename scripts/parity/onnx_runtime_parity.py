#!/usr/bin/env python3
"""Check an ONNX file Fovea exported: onnx.checker (full_check) and ONNX Runtime's logits against Fovea's.

Usage: python onnx_runtime_parity.py MODEL.onnx IO.safetensors
IO.safetensors holds "input" and "logits" (Fovea's, eval mode). Prints the largest difference relative to the largest
|logit| and exits 1 when it is 1e-4 or more, or when the checker refuses the file. Run by ParityTests
(FOVEA_PARITY_DIR, FOVEA_PARITY_PYTHON) with the interpreter that has onnx and onnxruntime (pip install onnx onnxruntime
safetensors numpy).
"""
import sys

import numpy as np
import onnx
import onnxruntime
from safetensors.numpy import load_file


def main() -> int:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, io_path = sys.argv[1], sys.argv[2]
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    tensors = load_file(io_path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": tensors["input"]})
    reference = tensors["logits"]
    if logits.shape != reference.shape:
        print(f"{path}: ONNX Runtime gives shape {logits.shape}, Fovea {reference.shape}")
        return 1
    scale = max(float(np.abs(reference).max()), np.finfo(np.float32).tiny)
    worst = float(np.abs(logits - reference).max())
    relative = worst / scale
    print(f"{path}: checker ok (opset {model.opset_import[0].version}, {len(model.graph.node)} nodes); "
          f"ONNX Runtime {onnxruntime.__version__} max |Δ| {worst:.3g}, max |logit| {scale:.3g}, relative {relative:.3g}")
    return 0 if relative < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
