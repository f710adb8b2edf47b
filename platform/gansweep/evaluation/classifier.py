"""The domain classifier: the feature network of the evaluation protocol (no Inception weights here).

A small CNN trained once on the clean training split of a source (less its validation split: the cheap FID's reference
images stay as unseen by the feature network as the test split's), cached under
CACHE/classifiers/<source>-<fingerprint>/ (CACHE a local folder or a URI; model.pt: the state dict, read back with
torch.load(weights_only=True); record.json: what it was trained on and its test accuracy, written last, so a folder
without it is absent). The
fingerprint covers the source, its resolved root, the limit, the validation split, the architecture and its version,
the training recipe, the epochs and the seed, so every metric computed on its features can name the
network it used. Plain torch, no Ray.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from gansweep import storage
from gansweep.config.schema import DataConfig
from gansweep.data import cache
from gansweep.data.source_base import DataSourceError
from gansweep.data.sources import describe_source, load_source, resolved_root
from gansweep.data.validation import Holdout, held_out_indices
from gansweep.nets.domain_classifier import DomainClassifier

ARCHITECTURE = "domain-cnn"
ARCHITECTURE_VERSION = 1  # bump when DomainClassifier or the training recipe changes
BATCH_SIZE = 128
LEARNING_RATE = 3e-3
EVAL_BATCH = 1024
HOLDOUT_FRACTION = 0.1  # sources without a test split (parquet) are scored on held-out training images


@dataclass
class ClassifierRecord:
    model: DomainClassifier  # in eval mode
    fingerprint: str
    test_accuracy: float
    n_train: int
    path: str | None  # the cache folder (None when trained without a cache)
    trained_now: bool = True  # False when read back from the cache
    source: str = ""
    root: str | None = None
    limit: int | None = None
    seed: int = 0
    epochs: int = 0
    accuracy_split: str = "test"  # "test", or "holdout" for sources without a test split
    n_test: int = 0
    num_classes: int = 0
    image_shape: tuple[int, int, int] = (1, 28, 28)
    train_seconds: float = 0.0
    architecture: str = f"{ARCHITECTURE}-v{ARCHITECTURE_VERSION}"
    image_size: int | None = None  # the size image sources were resized to (data.image_size)
    validation: list | None = None  # [size, seed] of the validation split left out of its training images

    def to_json(self) -> dict:
        """What record.json keeps: every field but the model and the run-time ones, plus the recipe."""
        saved = {name: getattr(self, name) for name in _SAVED_FIELDS}
        return {**saved, "image_shape": list(self.image_shape), "feature_dim": self.model.feature_dim,
                "recipe": _recipe()}


_SAVED_FIELDS = [f.name for f in fields(ClassifierRecord) if f.name not in ("model", "path", "trained_now")]


def _recipe() -> dict:
    return {
        "optimizer": "adam", "lr": LEARNING_RATE, "schedule": "cosine", "batch_size": BATCH_SIZE,
        "holdout": HOLDOUT_FRACTION,
    }


def classifier_fingerprint(
    source: str, root: str | None, seed: int = 0, epochs: int = 3, limit: int | None = None,
    image_size: int | None = None, holdout: Holdout = Holdout(0, 0),
) -> str:
    """sha256[:16] of the source, its resolved root, the limit, the architecture and recipe, epochs and seed
    (and the image size, for image sources resized to data.image_size, and the validation split held out)."""
    key = {
        "source": source,
        "root": resolved_root(source, root),
        "limit": limit,
        "architecture": ARCHITECTURE,
        "architecture_version": ARCHITECTURE_VERSION,
        "recipe": _recipe(),
        "epochs": epochs,
        "seed": seed,
    }
    if image_size is not None:
        key["image_size"] = image_size
    if holdout.size:  # added only with a validation split: the fingerprints of classifiers without one stay valid
        key["validation"] = list(holdout)
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _splits(source: str, root: str | None, limit: int | None, image_size: int | None, holdout: Holdout):
    """(train images, train labels, eval images, eval labels, num_classes, eval split name), uint8 images; the
    training images less HOLDOUT's validation split."""
    train = load_source(source, root, split="train", limit=limit, image_size=image_size)
    if holdout.size:
        n_split = describe_source(source, root, image_size).n_images
        keep = np.ones(len(train.images), dtype=bool)
        held = held_out_indices(n_split, holdout, source)
        keep[held[held < len(keep)]] = False
        train = replace(train, images=train.images[keep], labels=train.labels[keep])
    if train.num_classes < 2:
        raise DataSourceError(f"{source}: the domain classifier needs labelled images of at least two classes")
    try:
        test = load_source(source, root, split="test", image_size=image_size)
        if (
            test.images.shape[1:] != train.images.shape[1:]
            or test.num_classes != train.num_classes
            or (test.labels < 0).any()
        ):
            raise DataSourceError(f"{source}: the test split has other image shapes, classes or unlabelled images")
        return train.images, train.labels, test.images, test.labels, train.num_classes, "test"
    except DataSourceError:
        if source not in ("parquet", "image_folder"):
            raise
    # No usable test split: hold out every k-th training image (k = 1 / HOLDOUT_FRACTION), spread over the
    # whole set, since image folders are read class by class.
    step = int(round(1 / HOLDOUT_FRACTION))
    held = np.arange(len(train.images)) % step == step - 1
    if held.sum() == 0 or (~held).sum() < 2:
        raise DataSourceError(f"{source}: too few images ({len(train.images)}) to hold some out for the accuracy")
    return (
        train.images[~held], train.labels[~held], train.images[held], train.labels[held],
        train.num_classes, "holdout",
    )


