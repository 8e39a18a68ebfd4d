"""Course data sets: one function per data set, same data on every machine.

    fetch(name) -> Path                     verified file: cache, offline mirror, or download
    locate(name) -> (Path, origin)          the same, and which of the three provided it
    ensure(names) -> {name: source}         a setup cell's data step: fetch what can be had,
                                            print the source of each, name the stand-ins
    mnist_splits(seed, val_size, source, limit) -> Splits
    dataloaders(splits, batch_size, device, seed) -> (train_loader, val_loader)
    digits_tensors() -> (images, labels)    scikit-learn digits as 28x28, no download
    time_machine(...) -> TimeMachine        character-level text, vocabulary, batches
    shapes_detection(...), shapes_segmentation(...) -> ShapesDataset
    ring_of_gaussians(...) -> RingOfGaussians
    adding_problem(...), copy_memory(...) -> (x, y)

Where files come from and how they are verified: dlcourse/datasets/fetching.py; which files
exist: registry.txt beside this module; sources and licences: data/README.md.
"""
from dlcourse.datasets.availability import FALLBACKS, ensure
from dlcourse.datasets.digits import digits_tensors
from dlcourse.datasets.fetching import (ChecksumError, DataError, DataUnavailableError, cache_dir,
                                     fetch, locate, mirror_dir, offline)
from dlcourse.datasets.gaussians import RingOfGaussians, ring_centers, ring_of_gaussians
from dlcourse.datasets.mnist import mnist_splits, mnist_tensors, mnist_test, read_idx
from dlcourse.datasets.registry import load_registry
from dlcourse.datasets.sequences import adding_problem, copy_memory
from dlcourse.datasets.shapes import CLASSES as SHAPE_CLASSES
from dlcourse.datasets.shapes import ShapesDataset, shapes_detection, shapes_segmentation
from dlcourse.datasets.splits import Splits, dataloaders, split_indices
from dlcourse.datasets.timemachine import TimeMachine, Vocab, sequence_batches, time_machine

__all__ = [
    "FALLBACKS", "SHAPE_CLASSES", "ChecksumError", "DataError", "DataUnavailableError",
    "RingOfGaussians", "ShapesDataset", "Splits", "TimeMachine", "Vocab", "adding_problem",
    "cache_dir", "copy_memory", "dataloaders", "digits_tensors", "ensure", "fetch", "load_registry",
    "locate", "mirror_dir", "offline",
    "mnist_splits", "mnist_tensors", "mnist_test", "read_idx", "ring_centers",
    "ring_of_gaussians", "sequence_batches", "shapes_detection", "shapes_segmentation",
    "split_indices", "time_machine",
]
