"""Bad inputs and faults in `higherhrnet predict` / demo/inference.py, run as a user runs them: a folder of
damaged, huge, tiny and skipped files, a video cut in half, Ctrl-C and SIGTERM in the middle of a folder and of a
video, two runs writing into one folder at once, broken weights and unwritable outputs: a disk that fills up (at
the COCO file, mid-video) and an output folder made read-only mid-run."""
from __future__ import annotations

import errno
import json
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from higherhrnet.cli import main
from higherhrnet.video import VideoWriter, find_ffmpeg

from faultkit import (EXIT_STATUS, STOPPED, check_complete, hidden_files, libjpeg_warnings, make_models, noise_folder,
                      noise_image, png_header_only, run, start, stop, zero_filled_hole)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_models(tmp_path_factory.mktemp("models"))


def cut_video(path, frames=20, size=(64, 48)):
    """A video of `frames` frames at path (its extension as VideoWriter chose) whose second half is missing,
    as a partly copied file."""
    rng = np.random.default_rng(0)
    with VideoWriter(str(path.with_suffix("")), 10, size) as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    written = Path(writer.path)
    data = written.read_bytes()
    written.write_bytes(data[: len(data) // 2])
    return written


@pytest.fixture(scope="module")
def folder_run(models, tmp_path_factory):
    """demo/inference.py over a folder holding one good photo, a 1x1 image, a 40000x30000 and a 30000x30000
    PNG (small files: only their headers are real), a truncated JPEG, a video cut in half, a hidden file, a
    text file and a subfolder; options after the overrides, as in the bug report. The random network's people
    score low: --min-score 0 keeps them (the other cleaning, joints kept inside the image, stays on)."""
    root = tmp_path_factory.mktemp("folder_run")
    photos = root / "photos"
    (photos / "sub").mkdir(parents=True)
    noise_image(photos / "good.jpg", 96, 64)
    noise_image(photos / "one.png", 1, 1)
    png_header_only(photos / "huge.png", 40000, 30000)
    png_header_only(photos / "big.png", 30000, 30000)
    data = noise_image(photos / "cut.jpg", 80, 60).read_bytes()
    (photos / "cut.jpg").write_bytes(data[: len(data) // 2])
    video = cut_video(photos / "clip.mp4")
    noise_image(photos / ".hidden.jpg", 8, 8)
    noise_image(photos / "sub" / "inner.jpg", 8, 8)
    (photos / "notes.txt").write_text("not an image")
    out = root / "out"
    result = run("--cfg", models / "tiny.yaml", "--weights", models / "random.pth", "--folder", photos,
                 "TEST.FLIP_TEST", "False", "--threshold", "0.5", "--min-score", "0", "--out", out,
                 "--coco-json", out / "all.json",
                 script="demo/inference.py")
    return result, out, video


@pytest.mark.slow
def test_folder_run_names_each_damaged_input_and_exits_1(folder_run):
    result, _, video = folder_run
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, result.stderr
    assert any("huge.png: 40000x30000 PNG (1,200,000,000 pixels) is over OpenCV's decoding limit" in e for e in errors)
    assert any("big.png: 30000x30000 image (900,000,000 pixels) is over the limit of 50,000,000 pixels" in e
               and "--max-pixels 900000000" in e for e in errors)
    assert any("cut.jpg: truncated JPEG" in e for e in errors)
    assert f"warning: {video.name} ended after " in result.stderr and " of the 20 frames it announces" in result.stderr
    assert "4 of 6 inputs failed:" in result.stderr


@pytest.mark.slow
def test_folder_run_says_what_it_skipped_and_sums_up(folder_run):
    result, out, _ = folder_run
    assert "skipped 1 hidden, 1 subfolders (see --recursive), 1 files of other types" in result.stderr
    frames = len(json.loads((out / "clip.json").read_text())["frames"])
    assert f"2 images, 1 video ({frames} frames), " in result.stderr
    assert f" -> {out}; 4 of 6 inputs failed" in result.stderr


@pytest.mark.slow
def test_folder_run_goes_on_after_failures_and_leaves_only_complete_files(folder_run):
    result, out, video = folder_run
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".json") == ["all.json", "all_images.json", "clip.json",
                                                                             "good.json", "one.json"]
    counts = check_complete(out)
    assert counts == {"json": 5, "jpg": 2, "video": 1, "pth": 0}
    assert hidden_files(out) == []
    frames = json.loads((out / "clip.json").read_text())["frames"]
    assert 0 < len(frames) < 20 and f"the {len(frames)} frames read are in" in result.stderr


@pytest.mark.slow
def test_people_of_a_1x1_image_stay_inside_its_pixel(folder_run):
    _, out, _ = folder_run
    record = json.loads((out / "one.json").read_text())
    assert (record["width"], record["height"]) == (1, 1) and record["people"]
    for person in record["people"]:
        xy = np.array(person["keypoints"])[:, :2]
        assert np.abs(xy).max() <= 0.5, person


@pytest.mark.slow
def test_options_after_overrides_take_effect(folder_run):
    # --threshold 0.5 after TEST.FLIP_TEST False: boxes surround the joints of value >= 0.5.
    _, out, _ = folder_run
    people = json.loads((out / "good.json").read_text())["people"]
    assert people
    for person in people:
        joints = np.array(person["keypoints"])
        shown = joints[joints[:, 2] >= 0.5] if (joints[:, 2] >= 0.5).any() else joints
        assert person["box"][:2] == pytest.approx(shown[:, :2].min(axis=0).round(1).tolist(), abs=0.051)


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_stop_in_a_folder_run_keeps_exactly_the_finished_images(models, tmp_path, signal_name):
    photos = noise_folder(tmp_path / "photos", 300, 160, 120)
    out = tmp_path / "out"
    process = start("predict", "--cfg", models / "tiny.yaml", "--weights", models / "random.pth", photos,
                    "--out", out, "--coco-json", tmp_path / "all.json", "TEST.SCALE_FACTOR", "[1.0, 2.0]")
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.glob("*.json"))) < 3:
        time.sleep(0.1)
    stderr = stop(process, signal_name)
    assert process.returncode == EXIT_STATUS[signal_name], stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith(STOPPED[signal_name])]
    assert len(lines) == 1 and lines[0].endswith(f" -> {out} (every file written there is complete)"), stderr
    done = int(lines[0].split(": ")[1].split(" image")[0])
    assert 3 <= done < 300
    assert check_complete(out) == {"json": done, "jpg": done, "video": 0, "pth": 0}
    assert hidden_files(out) == [] and hidden_files(tmp_path) == []
    coco = json.loads((tmp_path / "all.json").read_text())
    assert len({r["image_id"] for r in coco}) <= done
    assert len(json.loads((tmp_path / "all_images.json").read_text())["images"]) == done


