"""Placeholder: being written."""


def augment() -> None:
    """(not yet available)"""
    raise NotImplementedError
