"""Models made offline for tests, demos and benchmarks: presets, a Qwen3-style tokenizer, a warm start."""

from jsontune.offline.init_model import MANIFEST_NAME, init_model
from jsontune.offline.presets import PRESETS, Preset, preset_config

__all__ = ["MANIFEST_NAME", "PRESETS", "Preset", "init_model", "preset_config"]
