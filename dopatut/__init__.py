"""dopatut: the helper package of the Dopamine course (arXiv 2602.11726)."""
from .foundations.data import load_mnist, mixture, mode_data, rotate, rotated
from .methods.gate import DopamineGate, GateSet, Modes, attach, detach, hardened, set_hard
from .methods.lora import LoRAConfig, LoRAConv2d, LoRALinear, merge_lora, unmerge_lora
from .methods.builtin import (METHODS, BitFitConfig, DopamineConfig, FrozenConfig, FullConfig, GainOnlyConfig, HeadConfig,
                      ThresholdOnlyConfig, apply_method, trainable_summary)
from .foundations.model import FoundationMLP, MLPConfig, count_parameters, freeze
from .methods.targets import find_targets
from .training.train import TrainConfig, evaluate, fit, seed_everything
from .foundations.vit import VisionTransformer, ViTConfig

__version__ = "0.1.0"