def plain_video(path: Path, frames: int, size: tuple[int, int]) -> Path:
    """An MPEG-4 video of `frames` flat grey frames (OpenCV writes it at once)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 40 * i % 255, np.uint8))
    writer.release()
    return path


@pytest.mark.slow
@pytest.mark.parametrize("signal_name, group", [("SIGINT", False), ("SIGINT", True), ("SIGTERM", False),
                                                ("SIGTERM", True)],
                         ids=["ctrl-c", "ctrl-c-in-a-terminal", "sigterm", "sigterm-to-the-group"])
def test_a_stop_during_a_video_keeps_the_finished_frames(models, tmp_path, signal_name, group):
    # To the group, as a terminal's Ctrl-C, systemd and SLURM send it: ffmpeg gets the signal too, and must
    # not end the video on its own.
    video = plain_video(tmp_path / "long.mp4", 400, (320, 240))
    out = tmp_path / "out"
    process = start("predict", "--cfg", models / "tiny.yaml", "--weights", models / "random.pth", video, "--out", out,
                    "TEST.SCALE_FACTOR", "[1.0, 2.0]", own_group=group)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob(".long_pose.*.tmp*")):
        time.sleep(0.2)
    time.sleep(1.5)
    stderr = stop(process, signal_name, group)
    assert process.returncode == EXIT_STATUS[signal_name], stderr
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith(STOPPED[signal_name])]
    record = json.loads((out / "long.json").read_text())        # complete, valid JSON
    done = len(record["frames"])
    assert 0 < done < 400 and line.startswith(f"{STOPPED[signal_name]}: 0 images, 1 video ({done} frames), ")
    assert check_complete(out) == {"json": 1, "jpg": 0, "video": 1, "pth": 0}
    assert hidden_files(out) == []
    (written,) = out.glob("long_pose.*")
    assert int(cv2.VideoCapture(str(written)).get(cv2.CAP_PROP_FRAME_COUNT)) == done


@pytest.mark.slow
def test_two_runs_writing_into_one_folder_leave_complete_files(models, tmp_path):
    photos = noise_folder(tmp_path / "photos", 12, 96, 72)
    out = tmp_path / "out"
    processes = [start("predict", "--cfg", models / "tiny.yaml", "--weights", models / "random.pth", photos,
                       "--out", out, "--exist-ok", "--coco-json", out / "all.json", "--all") for _ in range(2)]
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
    assert check_complete(out) == {"json": 14, "jpg": 12, "video": 0, "pth": 0}
    assert hidden_files(out) == []
    assert {json.loads((out / f"{i:03d}.json").read_text())["image"] for i in range(12)} == \
        {f"{i:03d}.jpg" for i in range(12)}


def test_weights_with_nan_are_refused_naming_the_tensor(models, tmp_path, capsys):
    image = noise_image(tmp_path / "a.jpg", 32, 24)
    code = main(["predict", "--cfg", str(models / "tiny.yaml"), "--weights", str(models / "nan.pth"), str(image),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "stage2.0.fuse_layers.0.1.1.running_var (1 of 8 values: NaN)" in err
    assert err.count("\n") == 1 and not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("option", ["--out", "--coco-json"])
def test_outputs_under_a_regular_file_fail_before_the_model_loads(models, tmp_path, capsys, option):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    image = noise_image(tmp_path / "a.jpg", 32, 24)
    code = main(["predict", "--cfg", str(models / "tiny.yaml"), "--weights", str(tmp_path / "missing.pth"),
                 str(image), "--out", str(tmp_path / "out"), option, str(blocker / "results")])
    err = capsys.readouterr().err
    assert code == 2 and str(blocker / "results") in err and "missing.pth" not in err, err
    assert f"{blocker} is a file, not a folder" in err and err.count("\n") == 1, err


def test_export_into_a_path_under_a_file_says_it_is_a_file(models, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code = main(["export", "--cfg", str(models / "tiny.yaml"), "--weights", str(models / "random.pth"),
                 "--out", str(blocker / "x.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: cannot write --out {blocker / 'x.onnx'}: {blocker} is a file, not a folder\n"


def test_a_damaged_jpeg_in_a_folder_is_one_failed_input_and_the_others_go_on(models, tmp_path, capfd):
    photos = noise_folder(tmp_path / "photos", 3, 96, 64)
    damaged = zero_filled_hole(photos / "001.jpg")
    assert "Corrupt JPEG data" in libjpeg_warnings(damaged, capfd)       # damaged as libjpeg sees it
    out = tmp_path / "out"
    args = ["predict", "--cfg", str(models / "tiny.yaml"), "--weights", str(models / "random.pth"), str(photos),
            "--min-score", "0", "TEST.FLIP_TEST", "False"]
    code = main([*args, "--out", str(out)])
    err = capfd.readouterr().err
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"error: {damaged}: damaged JPEG, its image data is corrupt ("), err
    assert errors[0].endswith("; add --accept-damaged to use it as decoded") and "Traceback" not in err
    assert "2 images, " in err and "1 of 3 inputs failed:" in err and f"  {damaged}: damaged JPEG" in err
    assert sorted(p.name for p in out.glob("*.json")) == ["000.json", "002.json"]
    code = main([*args, "--out", str(tmp_path / "accepted"), "--accept-damaged"])
    assert code == 0, capfd.readouterr().err
    assert (tmp_path / "accepted" / "001.json").exists()


@pytest.mark.slow
def test_a_full_disk_at_coco_json_keeps_the_results_of_each_image(models, tmp_path):
    photos = noise_folder(tmp_path / "photos", 12, 96, 64)
    out = tmp_path / "out"
    # Each picture (about 7.5 kB) and JSON fits; the COCO file of 12 images' people (about 22 kB) does not.
    result = run("predict", "--cfg", models / "tiny.yaml", "--weights", models / "random.pth", photos, "--out", out,
                 "--coco-json", out / "all.json", "--min-score", "0", "TEST.FLIP_TEST", "False",
                 file_size_limit=12_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert re.fullmatch(rf"error: cannot write {re.escape(str(out / 'all.json'))}: {os.strerror(errno.EFBIG)}; the "
                        rf"results of each input are kept: 12 images, \d+ people -> {re.escape(str(out))}", error)
    assert result.stderr.endswith(error + "\n")
    assert check_complete(out) == {"json": 12, "jpg": 12, "video": 0, "pth": 0}
    assert not (out / "all.json").exists() and hidden_files(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("ffmpeg_sees", ["SIGXFSZ", "EFBIG"])
def test_a_full_disk_mid_video_keeps_the_json_of_the_frames_done(models, tmp_path, ffmpeg_sees):
    """The output video outgrows the file size limit part way: ffmpeg is stopped by SIGXFSZ, or (the signal
    ignored, as with a full disk, where none comes) fails writing and says so in many lines."""
    video = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(str(video.with_suffix("")), 10, (64, 48)) as writer:
        for _ in range(150):
            writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    video = Path(writer.path)
    env = {}
    if ffmpeg_sees == "EFBIG":
        wrapper = tmp_path / "ffmpeg"
        wrapper.write_text(f"#!/bin/sh\ntrap '' XFSZ\nexec {find_ffmpeg()} \"$@\"\n")
        wrapper.chmod(0o755)
        env = {"IMAGEIO_FFMPEG_EXE": str(wrapper)}
    out = tmp_path / "out"
    result = run("predict", "--cfg", models / "tiny.yaml", "--weights", models / "random.pth", video, "--out", out,
                 "TEST.FLIP_TEST", "False", file_size_limit=40_000, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error")]
    reason = "SIGXFSZ: File size limit exceeded" if ffmpeg_sees == "SIGXFSZ" else f".*{os.strerror(errno.EFBIG)}"
    match = re.fullmatch(rf"error: {video.name}: cannot write {re.escape(str(out / 'clip_pose.mp4'))}: ffmpeg "
                         rf"(stopped|failed) \({reason}\); the video is not kept; the (\d+) frames done are in "
                         rf"{re.escape(str(out / 'clip.json'))}", error)
    assert match, result.stderr
    frames = json.loads((out / "clip.json").read_text())["frames"]
    assert len(frames) == int(match[2]) and 0 < len(frames) <= 150
    assert sorted(p.name for p in out.iterdir()) == ["clip.json"] and hidden_files(out) == []


def test_an_output_folder_made_read_only_mid_run_stops_with_one_line(models, tmp_path, capsys, monkeypatch,
                                                                      read_only):
    from higherhrnet import Predictor

    photos = noise_folder(tmp_path / "photos", 3, 96, 64)
    out = tmp_path / "out"
    real = Predictor.predict_file
    started = []

    def predict_file(self, source, work_dir):
        started.append(source.name)
        if len(started) == 2:
            read_only(out)                      # after the first image's files, before the second's
        return real(self, source, work_dir)

    monkeypatch.setattr(Predictor, "predict_file", predict_file)
    code = main(["predict", "--cfg", str(models / "tiny.yaml"), "--weights", str(models / "random.pth"),
                 str(photos), "--out", str(out), "--coco-json", str(tmp_path / "all.json"), "TEST.FLIP_TEST",
                 "False"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (error,) = [line for line in err.splitlines() if line.startswith("error")]
    assert re.fullmatch(rf"error: cannot write {re.escape(str(out / '001_pose.jpg'))}: (Permission denied|Operation "
                        rf"not permitted); stopped; kept: 1 image, \d+ (person|people) -> {re.escape(str(out))} "
                        rf"\(every file there is complete\); --coco-json {re.escape(str(tmp_path / 'all.json'))} "
                        rf"holds them", error), err
    assert started == ["000.jpg", "001.jpg"]                  # the third image is not tried
    assert sorted(p.name for p in out.iterdir()) == ["000.json", "000_pose.jpg"]
    assert {r["image_id"] for r in json.loads((tmp_path / "all.json").read_text())} <= {0}
