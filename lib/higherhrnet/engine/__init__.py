"""The top layer: training (build functions, the loop and its hooks, the Trainer), evaluation over a split,
distributed helpers and run folders. Nothing below imports from here."""
from .evaluation import clean_results, evaluate, format_metrics, predict_split
from .runs import run_dir
from .train_loop import HookBase, TrainingError, TrainLoop, TrainState
from .trainer import Trainer

__all__ = ["Trainer", "TrainLoop", "TrainState", "HookBase", "TrainingError", "evaluate", "predict_split",
           "clean_results", "format_metrics", "run_dir"]
