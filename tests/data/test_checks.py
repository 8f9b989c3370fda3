"""The data set checks made before training or evaluation reads anything (data/checks.py): every annotation's
keypoint count, every listed image's file and header size; and errors from DataLoader worker processes,
which reach the caller as the same one line as without workers."""
from __future__ import annotations

import json
import struct

import pytest
from torch.utils.data import DataLoader

from higherhrnet.data import DatasetError, build_dataset
from higherhrnet.images import ImageError

from conftest import tiny_cfg
from tinycoco import person_annotation, write_tiny_coco


def cfg_for(root, *opts):
    return tiny_cfg("DATASET.ROOT", str(root), "DATASET.TRAIN", "train", "DATASET.TEST", "train", *opts)


def annotation_file(root):
    return root / "annotations" / "person_keypoints_train.json"


def edit_annotations(root, change):
    data = json.loads(annotation_file(root).read_text())
    change(data)
    annotation_file(root).write_text(json.dumps(data))


# An APP1 Exif segment holding only Orientation 6 (shown turned 90 degrees clockwise).
EXIF_TURNED = (b"\xff\xe1" + struct.pack(">H", 2 + 6 + 26) + b"Exif\x00\x00" + b"II*\x00" + struct.pack("<IH", 8, 1)
               + struct.pack("<HHII", 0x0112, 3, 1, 6) + struct.pack("<I", 0))


