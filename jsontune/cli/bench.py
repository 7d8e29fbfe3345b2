"""Placeholder: being written."""


def bench() -> None:
    """(not yet available)"""
    raise NotImplementedError
