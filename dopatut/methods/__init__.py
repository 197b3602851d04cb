"""Methods: the gate, LoRA, where they attach, the registry of methods, saving a mode."""
from .builtin import GATE_METHODS, METHODS, apply_method, trainable_summary  # noqa: F401
