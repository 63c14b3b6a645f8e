"""Inference-profile resolution (opt-in): which foundation model an application inference
profile ARN runs, from the ``bedrock`` control plane's ``GetInferenceProfile``.

An application-inference-profile ARN (``arn:aws:bedrock:...:application-inference-profile/
abc123``) says nothing about its model, so per-model dashboards and prices cannot see it.
Cross-region profile ids (``us.``, ``global.``) need no lookup: their base model is in the id
(``models.parse_model_id``).

How the lookup stays off the caller's way:

* It runs on one daemon thread of ours, over a bounded queue, with the caller's credentials
  (the runtime client's own credential object, so refreshes are shared) and region, against
  the control-plane endpoint matching the runtime one (``bedrock-runtime.`` -> ``bedrock.``;
  any other endpoint, such as a local emulator, is used as it is). The request carries the
  suppression key, so no instrumentation traces it.
* The first lookup of a profile waits for at most ``timeout`` seconds; if the answer is late
  it lands in the cache for the next call. Every later lookup is a cache read: an expired
  entry is served while a refresh runs in the background.
* The cache is bounded (least recently used out) and answers expire (an hour; a profile the
  service does not know, 15 minutes; a failure, a minute).
* AccessDenied (no ``bedrock:GetInferenceProfile`` permission) turns resolution off for the
  process, with one warning.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from opentelemetry import context

from .models import parse_model_id

_logger = logging.getLogger(__name__)

OPERATION = "GetInferenceProfile"
RESOLVED_TTL = 3600.0
UNKNOWN_TTL = 900.0
FAILURE_TTL = 60.0
_QUEUE_SIZE = 64
# Kinds whose base model the id does not tell.
RESOLVABLE_KINDS = frozenset({"application_inference_profile"})


class _Answer(NamedTuple):
    base: Optional[str]
    expires: float


ClientFactory = Callable[[Any], Any]


def control_plane_url(runtime_url: Optional[str]) -> Optional[str]:
    """The ``bedrock`` endpoint matching a ``bedrock-runtime`` one; other endpoints as is."""
    if not runtime_url:
        return None
    parts = urlsplit(runtime_url)
    host = parts.hostname or ""
    if host.startswith("bedrock-runtime"):
        netloc = parts.netloc.replace("bedrock-runtime", "bedrock", 1)
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return runtime_url


def default_client_factory(runtime: Any) -> Any:
    """A ``bedrock`` client with the runtime client's credentials, region and endpoint."""
    import botocore.session
    from botocore.config import Config

    credentials = runtime._request_signer._credentials
    if credentials is None:
        return None
    session = botocore.session.Session()
    session._credentials = credentials  # shared, so a refresh serves both clients
    meta = runtime.meta
    return session.create_client(
        "bedrock",
        region_name=meta.region_name,
        endpoint_url=control_plane_url(meta.endpoint_url),
        config=Config(
            retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5,
        ),
    )


def base_model_of(response: Any) -> Optional[str]:
    """The one base model id of a GetInferenceProfile answer (its ``models`` are the same
    model in each region the profile routes to); None if there is none or several."""
    models = response.get("models") if isinstance(response, Mapping) else None
    if not isinstance(models, list) or not models:
        return None
    found: set[str] = set()
    for item in models:
        arn = item.get("modelArn") if isinstance(item, Mapping) else None
        base = parse_model_id(arn).base_id if isinstance(arn, str) else None
        if base is None:
            return None
        found.add(base)
    return found.pop() if len(found) == 1 else None


def _error_code(exc: BaseException) -> Optional[str]:
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    code = error.get("Code") if isinstance(error, Mapping) else None
    return code if isinstance(code, str) else None


