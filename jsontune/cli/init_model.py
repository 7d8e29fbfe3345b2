"""Placeholder: being written."""


def init_model() -> None:
    """(not yet available)"""
    raise NotImplementedError
