"""ONNX Runtime's accuracy on Fashion-MNIST's test set for a Fovea model exported to ONNX, in fp32 and as ONNX Runtime's
own static int8 model (quantize_static, QDQ, per-channel symmetric weights, per-tensor activations calibrated on the
first N training images) — the comparison for `fovea quantize` (scripts/precision-accuracy.sh).

Images are read from Debian's dataset-fashion-mnist and preprocessed as the model's sidecar says (pixels / 255, then
(x − mean) / std), as `fovea evaluate` does. Prints one JSON object: fp32_accuracy, int8_accuracy, test images.
Run: PYTHON scripts/ort_int8_accuracy.py MODEL.onnx SIDECAR.json [--calibration-images N] [--data-dir DIR]
(PYTHON with onnxruntime and numpy from PyPI; nothing of it is a dependency of the Swift package).
"""
import argparse, gzip, json, os, sys, tempfile

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("sidecar")
    parser.add_argument("--calibration-images", type=int, default=1000)
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    sidecar = json.load(open(args.sidecar))
    mean, std = np.float32(sidecar["mean"][0]), np.float32(sidecar["std"][0])

    def prepare(images):
        return ((images.astype(np.float32) / 255 - mean) / std)[:, None, :, :]

    train = prepare(idx(os.path.join(args.data_dir, "train-images-idx3-ubyte.gz"))[:args.calibration_images])
    test = prepare(idx(os.path.join(args.data_dir, "t10k-images-idx3-ubyte.gz")))
    labels = idx(os.path.join(args.data_dir, "t10k-labels-idx1-ubyte.gz"))
    input_name = "input"

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{input_name: train[i:i + 100]} for i in range(0, len(train), 100)])

        def get_next(self):
            return next(self.batches, None)

    def accuracy(path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        correct = 0
        for i in range(0, len(test), 500):
            logits = session.run(None, {input_name: test[i:i + 500]})[0]
            correct += int((logits.argmax(axis=1) == labels[i:i + 500]).sum())
        return correct / len(test)

    with tempfile.TemporaryDirectory() as folder:
        int8_path = os.path.join(folder, "int8.onnx")
        quantize_static(args.model, int8_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        print(json.dumps({"fp32_accuracy": accuracy(args.model), "int8_accuracy": accuracy(int8_path),
                          "test_images": len(test), "calibration_images": len(train),
                          "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    sys.exit(main())
