"""Deploying the definition to an account: observe what is there, plan, check, then apply.

``state`` reads the account (no writes); ``plan`` is pure and says every write an upsert
would make; ``apply`` makes them, and only after the whole plan was checked;
``executions`` starts and follows runs; ``promote`` and ``endpoints`` take an approved model
package to a stage's endpoint. May import ``definition``, ``pipeline.aws`` and ``errors``,
never ``local`` or ``cli``.
"""