@torch.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy on uint8 (N, C, H, W) images."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(images), EVAL_BATCH):
        x = torch.from_numpy(images[start : start + EVAL_BATCH]).float().div_(255.0)
        y = torch.from_numpy(labels[start : start + EVAL_BATCH])
        correct += int((model(x).argmax(1) == y).sum())
    model.train(was_training)
    return correct / len(images)


def train_classifier(
    source: str,
    root: str | None,
    seed: int = 0,
    epochs: int = 3,
    limit: int | None = None,
    progress: bool = True,
    image_size: int | None = None,
    holdout: Holdout = Holdout(0, 0),
) -> ClassifierRecord:
    """Train a DomainClassifier on the clean training split of `source` less HOLDOUT's validation split; score it on
    the test split.

    Deterministic given the seed (the global torch RNG is left as it was).
    """
    if epochs < 1:
        raise ValueError(f"epochs={epochs} must be >= 1")
    fingerprint = classifier_fingerprint(source, root, seed, epochs, limit, image_size, holdout)
    x_train, y_train, x_eval, y_eval, num_classes, eval_split = _splits(source, root, limit, image_size, holdout)
    n = len(x_train)
    images = torch.from_numpy(x_train)  # uint8; converted batch by batch
    labels = torch.from_numpy(y_train)
    if progress:  # an epoch takes minutes on a few CPUs: say what is happening before the first epoch's line
        print(f"classifier {source} [{fingerprint}]: training on {n} images, {epochs} epochs (once: it is cached)",
              file=sys.stderr, flush=True)
    start_time = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DomainClassifier(in_channels=x_train.shape[1], num_classes=num_classes)
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        steps = epochs * ((n + BATCH_SIZE - 1) // BATCH_SIZE)
        # Cosine decay of the learning rate to 0 over the run: the last steps settle the weights.
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
        )
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for epoch in range(epochs):
            order = torch.randperm(n, generator=generator)
            batches = range(0, n, BATCH_SIZE)
            bar = None
            if progress and sys.stderr.isatty():  # a bar on a terminal; one line per epoch in logs
                bar = tqdm(total=len(batches), desc=f"classifier {source} epoch {epoch + 1}/{epochs}", leave=False)
            total_loss, seen = 0.0, 0
            for begin in batches:
                index = order[begin : begin + BATCH_SIZE]
                if len(index) < 2:  # BatchNorm needs two samples
                    continue
                x = images[index].float().div_(255.0)
                loss = F.cross_entropy(model(x), labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += float(loss.detach()) * len(index)
                seen += len(index)
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
            if progress:
                print(
                    f"classifier {source} [{fingerprint}] epoch {epoch + 1}/{epochs}: "
                    f"loss {total_loss / max(seen, 1):.4f} ({time.perf_counter() - start_time:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )
    train_seconds = time.perf_counter() - start_time
    model.eval()
    acc = accuracy(model, x_eval, y_eval)
    if progress:
        print(f"classifier {source} [{fingerprint}]: {eval_split} accuracy {acc:.4f}", file=sys.stderr, flush=True)
    return ClassifierRecord(
        model=model,
        fingerprint=fingerprint,
        test_accuracy=acc,
        n_train=n,
        path=None,
        trained_now=True,
        source=source,
        root=resolved_root(source, root),
        limit=limit,
        seed=seed,
        epochs=epochs,
        accuracy_split=eval_split,
        n_test=len(x_eval),
        num_classes=num_classes,
        image_shape=tuple(int(s) for s in x_train.shape[1:]),
        train_seconds=train_seconds,
        image_size=image_size,
        validation=list(holdout) if holdout.size else None,
    )


def _load(folder: str, fingerprint: str) -> ClassifierRecord | None:
    """The cached classifier in `folder`, or None when it is absent or unreadable."""
    try:
        meta = json.loads(storage.read_text(storage.join(folder, "record.json")))
        if meta.get("fingerprint") != fingerprint:
            return None
        model = DomainClassifier(
            in_channels=int(meta["image_shape"][0]), num_classes=int(meta["num_classes"]),
            feature_dim=int(meta["feature_dim"]),
        )
        state = io.BytesIO(storage.read_bytes(storage.join(folder, "model.pt")))
        model.load_state_dict(torch.load(state, map_location="cpu", weights_only=True))
        # A field a record of an older version lacks takes its default (one without a validation split: None).
        record = ClassifierRecord(model=model.eval(), path=folder, trained_now=False,
                                  **{name: meta[name] for name in _SAVED_FIELDS if name in meta})
    except Exception:  # absent, cut off, of another shape: any unreadable cache is retrained
        return None
    record.image_shape = tuple(record.image_shape)
    return record


def load_or_train_classifier(
    source: str,
    root: str | None,
    seed: int = 0,
    epochs: int = 3,
    limit: int | None = None,
    progress: bool = True,
    cache_dir: Path | str | None = None,
    image_size: int | None = None,
    holdout: Holdout = Holdout(0, 0),
) -> ClassifierRecord:
    """The cached classifier for these arguments, trained and cached first when absent.

    `cache_dir` defaults to $GANSWEEP_CACHE or ~/.cache/gansweep. The returned record's `trained_now`
    says whether it was trained by this call.
    """
    fingerprint = classifier_fingerprint(source, root, seed, epochs, limit, image_size, holdout)
    folder = cache.classifier_folder(source, fingerprint, cache_dir)
    cached = _load(folder, fingerprint)
    if cached is not None:
        if progress:
            print(
                f"classifier {source} [{fingerprint}]: cached in {storage.display(folder)} "
                f"({cached.accuracy_split} accuracy {cached.test_accuracy:.4f})",
                file=sys.stderr,
                flush=True,
            )
        return cached
    record = train_classifier(
        source, root, seed=seed, epochs=epochs, limit=limit, progress=progress, image_size=image_size, holdout=holdout
    )
    # Each file written whole, record.json last (object storage has no rename): a reader never takes a folder whose
    # model is missing or cut off, and concurrent callers write the same classifier (the same recipe and seed).
    state = io.BytesIO()
    torch.save(record.model.state_dict(), state)
    storage.write_bytes(storage.join(folder, "model.pt"), state.getvalue())
    storage.write_text(storage.join(folder, "record.json"), json.dumps(record.to_json(), indent=2) + "\n")
    record.path = folder
    return record


def protocol_classifier(data: DataConfig, progress: bool = True) -> ClassifierRecord:
    """The protocol's domain classifier of DATA's source: trained on its clean training split less the validation
    split, cached; the cheap and the full evaluation score on the same one."""
    return load_or_train_classifier(data.name, data.root, image_size=data.image_size,
                                    cache_dir=cache.root(data.cache_dir), holdout=data.holdout, progress=progress)
