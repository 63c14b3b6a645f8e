"""What the oldest supported versions (``.ci/floor-constraints.txt``, run by ``.ci/floor``)
cannot do. A test that needs more skips with ``needs_botocore_member``, which names the
missing shape member and the botocore version installed, and skips nothing where it exists."""

from __future__ import annotations

from typing import Any

import botocore
import botocore.session
import pytest

_model: Any = None


def botocore_has(operation: str, *path: str) -> bool:
    """Whether botocore's bedrock-runtime model has ``operation`` with the input member at
    ``path`` (e.g. ``("input", "converse", "toolConfig")``)."""
    global _model
    if _model is None:
        _model = botocore.session.get_session().get_service_model("bedrock-runtime")
    try:
        shape = _model.operation_model(operation).input_shape
        for member in path:
            shape = shape.members[member]
    except Exception:
        return False
    return True


def needs_botocore_member(operation: str, *path: str) -> Any:
    where = ".".join((operation, *path))
    return pytest.mark.skipif(
        not botocore_has(operation, *path),
        reason=f"botocore {botocore.__version__} has no {where} (older than the test needs)")


def agent_runtime_shape_has(shape: str, member: str) -> bool:
    """Whether botocore's bedrock-agent-runtime model's ``shape`` has ``member``."""
    try:
        model = botocore.session.get_session().get_service_model("bedrock-agent-runtime")
        return member in model.shape_for(shape).members
    except Exception:
        return False


needs_flow_node_dependency_trace = pytest.mark.skipif(
    not agent_runtime_shape_has("FlowTrace", "nodeDependencyTrace"),
    reason=f"botocore {botocore.__version__} has no FlowTrace.nodeDependencyTrace (the flow's "
    "agent-node usage; older than the test needs)")


def runtime_shape_has(shape: str, member: str) -> bool:
    """Whether botocore's bedrock-runtime model's ``shape`` has ``member``."""
    try:
        model = botocore.session.get_session().get_service_model("bedrock-runtime")
        return member in model.shape_for(shape).members
    except Exception:
        return False


def needs_runtime_member(shape: str, member: str) -> Any:
    return pytest.mark.skipif(
        not runtime_shape_has(shape, member),
        reason=f"botocore {botocore.__version__} has no {shape}.{member} (older than the test "
        "needs)")
