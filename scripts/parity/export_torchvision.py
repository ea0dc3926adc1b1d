#!/usr/bin/env python3
"""Export a randomly initialised torchvision model for Fovea's parity test.

For each model name writes, into OUTPUT_DIR:
  <name>.safetensors          the eval-mode state_dict (float32; num_batches_tracked stays int64)
  <name>.io.safetensors       "input" (batch, 3, size, size) and "logits" (batch, classes) from eval mode

Nothing is downloaded: weights come from torchvision's own initialisation under a fixed seed. Batch-norm
running statistics are randomised too, so eval mode exercises them rather than the identity 0/1 defaults.

Usage: /tmp/pt/bin/python scripts/parity/export_torchvision.py OUTPUT_DIR [model ...]
Then:  FOVEA_PARITY_DIR=OUTPUT_DIR swift test --filter Parity
"""
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

DEFAULT_MODELS = ["alexnet", "vgg11_bn", "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2"]


def export(name: str, directory: str, seed: int = 0, batch: int = 2, size: int = 224) -> None:
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None)
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
    print(f"{name}: {len(state)} tensors, logits {tuple(logits.shape)}, |logits| max {logits.abs().max().item():.4g}")


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
