"""Placeholder: being written."""


def predict() -> None:
    """(not yet available)"""
    raise NotImplementedError
