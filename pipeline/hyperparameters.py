"""The hyperparameters ``user_src/train.py`` accepts: one list for the pipeline, the CLI and local runs.

When you add a flag to ``train.py``, add it here too; each entry becomes a
typed pipeline parameter that SageMaker Studio shows when a run is started.
"""

from __future__ import annotations

from dataclasses import dataclass

Value = int | float | str


@dataclass(frozen=True)
class Hyperparameter:
    """One ``--name value`` flag of the training script."""

    name: str
    type: type[int] | type[float] | type[str]
    default: Value
    help: str

    @property
    def parameter_name(self) -> str:
        """Pipeline parameter name: ``learning-rate`` becomes ``LearningRate``."""
        return "".join(part.capitalize() for part in self.name.replace("_", "-").split("-"))


HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    Hyperparameter("learning-rate", float, 0.1, "boosting learning rate (shrinkage)"),
    Hyperparameter("max-iter", int, 100, "number of boosting iterations"),
    Hyperparameter("max-leaf-nodes", int, 31, "maximum leaves per tree"),
    Hyperparameter("l2-regularization", float, 0.0, "L2 penalty on leaf values"),
    Hyperparameter("target", str, "label", "name of the label column in the CSV files"),
    Hyperparameter("seed", int, 0, "random seed, for reproducible runs"),
)


def defaults() -> dict[str, Value]:
    """Hyperparameter name to default value."""
    return {hp.name: hp.default for hp in HYPERPARAMETERS}
