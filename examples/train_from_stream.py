"""Train a small softmax classifier from `augkit stream`, with nothing but NumPy.

    augkit stream recipes/light.yaml sample_data --size 32 --preprocess tf --epochs 20 -b 8 \
        | python examples/train_from_stream.py

augkit decodes, augments and batches in its own processes; this script only reads
(x, y) batches from stdin and takes gradient steps on a linear softmax model over the
flattened pixels. It stands for any training program, in any language that can read .npy.
"""

from __future__ import annotations

import sys

import numpy as np


class Pipe:
    """np.lib.format reads through .read() only what is not a real, seekable file."""

    def __init__(self, f):
        self.read = f.read


def batches(f):
    while f.peek(1):  # b"" once augkit has written the last batch
        yield np.lib.format.read_array(Pipe(f)), np.lib.format.read_array(Pipe(f))


def main() -> None:
    rng = np.random.default_rng(0)
    weights = bias = None
    lr, seen, correct, losses = 0.05, 0, 0, []
    for step, (x, y) in enumerate(batches(sys.stdin.buffer)):
        x = x.reshape(len(x), -1).astype(np.float32)
        if weights is None:
            n_classes = 4  # sample_data has 4 classes; a real script reads them from its dataset
            weights = rng.normal(0, 0.01, (x.shape[1], n_classes)).astype(np.float32)
            bias = np.zeros(n_classes, np.float32)
        logits = x @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        losses.append(float(-np.log(p[np.arange(len(y)), y] + 1e-9).mean()))
        correct += int((p.argmax(axis=1) == y).sum())
        seen += len(y)
        grad = p
        grad[np.arange(len(y)), y] -= 1
        grad /= len(y)
        weights -= lr * (x.T @ grad)
        bias -= lr * grad.sum(axis=0)
        if step % 10 == 0:
            print(f"step {step:4d}  loss {np.mean(losses[-10:]):.3f}", file=sys.stderr)
    if not losses:
        raise SystemExit("no batches on stdin: pipe `augkit stream ...` into this script")
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    print(f"{seen} images, {len(losses)} steps: loss {first:.3f} -> {last:.3f}, training accuracy {correct / seen:.2f}")


if __name__ == "__main__":
    main()
