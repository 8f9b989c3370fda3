"""Pure array code on both sides of the network: encoding ground truth into training targets (targets.py:
heatmaps, joint indices for the tag loss) and decoding network maps into people (grouping.py: NMS, top-k,
tag matching, ADJUST, REFINE; oks.py: OKS and duplicate removal)."""
from .grouping import GroupingParams, adjust, group, match_by_tag, nms, person_scores, refine, top_k
from .oks import oks, oks_nms
from .targets import heatmap_targets, joint_indices, person_sigmas

__all__ = ["GroupingParams", "adjust", "group", "match_by_tag", "nms", "person_scores", "refine", "top_k", "oks",
           "oks_nms", "heatmap_targets", "joint_indices", "person_sigmas"]
