"""Errors from DataLoader worker processes reach the caller as the same one line as without workers."""
from __future__ import annotations

import pytest
from torch.utils.data import DataLoader

from higherhrnet.data import DatasetError, build_dataset
from higherhrnet.images import ImageError

from conftest import tiny_cfg
from tinycoco import write_tiny_coco


def cfg_for(root, *opts):
    return tiny_cfg("DATASET.ROOT", str(root), "DATASET.TRAIN", "train", "DATASET.TEST", "train", *opts)


def truncated_jpeg(path):
    """Cut the file's pixel data short: its header (and size) stays right, only decoding it fails."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def loader_error(loader) -> tuple[type, str]:
    """The type and message of the error iterating `loader` raises. Nothing refers to the loader's iterator
    once this returns, so its worker processes are shut down here rather than in a later test."""
    try:
        list(loader)
    except Exception as e:
        return type(e), str(e)
    raise AssertionError("the loader raised nothing")


@pytest.mark.parametrize("is_train", [True, False])
def test_an_error_in_a_loader_worker_is_the_same_one_line_as_without_workers(tmp_path, is_train):
    """A file whose header is right (so the check passes) but whose pixel data is cut short: only decoding it
    fails, in a DataLoader worker process here."""
    write_tiny_coco(tmp_path, num_images=2)
    path = tmp_path / "images" / "train" / "000000000101.jpg"
    truncated_jpeg(path)
    dataset = build_dataset(cfg_for(tmp_path), is_train=is_train)
    errors = [loader_error(DataLoader(dataset, batch_size=2, num_workers=workers, collate_fn=lambda batch: batch))
              for workers in (0, 2)]
    expected = (ImageError, f"{path}: truncated JPEG (no end-of-image marker after the image data)")
    assert errors == [expected, expected]


def test_a_dataset_error_from_a_worker_keeps_its_message_and_other_errors_keep_theirs():
    from higherhrnet.errors import OneLineError

    # Two items for two workers: with one worker and one item, torch's shutdown after the error now and then
    # races its queue feeder thread (an unhandled-thread-exception warning from multiprocessing, not ours).
    class Failing:
        def __init__(self, error):
            self.error = error

        def __len__(self):
            return 2

        def __getitem__(self, index):
            raise self.error

    assert loader_error(DataLoader(Failing(DatasetError("x.json: annotation 7 has 3 values")), num_workers=2)) == (
        DatasetError, "x.json: annotation 7 has 3 values")
    kind, message = loader_error(DataLoader(Failing(ValueError("plain")), num_workers=2))
    assert kind is ValueError                                   # not ours: the worker's traceback stays
    assert "Caught ValueError in DataLoader worker process 0" in message and "Traceback" in message
    # Text that merely looks like a worker's is kept whole.
    assert str(OneLineError("Caught OneLineError in a sentence")) == "Caught OneLineError in a sentence"
    assert OneLineError("a", 1).args == ("a", 1)
