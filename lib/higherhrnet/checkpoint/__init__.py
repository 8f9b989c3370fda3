"""Checkpoints, read and written safely; one module per job:

    io.py        reading (torch.load with weights_only=True: tensors and plain values, never code) and atomic
                 saving; CheckpointError
    layouts.py   the weights inside a checkpoint: wrapper keys and prefixes, the official FP16 and pose-ae-train
                 layouts, mmpose 0.x's layout and the conversion both ways
    finite.py    refusing weights that hold NaN or infinity
    loading.py   loading weights into a network: the whole model (strict) or the matching part of pretrained ones
    meta.py      the model files we write: weights with what the model is (format, version, config, keypoints...)

Everything is importable from here: `from higherhrnet.checkpoint import load_checkpoint`.
"""
from .finite import check_finite, non_finite_tensors
from .io import CheckpointError, atomic_save, read_checkpoint
from .layouts import (convert_mmpose_state_dict, describe_weights, extract_state_dict, is_mmpose_layout,
                      to_mmpose_state_dict)
from .loading import load_checkpoint, load_pretrained_backbone
from .meta import MODEL_FORMAT, model_meta, read_model_meta, save_model

__all__ = ["CheckpointError", "read_checkpoint", "extract_state_dict", "load_checkpoint", "non_finite_tensors",
           "check_finite",
           "load_pretrained_backbone", "atomic_save", "MODEL_FORMAT", "model_meta", "save_model",
           "read_model_meta", "is_mmpose_layout", "convert_mmpose_state_dict",
           "to_mmpose_state_dict", "describe_weights"]
