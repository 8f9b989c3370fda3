"""The metrics of keypoint datasets, over COCO-format results (one dict per person: image_id, category_id,
keypoints [x, y, v] * J, score): COCO's keypoint AP / AR with pycocotools, CrowdPose's with faster-coco-eval.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np

__all__ = ["EvaluationError", "COCO_METRICS", "CROWDPOSE_METRICS", "coco_keypoint_metrics", "crowdpose_metrics"]

COCO_METRICS = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")
CROWDPOSE_METRICS = ("AP", "AP .5", "AP .75", "AR", "AR .5", "AR .75", "AP (easy)", "AP (medium)", "AP (hard)")


class EvaluationError(ValueError):
    """Results that cannot be evaluated against the ground truth (unknown image ids, wrong sizes)."""


def _check_ids(results: list[dict], gt_ids) -> None:
    unknown = sorted({r["image_id"] for r in results} - set(gt_ids))
    if unknown:
        raise EvaluationError(f"results name image ids that are not in the ground truth: {unknown[:10]}"
                              f"{' ...' if len(unknown) > 10 else ''}")


def coco_keypoint_metrics(coco_gt, results: list[dict], sigmas: np.ndarray) -> dict[str, float]:
    """pycocotools COCOeval (iouType "keypoints") with the dataset's OKS sigmas -> COCO_METRICS.
    No predictions at all scores 0 everywhere (pycocotools' loadRes cannot take an empty list)."""
    from pycocotools.cocoeval import COCOeval

    _check_ids(results, coco_gt.getImgIds())
    if not results:
        return {name: 0.0 for name in COCO_METRICS}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.params.useSegm = None
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(COCO_METRICS, evaluator.stats)}


def crowdpose_metrics(annotation_file: str, results: list[dict], sigmas: np.ndarray) -> dict[str, float]:
    """CrowdPose's metric set (AP, AP .5, AP .75, AR, AR .5, AR .75, AP easy / medium / hard) with
    faster-coco-eval, imported only here (pip install faster-coco-eval)."""
    try:
        from faster_coco_eval import COCO as FastCOCO
        from faster_coco_eval import COCOeval_faster
    except ImportError:
        raise EvaluationError("CrowdPose evaluation needs faster-coco-eval: pip install faster-coco-eval") from None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = FastCOCO(annotation_file)
    _check_ids(results, gt.getImgIds())
    if not results:
        return {name: 0.0 for name in CROWDPOSE_METRICS}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        evaluator = COCOeval_faster(gt, dt, iouType="keypoints_crowd", kpt_oks_sigmas=np.asarray(sigmas),
                                    use_area=False)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats_as_dict
    names = {"AP": "AP_all", "AP .5": "AP_50", "AP .75": "AP_75", "AR": "AR_all", "AR .5": "AR_50",
             "AR .75": "AR_75", "AP (easy)": "AP_easy", "AP (medium)": "AP_medium", "AP (hard)": "AP_hard"}
    return {ours: float(stats[theirs]) for ours, theirs in names.items()}
