"""The toolkit's ``train`` command as a local host runs it: SageMaker's own entry
(``sagemaker_training.cli.train.main``, what the image's ``train`` calls), with paramiko imported
when first used instead of at start.

The toolkit imports paramiko (SSH between MPI hosts) and with it ``invoke`` in every job: about
0.09 s of a no-op job's fixed cost, for jobs that never use it. Here ``import paramiko`` gives a
stand-in module that imports the real one at its first attribute access (an MPI job's first SSH
call). importlib's ``LazyLoader`` cannot do this: an ``import`` statement of a module already
loaded reads its ``__spec__``, which loads it. Standard library only: the job environment's
interpreter runs this file with ``-P``, so this folder is not on the toolkit's module path.
"""

from __future__ import annotations

import importlib
import sys
import types

DEFERRED = ("paramiko",)


class Deferred(types.ModuleType):
    """A module that imports itself at its first attribute access, then holds the real one's names."""

    def __getattr__(self, attr: str) -> object:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


def defer(names: tuple[str, ...] = DEFERRED) -> None:
    for name in names:
        sys.modules.setdefault(name, Deferred(name))


if __name__ == "__main__":
    defer()
    from sagemaker_training.cli.train import main

    sys.exit(main())
