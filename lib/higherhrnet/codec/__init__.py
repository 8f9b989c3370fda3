"""Pure array code on both sides of the network: encoding ground truth into training targets (targets.py:
heatmaps, joint indices for the tag loss) and decoding network maps into people (grouping.py: NMS, top-k,
tag matching, ADJUST, REFINE). OKS and duplicate removal are in higherhrnet.oks, beside the tracker's use of them."""
from .grouping import GroupingParams, adjust, group, match_by_tag, nms, person_scores, refine, top_k
from .targets import heatmap_targets, joint_indices, person_sigmas

__all__ = ["GroupingParams", "adjust", "group", "match_by_tag", "nms", "person_scores", "refine", "top_k",
           "heatmap_targets", "joint_indices", "person_sigmas"]