class ProfileResolver:
    def __init__(
        self,
        timeout: float = 0.5,
        max_entries: int = 256,
        client_factory: ClientFactory = default_client_factory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.max_entries = max_entries
        self.disabled = False
        self._factory = client_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[str, str], _Answer] = OrderedDict()
        self._pending: dict[tuple[str, str], threading.Event] = {}
        self._clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._jobs: queue.Queue[tuple[Any, str, tuple[str, str], threading.Event]] = (
            queue.Queue(_QUEUE_SIZE)
        )
        self._worker: Optional[threading.Thread] = None

    @staticmethod
    def wants(model_id: str) -> bool:
        return parse_model_id(model_id).kind in RESOLVABLE_KINDS

    def resolve(self, client: Any, model_id: str) -> Optional[str]:
        """The base model id behind ``model_id``, or None (not known, or not yet)."""
        if self.disabled or not self.wants(model_id):
            return None
        key = (_endpoint_key(client), model_id)
        now = self._clock()
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
                if answer.expires <= now:
                    self._submit(client, model_id, key)  # serve stale, refresh behind
                return answer.base
            event = self._submit(client, model_id, key)
        if event is None:
            return None  # already being looked up by another call: never wait twice
        event.wait(self.timeout)
        with self._lock:
            answer = self._answers.get(key)
        return answer.base if answer is not None else None

    def cached(self, client: Any, model_id: str) -> Optional[str]:
        """A cached answer only: no lookup is started or waited for."""
        if self.disabled or not self.wants(model_id):
            return None
        with self._lock:
            answer = self._answers.get((_endpoint_key(client), model_id))
        return answer.base if answer is not None else None

    # -- the worker ---------------------------------------------------------------------------
    def _submit(
        self, client: Any, model_id: str, key: tuple[str, str]
    ) -> Optional[threading.Event]:
        """Queue a lookup (lock held). None if one is pending or the queue is full."""
        if key in self._pending:
            return None
        event = threading.Event()
        try:
            self._jobs.put_nowait((client, model_id, key, event))
        except queue.Full:
            return None
        self._pending[key] = event
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(
                target=self._run, name="bedrock-tokens-profiles", daemon=True
            )
            self._worker.start()
        return event

    def _run(self) -> None:
        while True:
            client, model_id, key, event = self._jobs.get()
            try:
                base, ttl = self._lookup(client, model_id)
                with self._lock:
                    self._answers[key] = _Answer(base, self._clock() + ttl)
                    self._answers.move_to_end(key)
                    while len(self._answers) > self.max_entries:
                        self._answers.popitem(last=False)
            except Exception:
                _logger.debug("bedrock-tokens: profile resolution failed", exc_info=True)
            finally:
                with self._lock:
                    self._pending.pop(key, None)
                event.set()

    def _lookup(self, runtime: Any, model_id: str) -> tuple[Optional[str], float]:
        if self.disabled:
            return None, FAILURE_TTL
        control = self._clients.get(runtime)
        if control is None:
            control = self._factory(runtime)
            if control is None:
                return None, UNKNOWN_TTL
            self._clients[runtime] = control
        token = context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            response = control.get_inference_profile(inferenceProfileIdentifier=model_id)
        except Exception as exc:
            code = _error_code(exc)
            if code == "AccessDeniedException":
                if not self.disabled:
                    self.disabled = True
                    _logger.warning(
                        "bedrock-tokens: GetInferenceProfile was denied (%s); inference "
                        "profiles are not resolved. Grant bedrock:GetInferenceProfile or turn "
                        "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_RESOLVE_PROFILES off.", exc,
                    )
                return None, FAILURE_TTL
            if code in ("ResourceNotFoundException", "ValidationException"):
                return None, UNKNOWN_TTL
            _logger.debug("bedrock-tokens: GetInferenceProfile failed", exc_info=True)
            return None, FAILURE_TTL
        finally:
            context.detach(token)
        base = base_model_of(response)
        return base, (RESOLVED_TTL if base is not None else UNKNOWN_TTL)


def _endpoint_key(client: Any) -> str:
    """Profiles are per account and region: the endpoint (and region) keys the cache."""
    try:
        meta = client.meta
        return f"{meta.region_name}|{meta.endpoint_url}"
    except AttributeError:
        return ""
