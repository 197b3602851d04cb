"""dopatut: the helper package of the Dopamine course (arXiv 2602.11726)."""
from .data import load_mnist, mixture, mode_data, rotate, rotated
from .gate import DopamineGate, GateSet, Modes, attach, detach, hardened, set_hard
from .lora import LoRAConfig, LoRAConv2d, LoRALinear, merge_lora, unmerge_lora
from .methods import (METHODS, BitFitConfig, DopamineConfig, FrozenConfig, FullConfig, GainOnlyConfig, HeadConfig,
                      ThresholdOnlyConfig, apply_method, trainable_summary)
from .model import FoundationMLP, MLPConfig, count_parameters, freeze
from .targets import find_targets
from .train import TrainConfig, evaluate, fit, seed_everything
from .vit import VisionTransformer, ViTConfig

__version__ = "0.1.0"
