#!/usr/bin/env python3
"""Export torchvision's training-time input pipeline on real images for Fovea's loader parity test.

For the first COUNT images of IMAGE_DIR/<class>/<file> (sorted), draws a RandomResizedCrop window with
torchvision's own sampler (scale 0.08-1, ratio 3/4-4/3, fixed seed) and mirrors every second image, then
computes what torchvision's training transform gives for that window: PIL decode and convert("RGB"),
crop + bilinear resize to SIZE, horizontal flip, ToTensor, Normalize(ImageNet mean and std).

Writes into OUTPUT_DIR:
  <n>.f32          the 3 x SIZE x SIZE float32 tensor, little-endian, C order
  manifest.json    one entry per image: path, top, left, height, width, flip, size, tensor

Usage: /tmp/pt/bin/python scripts/parity/export_torchvision_dataload.py IMAGE_DIR OUTPUT_DIR [COUNT] [SIZE]
Then:  FOVEA_LOADER_PARITY_DIR=OUTPUT_DIR swift test --filter LoaderParity
"""
import glob
import json
import os
import sys

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def export(image_dir: str, output_dir: str, count: int, size: int) -> None:
    os.makedirs(output_dir, exist_ok=True)
    paths = sorted(glob.glob(os.path.join(os.path.abspath(image_dir), "*", "*")))[:count]
    torch.manual_seed(0)
    entries = []
    for n, path in enumerate(paths):
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        top, left, height, width = T.RandomResizedCrop.get_params(image, (0.08, 1.0), (3 / 4, 4 / 3))
        flip = n % 2 == 1
        result = F.resized_crop(image, top, left, height, width, [size, size],
                                interpolation=T.InterpolationMode.BILINEAR, antialias=True)
        if flip:
            result = F.hflip(result)
        tensor = F.normalize(F.to_tensor(result), MEAN, STD)
        name = f"{n}.f32"
        tensor.numpy().astype("<f4").tofile(os.path.join(output_dir, name))
        entries.append({"path": path, "top": top, "left": left, "height": height, "width": width,
                        "flip": flip, "size": size, "tensor": name})
    with open(os.path.join(output_dir, "manifest.json"), "w") as manifest:
        json.dump(entries, manifest, indent=1)
    print(f"wrote {len(entries)} entries to {output_dir}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    export(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 100,
           int(sys.argv[4]) if len(sys.argv) > 4 else 224)
