"""Placeholder: being written."""


def demo() -> None:
    """(not yet available)"""
    raise NotImplementedError
