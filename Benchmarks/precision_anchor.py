"""Reduced-precision anchors for `fovea bench --precision`: PyTorch bf16 autocast and ONNX Runtime int8, on this machine.

For each workload of ../shared/bench/torch_anchor.py that issue 19 names (resnet20_32, resnet18_224, mobilenet_v2_224,
efficientnet_b0_224), prints one JSON line per framework and precision:
  - torch fp32 and torch bf16: channels-last, bf16 by torch.autocast("cpu", dtype=torch.bfloat16) around the forward
    pass (and the loss) of a training step (forward, backward, SGD momentum 0.9, weight decay 5e-4) and of inference;
  - onnxruntime fp32 and int8: the same model exported by torch.onnx.export (opset 17, fixed batch), int8 by
    onnxruntime.quantization.quantize_static (QDQ, per-channel symmetric weights, calibrated on 16 batches of random
    normal data), run with 2 intra-op threads.
Timing as torch_anchor.py: median of repeats for at least --seconds after a warm-up.

Run: /tmp/pt/bin/python Benchmarks/precision_anchor.py [--only NAME…] [--parts torch ort] [--seconds S]
(needs torch, torchvision, onnx, onnxruntime from PyPI; nothing of it is a dependency of the Swift package).
"""
import argparse, json, os, statistics, sys, tempfile, time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
try:
    from torch_anchor import WORKLOADS, timeit  # the fp32 anchor's models and timing, so both measure the same thing
except ImportError as error:
    sys.exit(f"precision_anchor.py needs ../shared/bench/torch_anchor.py beside the repository: {error}")

NAMES = ["resnet20_32", "resnet18_224", "mobilenet_v2_224", "efficientnet_b0_224"]


def torch_figures(name, seconds, threads):
    make, shape, train_batch, infer_batch = WORKLOADS[name]
    rows = []
    for precision in ["fp32", "bf16"]:
        torch.manual_seed(0)
        model = make().to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        x = torch.randn(train_batch, *shape).to(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (train_batch,))
        enabled = precision == "bf16"

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()

        model.train()
        train_time, train_reps = timeit(step, seconds)
        model.eval()
        xi = torch.randn(infer_batch, *shape).to(memory_format=torch.channels_last)

        def infer():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                model(xi)

        infer_time, infer_reps = timeit(infer, seconds)
        rows.append({"workload": name, "framework": f"torch {torch.__version__}", "precision": precision,
                     "threads": threads, "train_batch": train_batch, "train_img_s": round(train_batch / train_time, 1),
                     "train_reps": train_reps, "infer_batch": infer_batch,
                     "infer_img_s": round(infer_batch / infer_time, 1), "infer_reps": infer_reps})
    return rows


def ort_figures(name, seconds, threads, folder):
    import numpy as np
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    make, shape, _, infer_batch = WORKLOADS[name]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(infer_batch, *shape)
    fp32_path = os.path.join(folder, f"{name}.onnx")
    int8_path = os.path.join(folder, f"{name}.int8.onnx")
    torch.onnx.export(model, (x,), fp32_path, opset_version=17, input_names=["input"], output_names=["logits"], dynamo=False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            generator = np.random.default_rng(1)
            self.batches = iter([{"input": generator.standard_normal((infer_batch, *shape)).astype(np.float32)}
                                 for _ in range(16)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(fp32_path, int8_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    rows = []
    feed = {"input": x.numpy()}
    for precision, path in [("fp32", fp32_path), ("int8", int8_path)]:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        infer_time, infer_reps = timeit(lambda: session.run(None, feed), seconds)
        rows.append({"workload": name, "framework": f"onnxruntime {ort.__version__}", "precision": precision,
                     "threads": threads, "infer_batch": infer_batch, "infer_img_s": round(infer_batch / infer_time, 1),
                     "infer_reps": infer_reps})
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=NAMES)
    parser.add_argument("--parts", nargs="*", default=["torch", "ort"])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.only:
            if name not in NAMES:
                sys.exit(f"unknown workload {name}; known: {', '.join(NAMES)}")
            rows = (torch_figures(name, args.seconds, args.threads) if "torch" in args.parts else []) \
                + (ort_figures(name, args.seconds, args.threads, folder) if "ort" in args.parts else [])
            for row in rows:
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
