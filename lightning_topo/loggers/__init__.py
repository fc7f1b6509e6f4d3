"""Where things are drawn and sent: W&B charts, TensorBoard figures and PNG files (``charts.py``) and the
matplotlib figures they are made of (``figures.py``). Imported lazily: matplotlib and wandb are optional."""
