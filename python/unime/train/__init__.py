"""Training: unime.Trainer (UniME stages 1 and 2, UniME-V2), its config, data and teacher sources."""

from .config import TrainerConfig
from .data import Example, Input, JudgeDataset, MmebDataset, TextDataset
from .mining import mine_candidates
from .teacher import TeacherEmbeddings
from .trainer import Callback, Trainer

__all__ = ["Trainer", "TrainerConfig", "Callback", "Example", "Input", "TextDataset", "MmebDataset", "JudgeDataset",
           "TeacherEmbeddings", "mine_candidates"]
