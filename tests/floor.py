"""What the oldest supported versions (``.ci/floor-constraints.txt``, run by ``.ci/floor``)
cannot do. A test that needs more skips with one of the ``needs_*`` marks, which name the
missing shape member and the botocore version installed, and skip nothing where it exists."""

from __future__ import annotations

import functools
from typing import Any

import botocore
import botocore.session
import pytest


@functools.cache
def _service_model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def botocore_has(operation: str, *path: str) -> bool:
    """Whether botocore's bedrock-runtime model has ``operation`` with the input member at
    ``path`` (e.g. ``("input", "converse", "toolConfig")``)."""
    try:
        shape = _service_model("bedrock-runtime").operation_model(operation).input_shape
        for member in path:
            shape = shape.members[member]
    except Exception:
        return False
    return True


def shape_has(service: str, shape: str, member: str) -> bool:
    """Whether botocore's model of ``service`` has ``member`` in the shape named ``shape``."""
    try:
        return member in _service_model(service).shape_for(shape).members
    except Exception:
        return False


def _needs(present: bool, where: str, why: str = "") -> Any:
    return pytest.mark.skipif(
        not present,
        reason=f"botocore {botocore.__version__} has no {where} ({why}older than the test needs)")


def needs_botocore_member(operation: str, *path: str) -> Any:
    return _needs(botocore_has(operation, *path), ".".join((operation, *path)))


def needs_runtime_member(shape: str, member: str) -> Any:
    return _needs(shape_has("bedrock-runtime", shape, member), f"{shape}.{member}")


needs_flow_node_dependency_trace = _needs(
    shape_has("bedrock-agent-runtime", "FlowTrace", "nodeDependencyTrace"),
    "FlowTrace.nodeDependencyTrace", "the flow's agent-node usage; ")
