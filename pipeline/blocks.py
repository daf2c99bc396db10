"""The building blocks a pipeline module (``workflow.py``) imports: ``from pipeline.blocks import Project``.

The public face of :mod:`pipeline.definition.sdk`, so that the user's module depends on one
stable name, not on the project's internal layout.
"""

from pipeline.definition.sdk import Project, retry_policies

__all__ = ["Project", "retry_policies"]
