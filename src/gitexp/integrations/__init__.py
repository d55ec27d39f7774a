"""Where training already lives: Hydra, PyTorch Lightning, Hugging Face `transformers`.

Each module is imported only by the script that uses it (or, for Hydra, only when the
script has imported Hydra), so gitexp itself never loads a framework.
"""
