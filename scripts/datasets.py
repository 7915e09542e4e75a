"""The two datasets the models of this repository are trained on, both shipped by Debian.

- digits: scikit-learn's bundled 8x8 handwritten digits (python3-sklearn; 1797 images of
  10 classes, pixel values 0..16). Split: a seeded permutation, the first 360 images
  are the test set, the rest the training set.
- fortunes: the English text of the `fortunes` package (/usr/share/games/fortunes; every
  database but `ascii-art`, whose drawings are not text). Each fortune (the text between
  two `%` lines) is cleaned to printable ASCII and newlines, the fortunes are shuffled
  with a seed and split 90/5/5 into train, validation and test, each joined with
  "\\n%\\n" (the files' own separator) into one string. Characters map to ids 0..95:
  "\\n" is 0, printable ASCII 32..126 are 1..95.

Both are deterministic: the same machine-independent seed gives the same split.
"""
import os
import random
import re

import numpy as np

FORTUNE_DIR = "/usr/share/games/fortunes"
FORTUNE_EXCLUDED = {"ascii-art"}
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
CHAR_ID = {c: i for i, c in enumerate(VOCAB)}
DIGITS_TEST = 360


class DataError(Exception):
    pass


def digits(seed=0):
    """(train_x, train_y, test_x, test_y): float32 images [n, 8, 8] in [0, 1], int64 labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DataError("scikit-learn is missing: install python3-sklearn "
                        "(scripts/setup.sh does) and run with /usr/bin/python3") from e
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    labels = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(images))
    test, train = order[:DIGITS_TEST], order[DIGITS_TEST:]
    return images[train], labels[train], images[test], labels[test]


_OVERSTRIKE = re.compile(".\b")


def clean_fortune(text):
    """Printable ASCII and newlines only: overstrikes resolved, tabs to spaces, the rest dropped."""
    text = _OVERSTRIKE.sub("", text).replace("\t", "    ")
    return "".join(c for c in text if c in CHAR_ID).strip("\n")


def fortunes(seed=0, directory=FORTUNE_DIR):
    """{"train", "validation", "test"} -> text, from every fortune database in `directory`."""
    if not os.path.isdir(directory):
        raise DataError(f"{directory}: not found: install the Debian package `fortunes` "
                        "(scripts/setup.sh does)")
    items = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if "." in name or name in FORTUNE_EXCLUDED or not os.path.isfile(path) or os.path.islink(path):
            continue
        with open(path, encoding="latin-1") as f:
            for raw in f.read().split("\n%\n"):
                text = clean_fortune(raw)
                if text and text != "%":
                    items.append(text)
    if not items:
        raise DataError(f"{directory}: no fortunes found")
    random.Random(seed).shuffle(items)
    n = len(items)
    cut1, cut2 = int(0.9 * n), int(0.95 * n)
    parts = {"train": items[:cut1], "validation": items[cut1:cut2], "test": items[cut2:]}
    return {k: "\n%\n".join(v) + "\n%\n" for k, v in parts.items()}


def encode(text):
    """Character ids (int64 numpy array); every character must be in VOCAB."""
    try:
        return np.fromiter((CHAR_ID[c] for c in text), dtype=np.int64, count=len(text))
    except KeyError as e:
        raise DataError(f"character {e.args[0]!r} is not in the vocabulary") from None


def decode(ids):
    return "".join(VOCAB[int(i)] for i in ids)
