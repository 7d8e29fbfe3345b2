"""Placeholder: being written."""


def merge() -> None:
    """(not yet available)"""
    raise NotImplementedError
