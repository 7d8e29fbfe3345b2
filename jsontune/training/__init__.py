"""Training: SFT with LoRA (sft.py), settings (config.py), callbacks, curves, merge."""
