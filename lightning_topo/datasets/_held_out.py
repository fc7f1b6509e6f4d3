"""The loaders of the bundled data modules: a shuffled train split and one held-out split, of tensors."""

from __future__ import annotations

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset


class HeldOutSplits(LightningDataModule):
    """A data module whose ``setup`` fills ``train_set`` and ``val_set``; ``batch_size`` and ``num_workers`` are its
    subclass's arguments. The held-out split serves validation, test and predict (no separate test split)."""

    batch_size: int
    num_workers: int
    train_set: TensorDataset | None = None
    val_set: TensorDataset | None = None

    def _split(self, split: TensorDataset | None, loader: str) -> TensorDataset:
        if split is None:
            raise RuntimeError(
                f"{type(self).__name__}.{loader}() was called before setup(): call `.setup()` first (a Trainer "
                "calls it when it gets the data module)."
            )
        return split

    def train_dataloader(self) -> DataLoader:
        """The train split, shuffled each epoch."""
        data = self._split(self.train_set, "train_dataloader")
        return DataLoader(data, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        """The held-out split, in a fixed order."""
        data = self._split(self.val_set, "val_dataloader")
        return DataLoader(data, batch_size=self.batch_size, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        """The held-out split again (this data has no separate test split): ``trainer.test`` and ``predict``
        evaluate the validation inputs."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """The held-out split (see :meth:`test_dataloader`)."""
        return self.val_dataloader()
