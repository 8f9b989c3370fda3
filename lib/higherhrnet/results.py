"""What a Predictor finds: `Person` (one pose) and `Result` (the people of one image or video frame, with
what is needed to draw, save and export them).

    result = predictor("photo.jpg")
    result.plot()                      # (H, W, 3) uint8 RGB with the people drawn
    result.save("photo_pose.jpg")      # the drawing, written whole
    result.to_json()                   # {"image", "width", "height", "keypoint_names", "model", "people": [...]}
    result.to_coco(image_id=1)         # COCO keypoint results, one dict per person
    result[0]["left_wrist"]            # x, y, value of a named joint of the best person

A Result is a list of Person, so code that treated a prediction as a list keeps working.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import cv2
import numpy as np

from .fileio import write_bytes
from .keypoints import KeypointSpec
from .oks import pose_box, visible_joints
from .vis import draw_people

__all__ = ["Person", "Result"]


@dataclass
class Person:
    """keypoints (J, 3) float32: x, y in original image pixels, joint value (heatmap peak).
    score: the person score (mean joint value). tags (J, T): the associative-embedding tags.
    names: the joints' names (the keypoint set's), for `person["left_wrist"]`.
    Joints that were never found have value 0; their x, y are still mapped to the image, as the
    reference does."""

    keypoints: np.ndarray
    score: float
    tags: np.ndarray
    names: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __getitem__(self, joint: str | int) -> np.ndarray:
        """(3,) x, y, value of a joint, by name ("left_wrist") or index."""
        if isinstance(joint, str):
            if joint not in self.names:
                known = ", ".join(self.names) if self.names else "none (this person was made without names)"
                raise KeyError(f"no joint named {joint!r}; the joints are: {known}")
            joint = self.names.index(joint)
        return self.keypoints[joint]

    def box(self, threshold: float = 0.2) -> tuple[float, float, float, float]:
        """(x, y, w, h) in image pixels around the joints visible at `threshold` (oks.visible_joints: value
        >= threshold and > 0), around all joints when none is: the one box of a person (oks.pose_box), in
        the JSON, the COCO results and OKS alike."""
        x, y, w, h = pose_box(self.keypoints, visible_joints(self.keypoints, threshold))
        return float(x), float(y), float(w), float(h)

    def to_coco(self, image_id: int, category_id: int = 1, threshold: float = 0.2) -> dict:
        """A COCO keypoint result: image_id, category_id, keypoints [x, y, v] * J, score, bbox (`box`; COCO's
        keypoint evaluation does not read it). Plain Python numbers (JSON-serialisable)."""
        kpts = self.keypoints.astype(np.float64)
        return {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": [float(v) for v in kpts.reshape(-1)],
            "score": float(self.score),
            "bbox": list(self.box(threshold)),
        }

    def to_json(self, threshold: float = 0.2) -> dict:
        """Compact, rounded JSON: score, box (x, y, w, h around the joints visible at `threshold`: `box`) and
        keypoints as [x, y, value] triples, pixels to 0.1 and values to 0.001."""
        return {
            "score": round(float(self.score), 3),
            "box": [round(v, 1) for v in self.box(threshold)],
            "keypoints": [[round(float(x), 1), round(float(y), 1), round(float(v), 3)] for x, y, v in self.keypoints],
        }


class Result(list):
    """The people found in one image or video frame (a list of Person; best first unless the Predictor is
    raw), and what they were found in.

    image: the (h, w, 3) uint8 RGB array the network saw: the image itself, or a reduced copy of a very
    large file (`downscale` < 1). The people are in the ORIGINAL image's pixels, of size `size` (width,
    height). keypoints: their keypoint set. name: the file name (None for arrays). model: what predicted them
    (name, thresholds: Predictor.describe()), copied into to_json(). track_ids: per person, the id a
    tracker gave it across frames (streams), else None. frame, time: a video frame's index and time (s).
    """

    def __init__(self, people: Sequence[Person], image: np.ndarray, keypoints: KeypointSpec, name: str | None = None,
                 size: tuple[int, int] | None = None, downscale: float = 1.0, model: Mapping | None = None,
                 track_ids: Sequence[int] | None = None, frame: int | None = None, time: float | None = None):
        super().__init__(people)
        self.image, self.keypoints, self.name = image, keypoints, name
        self.size = size or (image.shape[1], image.shape[0])
        self.downscale, self.model = downscale, dict(model or {})
        self.track_ids = None if track_ids is None else [int(t) for t in track_ids]
        self.frame, self.time = frame, time

    @property
    def people(self) -> list[Person]:
        return list(self)

    def plot(self, threshold: float = 0.2, labels: bool | None = None) -> np.ndarray:
        """A copy of the image with every person drawn (vis.draw_people): (h, w, 3) uint8 RGB, at the size
        the network saw. Joints below `threshold` are not drawn. Tracked people keep their track's colour and,
        by default, a "#id" label."""
        people = self
        if self.downscale != 1.0:
            people = [replace(p, keypoints=p.keypoints * np.float32(self.downscale)) for p in self]
        if labels is None:
            labels = self.track_ids is not None
        return draw_people(self.image, people, self.keypoints, threshold, ids=self.track_ids, labels=labels)

    def save(self, path: str | os.PathLike, threshold: float = 0.2) -> str:
        """Write plot(threshold) to `path` (.jpg, .png, ... by its extension), whole or not at all; returns the
        path."""
        path = os.fspath(path)
        extension = os.path.splitext(path)[1] or ".jpg"
        ok, encoded = cv2.imencode(extension, cv2.cvtColor(self.plot(threshold), cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"cannot encode a picture as {extension!r} for {path}: use .jpg or .png")
        write_bytes(encoded.tobytes(), path)
        return path

    def to_json(self, threshold: float = 0.2, image_id: int | None = None) -> dict:
        """Plain JSON values: for an image {"image", "image_id" (when given), "width", "height",
        "keypoint_names", "inference_downscale", "model", "people"}; for a video frame {"frame", "time",
        "people"} (with each person's "track_id" when tracked). People as Person.to_json(threshold)."""
        people = [p.to_json(threshold) for p in self]
        if self.track_ids is not None:
            people = [{"track_id": t, **p} for t, p in zip(self.track_ids, people)]
        if self.frame is not None:
            return {"frame": self.frame, "time": round(float(self.time or 0.0), 3), "people": people}
        record = {"image": self.name}
        if image_id is not None:
            record["image_id"] = int(image_id)
        record.update({"width": int(self.size[0]), "height": int(self.size[1]),
                       "keypoint_names": list(self.keypoints.names), "inference_downscale": round(self.downscale, 6),
                       "model": self.model, "people": people})
        return record

    def to_coco(self, image_id: int, category_id: int = 1, threshold: float = 0.2) -> list[dict]:
        """COCO keypoint results (Person.to_coco), scores rounded to 5 digits."""
        return [{**p.to_coco(image_id, category_id, threshold), "score": round(float(p.score), 5)} for p in self]
