#!/usr/bin/env python3
"""Export randomly initialised torchvision models for Fovea's parity test.

For each model name writes, into OUTPUT_DIR:
  <name>.safetensors          the eval-mode state_dict (float32; num_batches_tracked stays int64)
  <name>.io.safetensors       "input" (batch, 3, size, size) and "logits" (batch, classes) from eval mode
  <name>.onnx                 the same eval-mode model from torch.onnx.export (opset 17, dynamic batch), for the
                              ONNX import parity (ParityTests: Fovea's import of it against these logits)

Each model gets its own input size and constructor options (GoogLeNet without its auxiliary heads, as Fovea's
registry builds it). Nothing is downloaded: weights come from torchvision's own initialisation under a fixed seed.
Batch-norm running statistics and affine parameters are randomised too, so eval mode exercises them rather than the
identity 0/1 defaults.

Usage: /tmp/pt/bin/python scripts/parity/export_torchvision.py OUTPUT_DIR [model ...]
Then:  FOVEA_PARITY_DIR=OUTPUT_DIR swift test --filter Parity
"""
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

# name: (input size, constructor options); mobilenet_v1 has no torchvision definition.
MODELS = {
    "alexnet": (224, {}),
    "vgg11_bn": (224, {}),
    "resnet18": (224, {}),
    "resnet50": (224, {}),
    "resnext50_32x4d": (224, {}),
    "wide_resnet50_2": (224, {}),
    "googlenet": (224, {"aux_logits": False, "init_weights": True}),
    "inception_v3": (299, {"init_weights": False}),  # truncated-normal init (std 0.1) gives logits ~1e13
    "mobilenet_v2": (224, {}),
    "mobilenet_v3_small": (224, {}),
    "mobilenet_v3_large": (224, {}),
    "efficientnet_b0": (224, {}),
}


def export(name: str, directory: str, seed: int = 0, batch: int = 2) -> None:
    size, options = MODELS[name]
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None, **options)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.num_batches_tracked.fill_(7)
    model.eval()
    images = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        logits = model(images)
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, os.path.join(directory, f"{name}.safetensors"))
    save_file({"input": images.contiguous(), "logits": logits.contiguous()},
              os.path.join(directory, f"{name}.io.safetensors"))
    # The TorchScript-based exporter: what torch.onnx.export has emitted for years (Shape/Gather/… flattening chains).
    torch.onnx.export(model, (images,), os.path.join(directory, f"{name}.onnx"), opset_version=17, dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    print(f"{name}: {len(state)} tensors, input {size}x{size}, logits {tuple(logits.shape)}, "
          f"|logits| max {logits.abs().max().item():.4g}")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    torch.set_num_threads(2)
    for name in sys.argv[2:] or MODELS:
        export(name, directory)


if __name__ == "__main__":
    main()
