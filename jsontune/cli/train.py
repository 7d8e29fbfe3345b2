"""Placeholder: being written."""


def train() -> None:
    """(not yet available)"""
    raise NotImplementedError
