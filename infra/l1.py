"""Typed access to the CloudFormation (L1) resource behind an L2 construct."""
from __future__ import annotations

from typing import TypeVar

from constructs import IConstruct

T = TypeVar("T")


def default_child(construct: IConstruct, cls: type[T]) -> T:
    """``construct.node.default_child``, checked to be a ``cls`` (e.g. ``s3.CfnBucket``); raises ``TypeError``
    otherwise, so a changed L2 fails at synth instead of setting a property on the wrong thing."""
    child = construct.node.default_child
    if not isinstance(child, cls):
        raise TypeError(f"{construct.node.path}: the default child is {type(child).__name__}, not {cls.__name__}")
    return child
