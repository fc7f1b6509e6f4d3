"""The quiet Lightning ``Trainer`` the findings examples train with: one device, no logger, checkpoints, progress
bar, model summary or sanity check (their numbers come from the callback's history and ``analyse``)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Trainer


def quiet_trainer(max_epochs: int, precision: str = "32-true", accelerator: str = "auto", **kwargs: Any) -> Trainer:
    """A ``Trainer`` for ``max_epochs`` at ``precision`` on one ``accelerator`` device, quiet.

    Args:
        max_epochs: epochs to train.
        precision: the Trainer's ``precision`` (``"32-true"``, ``"64-true"``, ...).
        accelerator: ``"auto"`` (a GPU when present) or ``"cpu"`` (the examples whose numbers are CPU findings).
        kwargs: any other ``Trainer`` argument (``callbacks``, ``gradient_clip_val``, ...), which wins.

    Example:
        >>> quiet_trainer(2, accelerator="cpu").max_epochs
        2
    """
    settings: dict[str, Any] = dict(
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        precision=precision,
    )
    return Trainer(**{**settings, **kwargs})
