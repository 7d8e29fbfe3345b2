"""Placeholder: being written."""


def eval_cmd() -> None:
    """(not yet available)"""
    raise NotImplementedError
