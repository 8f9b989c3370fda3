"""Pure array code: decoding network outputs into people (grouping) and, later, encoding targets."""
from .grouping import GroupingParams, adjust, group, match_by_tag, nms, person_scores, refine, top_k

__all__ = ["GroupingParams", "adjust", "group", "match_by_tag", "nms", "person_scores", "refine", "top_k"]
