#!/usr/bin/env python3
"""Export randomly initialised torchvision Inception / MobileNet / EfficientNet models for Fovea's parity test.

Writes <name>.safetensors (eval-mode state_dict) and <name>.io.safetensors ("input", "logits") into OUTPUT_DIR,
in the same format as export_torchvision.py, with each model's own input size and constructor options
(GoogLeNet without its auxiliary heads, as Fovea's registry builds it). Batch-norm statistics and affine
parameters are randomised so that eval mode exercises them.

Usage: /tmp/pt/bin/python scripts/parity/export_torchvision_modern.py OUTPUT_DIR [model ...]
Then:  FOVEA_PARITY_DIR=OUTPUT_DIR swift test --filter ModernParity
"""
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

# name: (input size, constructor options)
MODELS = {
    "googlenet": (224, {"aux_logits": False, "init_weights": True}),
    "inception_v3": (299, {"init_weights": False}),  # truncated-normal init (std 0.1) gives logits ~1e13
    "mobilenet_v1": None,  # no torchvision definition
    "mobilenet_v2": (224, {}),
    "mobilenet_v3_small": (224, {}),
    "mobilenet_v3_large": (224, {}),
    "efficientnet_b0": (224, {}),
}
DEFAULT_MODELS = [name for name, spec in MODELS.items() if spec is not None]


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
    print(f"{name}: {len(state)} tensors, input {size}x{size}, |logits| max {logits.abs().max().item():.4g}")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    torch.set_num_threads(2)
    for name in sys.argv[2:] or DEFAULT_MODELS:
        export(name, directory)


if __name__ == "__main__":
    main()