def truncated_jpeg(path):
    """Cut the file's pixel data short: its header (and size) stays right, only decoding it fails."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_a_good_data_set_passes(tmp_path):
    write_tiny_coco(tmp_path)
    assert len(build_dataset(cfg_for(tmp_path))) == 4
    assert len(build_dataset(cfg_for(tmp_path), is_train=False)) == 4


def test_missing_images_are_counted_and_the_first_named(tmp_path):
    write_tiny_coco(tmp_path, num_images=6)
    for image_id in (100, 101, 102, 104):
        (tmp_path / "images" / "train" / f"{image_id:012d}.jpg").unlink()
    with pytest.raises(DatasetError) as error:
        build_dataset(cfg_for(tmp_path))
    assert str(error.value) == (f"{tmp_path / 'images' / 'train'}: 4 of 6 images listed in "
                                f"{annotation_file(tmp_path)} cannot be used: 4 missing (000000000100.jpg, "
                                "000000000101.jpg, 000000000102.jpg, ...)")


def test_every_kind_of_image_problem_is_reported_in_one_line(tmp_path):
    write_tiny_coco(tmp_path, num_images=5)
    (tmp_path / "images" / "train" / "000000000100.jpg").unlink()
    (tmp_path / "images" / "train" / "000000000103.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JF")

    def change(data):
        data["images"][1]["width"] = 100          # the file is 128x96
        del data["images"][2]["height"]

    edit_annotations(tmp_path, change)
    with pytest.raises(DatasetError) as error:
        build_dataset(cfg_for(tmp_path))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'images' / 'train'}: 4 of 5 images listed in ")
    assert message.endswith("cannot be used: 1 missing (000000000100.jpg); 1 not of the annotated size "
                            "(000000000101.jpg is 128x96, annotated 100x96); 1 without width and height in the "
                            "annotation file (image id 102); 1 unreadable (000000000103.jpg: truncated JPEG header "
                            "(segment 0xe0 runs past the end))")


def test_the_images_evaluation_reads_are_checked_too(tmp_path):
    write_tiny_coco(tmp_path, split="val", num_images=2)
    (tmp_path / "images" / "val" / "000000000101.jpg").unlink()
    with pytest.raises(DatasetError, match="1 of 2 images listed in .*person_keypoints_val.json cannot be used: "
                                           r"1 missing \(000000000101.jpg\)"):
        build_dataset(tiny_cfg("DATASET.ROOT", str(tmp_path), "DATASET.TEST", "val"), is_train=False)


def test_only_the_images_training_reads_are_checked(tmp_path):
    write_tiny_coco(tmp_path, num_images=3)

    def add_unannotated_image(data):
        data["images"].append({"id": 999, "file_name": "not_there.jpg", "width": 10, "height": 10})

    edit_annotations(tmp_path, add_unannotated_image)
    assert len(build_dataset(cfg_for(tmp_path))) == 3            # left out of training: not read, not checked
    with pytest.raises(DatasetError, match=r"1 missing \(not_there.jpg\)"):
        build_dataset(cfg_for(tmp_path, "DATASET.TRAIN_ON_EMPTY_IMAGES", "True"))


def test_check_images_false_leaves_the_problem_to_the_loader(tmp_path):
    write_tiny_coco(tmp_path)
    edit_annotations(tmp_path, lambda data: data["images"][0].update(width=100))
    dataset = build_dataset(cfg_for(tmp_path, "DATASET.CHECK_IMAGES", "False"))
    with pytest.raises(ImageError, match="image is 128x96 but the annotation file says 100x96"):
        dataset[0]


@pytest.mark.parametrize("annotated", ["stored", "shown"])
def test_exif_orientation_is_judged_as_the_loader_reads_the_image(tmp_path, annotated):
    """The loader reads stored pixels (EXIF orientation ignored, as COCO's annotations are); the check agrees
    with it whichever size the annotation file gives."""
    write_tiny_coco(tmp_path, num_images=1)
    path = tmp_path / "images" / "train" / "000000000100.jpg"
    jpeg = path.read_bytes()                                            # 128x96
    path.write_bytes(jpeg[:2] + EXIF_TURNED + jpeg[2:])                  # shown turned: 96x128
    if annotated == "shown":
        edit_annotations(tmp_path, lambda data: data["images"][0].update(width=96, height=128))
    try:
        dataset = build_dataset(cfg_for(tmp_path))
    except DatasetError as e:
        assert annotated == "shown" and "000000000100.jpg is 128x96, annotated 96x128" in str(e)
        dataset = build_dataset(cfg_for(tmp_path, "DATASET.CHECK_IMAGES", "False"))
        with pytest.raises(ImageError, match="image is 128x96 but the annotation file says 96x128"):
            dataset.source.load_image(0)
    else:
        assert annotated == "stored" and dataset.source.load_image(0).shape == (96, 128, 3)


def test_every_annotation_keypoint_count_is_checked_not_only_the_first_1000(tmp_path):
    write_tiny_coco(tmp_path, num_images=2)

    def many_annotations(data):
        for ann_id in range(len(data["annotations"]) + 1, 2001):
            data["annotations"].append(person_annotation(ann_id, 100, [10, 10, 20, 40]))
        data["annotations"][1499]["keypoints"] = data["annotations"][1499]["keypoints"][:48]   # 16 joints
        data["annotations"][1799]["keypoints"] = [0.0] * 54
        del data["annotations"][1899]["keypoints"]
        data["annotations"][1999]["keypoints"] = None

    edit_annotations(tmp_path, many_annotations)
    with pytest.raises(DatasetError) as error:
        build_dataset(cfg_for(tmp_path, "DATASET.CHECK_IMAGES", "False"))
    assert str(error.value) == (f"{annotation_file(tmp_path)}: 4 of 2000 annotations do not have 51 keypoint values "
                                "(x, y, visibility for each of the 17 joints of 'coco'): annotation 1500 has 48, "
                                "annotation 1800 has 54, annotation 1900 has 0, ...")


def test_an_annotation_without_a_keypoint_list_is_named(tmp_path):
    write_tiny_coco(tmp_path, num_images=1)
    edit_annotations(tmp_path, lambda data: data["annotations"][2].update(keypoints=None))
    with pytest.raises(DatasetError, match=r"1 of 4 annotations .*: annotation 3 has no list of keypoint values$"):
        build_dataset(cfg_for(tmp_path))


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

    # Two items for two workers: with one worker and one item, shutting the workers down after the error often
    # trips over the clean-up of multiprocessing's queue feeder thread (pytest then warns of an exception in
    # QueueFeederThread: CPython's and torch's, not a failure); two of each measured far less often, not never.
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
