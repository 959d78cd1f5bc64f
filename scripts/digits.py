#!/usr/bin/env python3
"""Exports scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 10 classes, no
download) as an ImageFolder tree of 8-bit grayscale PNGs, with a fixed, seeded, stratified split:

    OUT/train/0/0000.png ... OUT/train/9/...    (1,437 images)
    OUT/test/0/...       ... OUT/test/9/...     (360 images)

Pixel values 0..16 become 0..255 (v * 255 / 16, rounded). Idempotent: an existing, complete
export with the same stamp is left alone. `archc-run train specs/digits/resnext_digits.arch
--data OUT --recipe recipes/digits.toml` trains on it.
"""
import argparse
import os
import shutil

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

STAMP = "sklearn-digits v1: test_size=360, random_state=0, stratified"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/digits")
    args = ap.parse_args()
    stamp = os.path.join(args.out, "STAMP")
    if os.path.exists(stamp) and open(stamp).read().strip() == STAMP:
        return
    shutil.rmtree(args.out, ignore_errors=True)
    d = load_digits()
    x = np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    idx = np.arange(len(x))
    train, test = train_test_split(idx, test_size=360, random_state=0, stratify=d.target)
    for split, ids in (("train", train), ("test", test)):
        for c in range(10):
            os.makedirs(os.path.join(args.out, split, str(c)), exist_ok=True)
        for i in sorted(ids):
            Image.fromarray(x[i], mode="L").save(
                os.path.join(args.out, split, str(d.target[i]), f"{i:04d}.png")
            )
    with open(stamp, "w") as f:
        f.write(STAMP + "\n")
    print(f"digits: {len(train)} train and {len(test)} test images in {args.out}")


if __name__ == "__main__":
    main()
