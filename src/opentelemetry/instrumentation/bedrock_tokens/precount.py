"""Pre-counting: ask Bedrock's CountTokens what an invocation will bill as input, before or
while the invocation runs, and connect the two with span links.

Why it exists: the exact count arrives only with the response. A pre-count gives the number
early enough to act on (the blocking mode's hook is a token budget guard) and, compared with
the exact count afterwards, a drift figure that shows how far CountTokens can be trusted.

Shape of the work, for both modes:

* The pre-count runs on a small pool of daemon threads (``_Pool``), never on the caller's
  thread, so its latency is bounded by a wait with a timeout (blocking) or not seen at all
  (background), and nothing can hold the process at exit.
* It uses a twin of the caller's client (``countclient.py``): the credentials, region,
  endpoint and botocore configuration the invocation uses, but retry state of its own, so a
  throttled count never slows the caller's client down. The CountTokens call carries
  ``patch.INTERNAL_CALL_KEY`` in its context, which makes our wrapper let it through
  untraced, and suppresses other instrumentations: the ``count_tokens {model}`` span created
  here is the whole telemetry of a pre-count, and no HTTP or botocore span under it can echo
  the request content.
* The count span and the invocation span link to each other (``aws.bedrock.link.relation``
  says which way). The result goes to ``aws.bedrock.count_tokens.input_tokens`` on both; never
  to ``gen_ai.usage.*`` or the usage metric, because a pre-count consumes nothing.
* Failures only ever touch the count span. What the service said is remembered so it is not
  asked again in vain: a model it rejects (for a while), a cross-region profile id it rejects
  (the base id is used instead), a client without the ``bedrock:CountTokens`` permission (for
  the client's lifetime), and a throttled or slow CountTokens (that model and endpoint back
  off for ``precount_backoff`` seconds, so the calls pay nothing for it meanwhile).
* Only calls whose span is recording are pre-counted, unless ``precount_unsampled`` (drift
  over every call) or a budget hook asks for all of them.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import inspect
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from typing import Any, Mapping, Optional, Union

from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from opentelemetry import context, trace

from . import names
from .config import Settings
from .costing import CallCost
from .countclient import count_client
from .extras import Extras
from .families import request_max_tokens
from .patch import INTERNAL_CALL_KEY, Estimate, Request
from .record import CallRecord, error_type, status_description
from .telemetry import Telemetry
from .usage import to_count

_logger = logging.getLogger(__name__)

COUNT_OPERATION = "CountTokens"
# How long a model the service refused to count for (ValidationException) is left alone.
UNSUPPORTED_TTL = 900.0
# Bound on each remembered-answer table, whatever model ids and endpoints the caller uses.
_MAX_REMEMBERED = 1024
# Background mode: how long after submission a pre-count may start. Between the invocation
# span's start and its request going out, the caller's thread spends a millisecond or two of
# CPU in botocore (serialise, sign, send); a count building its own request at the same time
# shares the GIL with it and delays the call by about that much (measured with
# benchmarks/precount_latency.py). Waiting this long first moves the count's CPU work into the
# time the caller spends waiting on the network.
BACKGROUND_GRACE = 0.005

# Error codes that say "CountTokens is overloaded here, ask later": the back-off starts.
_BACK_OFF_CODES = frozenset({
    "ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException",
    "ServiceUnavailableException", "ModelTimeoutException",
})

# Error codes that say "this model (in this form, at this endpoint) cannot be counted".
_MODEL_REFUSED = frozenset({"ValidationException", "ResourceNotFoundException"})
_ACCESS_DENIED = "AccessDeniedException"

_LINK_TO_INVOCATION = {names.AWS_BEDROCK_LINK_RELATION: names.LINK_RELATION_PRECOUNTED}

# ConverseTokensRequest members per service model, read from botocore's own model so a
# botocore release with fewer members never gets a parameter it would reject.
_converse_members: weakref.WeakKeyDictionary[Any, Optional[frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)
_converse_members_lock = threading.Lock()
_warned_no_count_tokens: list[bool] = []  # non-empty once the missing operation was logged


def _count_input_members(client: Any) -> Optional[frozenset[str]]:
    """The keys CountTokens accepts under ``input.converse``; None when this botocore has no
    CountTokens operation at all (then nothing is pre-counted with it)."""
    try:
        model = client.meta.service_model
    except AttributeError:
        return None
    with _converse_members_lock:
        if model in _converse_members:
            return _converse_members[model]
    found: Optional[frozenset[str]]
    try:
        shape = model.operation_model(COUNT_OPERATION).input_shape.members["input"]
        found = frozenset(shape.members["converse"].members)
    except Exception:  # botocore before CountTokens, or a model without the converse form
        found = None
    with _converse_members_lock:
        _converse_members[model] = found
        warn = found is None and not _warned_no_count_tokens
        if warn:
            _warned_no_count_tokens.append(True)
    if warn:
        import botocore

        _logger.warning(
            "bedrock-tokens: botocore %s has no bedrock-runtime CountTokens operation, so "
            "nothing is pre-counted. Upgrade botocore (1.40.14 or later has it), or set "
            "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT=off. (Logged once.)",
            botocore.__version__,
        )
    return found


def _count_input(
    request: Request, params: Mapping[str, Any], members: frozenset[str]
) -> Optional[dict[str, Any]]:
    """The CountTokens ``input`` for this invocation, or None when it cannot be built without
    side effects (a file-like body would have to be read, and the user's call needs it).

    A copy, taken before the call: the parameters are the user's, and an agent loop appends
    to its ``messages`` list as soon as the call returns, while a background count may not
    have been sent yet."""
    if request.spec.kind == "invoke":
        body = params.get("body")
        if isinstance(body, (bytes, bytearray, str)) and body:
            return {"invokeModel": {"body": bytes(body) if isinstance(body, bytearray) else body}}
        return None
    if request.spec.kind == "converse":
        if not isinstance(params.get("messages"), list):
            return None
        converse = {
            key: copy.deepcopy(params[key]) for key in members if params.get(key) is not None
        }
        return {"converse": converse}
    return None


def _endpoint(client: Any) -> str:
    try:
        return str(client.meta.endpoint_url)
    except AttributeError:
        return ""


class _Outcome:
    """What one CountTokens exchange gave: the count, or the exception that replaced it."""

    __slots__ = ("error", "tokens")

    def __init__(self, tokens: Optional[int] = None, error: Optional[BaseException] = None):
        self.tokens = tokens
        self.error = error


# -- the worker pool ---------------------------------------------------------------------------
class _Job:
    """A unit of work for the pool. ``cancel`` runs instead of ``run`` for a job that was
    queued but will never run (pool shut down), so no waiter or span is left hanging."""

    def run(self) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        return None


class _Pool:
    """A few daemon threads and a bounded queue.

    Not ``concurrent.futures``: its threads are joined at interpreter exit, and a CountTokens
    call stuck on the network would then hold the process. Here ``submit`` never blocks (a full
    queue refuses the job), threads start on first use, and a forked child starts its own.
    """

    def __init__(self, workers: int, queue_size: int) -> None:
        self._workers = workers
        self._queue_size = queue_size
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self._jobs: deque[_Job] = deque()
        self._threads: list[threading.Thread] = []
        self._busy = 0  # submitted and not yet finished (queued or running)
        self._closed = False

    def submit(self, job: _Job) -> bool:
        """Queue a job; False (and nothing queued) when the queue is full or the pool closed."""
        if self._pid != os.getpid():  # forked: the parent's threads do not exist here
            self._reset()
        with self._cond:
            if self._closed or len(self._jobs) >= self._queue_size:
                return False
            if not self._threads:
                self._start_threads()
            self._jobs.append(job)
            self._busy += 1
            self._cond.notify()
        return True

    def _start_threads(self) -> None:
        for index in range(self._workers):
            thread = threading.Thread(
                target=self._work, name=f"bedrock-tokens-precount-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        cond = self._cond
        jobs = self._jobs
        while True:
            with cond:
                while not jobs and not self._closed:
                    cond.wait()
                if not jobs:  # closed and drained
                    return
                job = jobs.popleft()
            try:
                job.run()
            except Exception:
                _logger.debug("bedrock-tokens: pre-count job failed", exc_info=True)
            finally:
                del job  # an idle worker keeps no client, request or span alive
                with cond:
                    self._busy -= 1
                    if self._busy == 0:
                        cond.notify_all()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every submitted job has finished; False if ``timeout`` came first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._busy == 0, timeout)

    def close(self, timeout: float = 0.0) -> None:
        """Refuse new jobs, cancel queued ones, let running ones finish on their own, and wait
        for the threads at most ``timeout`` seconds (0: do not wait)."""
        with self._cond:
            self._closed = True
            dropped = list(self._jobs)
            self._jobs.clear()
            self._busy -= len(dropped)
            self._cond.notify_all()
            threads = list(self._threads)
        for job in dropped:
            try:
                job.cancel()
            except Exception:
                _logger.debug("bedrock-tokens: could not cancel a pre-count", exc_info=True)
        if timeout > 0:
            deadline = time.monotonic() + timeout
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join(max(0.0, deadline - time.monotonic()))


_pools: weakref.WeakSet[_Pool] = weakref.WeakSet()


@atexit.register
def _close_pools_at_exit() -> None:
    """At exit, stop starting new pre-counts; the ones on the wire are simply abandoned."""
    for pool in list(_pools):
        pool.close()


# -- the jobs ----------------------------------------------------------------------------------
class _BlockingCount(_Job):
    """A pre-count the caller waits for, with a deadline, before the invocation starts.

    The count span cannot link back to the invocation span when it finishes, because that span
    does not exist yet: the result and its end time are kept, and the span is ended (with the
    remembered end time) once ``attach`` hands over the invocation's record. When the count
    outlives the deadline the roles swap: ``attach`` leaves the record, and the worker adds the
    estimate to it if the invocation is still open, then links back and ends the span.
    """

    def __init__(self, owner: CountTokensPrecounter, work: _Work) -> None:
        self._owner = owner
        self._work = work
        self._lock = threading.Lock()
        self.finished = threading.Event()
        self._on_finished: list[Any] = []  # async waiters (before_async), called once
        self._state = "queued"  # queued | running | done | cancelled
        self._span: Optional[Span] = None
        self._outcome = _Outcome()
        self._end_time: Optional[int] = None
        self._record: Optional[CallRecord] = None
        self._delivered = False  # the caller took the count before the invocation started
        self._linked = False  # the invocation span was started with a link to the count span
        self._abandoned = False  # no invocation will follow (hook veto, or never started)

    @property
    def key(self) -> tuple[str, str]:
        return self._work.key

    def run(self) -> None:
        with self._lock:
            if self._state != "queued":
                return
            self._state = "running"
        try:
            span = self._owner._start_count_span(self._work, None)
        except BaseException:
            with self._lock:
                self._state = "cancelled"
            self._set_finished()
            raise
        with self._lock:
            self._span = span
        outcome = self._owner._count(self._work, span)
        with self._lock:
            self._outcome = outcome
            self._end_time = time.time_ns()
            self._state = "done"
            record, abandoned = self._record, self._abandoned
        self._set_finished()
        if record is not None:  # the caller stopped waiting; the invocation already started
            self._finish(record, late=True)
        elif abandoned:
            self._finish(None, late=False)

    def cancel(self) -> None:
        with self._lock:
            if self._state == "queued":
                self._state = "cancelled"
        self._set_finished()

    def _set_finished(self) -> None:
        with self._lock:
            self.finished.set()
            callbacks, self._on_finished = self._on_finished, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                _logger.debug("bedrock-tokens: could not wake a pre-count waiter", exc_info=True)

    async def wait_async(self, timeout: float) -> bool:
        """``finished.wait(timeout)`` for a coroutine: the loop is never blocked (the worker
        wakes it with ``call_soon_threadsafe``); True if the count finished in time."""
        import asyncio

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve, future)

        with self._lock:
            done = self.finished.is_set()
            if not done:
                self._on_finished.append(wake)
        if done:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def take(self) -> Optional[Estimate]:
        """At the deadline (or earlier, when done): what the invocation span starts with.

        A job still waiting for a worker is cancelled and gives None; a running one gives a
        link without a count; a finished one gives both.
        """
        with self._lock:
            if self._state in ("queued", "cancelled"):
                self._state = "cancelled"
                return None
            span_context = self._span.get_span_context() if self._span is not None else None
            self._linked = span_context is not None
            if self._state != "done":
                return Estimate(None, span_context)
            self._delivered = True
            return Estimate(self._outcome.tokens, span_context)

    def attach(self, record: CallRecord) -> None:
        """The invocation span started: link back now if the count is done, else on finish."""
        with self._lock:
            if self._state != "done":
                self._record = record
                return
            late = not self._delivered
        self._finish(record, late)

    def abandon(self) -> None:
        """No invocation span will come: end the count span without a link back (or never
        start it, if the job is still queued)."""
        with self._lock:
            if self._state == "queued":
                self._state = "cancelled"
                return
            if self._state != "done":
                self._abandoned = True
                return
        self._finish(None, late=False)

    def _finish(self, record: Optional[CallRecord], late: bool) -> None:
        span = self._span
        if span is None:
            return
        try:
            if record is not None:
                if late:  # whatever the invocation span did not get at its start
                    tokens = self._outcome.tokens
                    link = None if self._linked else span.get_span_context()
                    if tokens is not None or link is not None:
                        record.add_estimate(tokens, link)
                span.add_link(record.span.get_span_context(), _LINK_TO_INVOCATION)
            span.end(end_time=self._end_time)
        except Exception:
            _logger.debug("bedrock-tokens: could not end a count span", exc_info=True)


def _resolve(future: Any) -> None:
    if not future.done():
        future.set_result(None)


class _BackgroundCount(_Job):
    """A pre-count running next to an invocation whose span already exists: the count span is
    born with its link to the invocation, and gives the estimate and the reverse link to the
    invocation if it is still open when the count finishes."""

    def __init__(
        self, owner: CountTokensPrecounter, work: _Work, record: CallRecord
    ) -> None:
        self._owner = owner
        self._work = work
        self._record = record
        self._not_before = time.monotonic() + BACKGROUND_GRACE

    def run(self) -> None:
        wait = self._not_before - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        record = self._record
        span = self._owner._start_count_span(self._work, record.span.get_span_context())
        try:
            outcome = self._owner._count(self._work, span)
            record.add_estimate(outcome.tokens, span.get_span_context())
        finally:
            span.end()


class _Work:
    """Everything a pre-count needs, captured on the caller's thread."""

    __slots__ = ("client", "count_input", "credentials", "key", "parent", "request")

    def __init__(
        self,
        client: Any,
        request: Request,
        count_input: dict[str, Any],
        key: tuple[str, str],
        parent: context.Context,
        credentials: Any = None,
    ) -> None:
        self.client = client  # the user's; the request goes through its twin (countclient.py)
        # An async client's credentials, resolved (awaited) on the caller's loop: its own
        # object cannot sign for the twin, whose signer is not a coroutine.
        self.credentials = credentials
        self.request = request
        self.count_input = count_input
        self.key = key  # (endpoint, model id): what the service's answers are remembered by
        self.parent = parent  # the invocation's parent context: count span is its sibling


# -- the pre-counter ---------------------------------------------------------------------------
class CountTokensPrecounter:
    """The ``patch.Precounter`` of one ``instrument()``; see the module docstring."""

    def __init__(
        self, settings: Settings, telemetry: Telemetry, extras: Optional[Extras] = None
    ) -> None:
        self._settings = settings
        self._telemetry = telemetry
        self._mode = settings.precount
        self._ratio = settings.precount_sample_ratio
        self._timeout = settings.precount_timeout
        self._hook = settings.precount_hook
        # The hook's upper bounds (estimated_cost, quota_burn), for hooks that take them; a
        # three-argument hook is called as before.
        self._extras = extras
        self._hook_keywords = _bound_keywords(self._hook) if extras is not None else frozenset()
        self._random = random.Random()
        self._pool = _Pool(settings.precount_workers, settings.precount_queue_size)
        _pools.add(self._pool)
        self._lock = threading.Lock()
        self._refused: dict[tuple[str, str], float] = {}  # key -> monotonic expiry
        self._model_form: dict[tuple[str, str], str] = {}  # key -> model id that counts
        self._denied: weakref.WeakSet[Any] = weakref.WeakSet()  # clients: not kept alive
        self._warned_denied = False
        self._pending = threading.local()  # blocking job between before() and after_start()
        # The breaker: key -> monotonic end of its back-off (throttled, timed out, too slow).
        self._backoff_period = settings.precount_backoff
        self._backing_off: dict[tuple[str, str], float] = {}
        self._unsampled = settings.precount_unsampled
        _precounters.add(self)

    # -- the Precounter protocol ---------------------------------------------------------------
    def before(
        self, client: Any, request: Request, params: Mapping[str, Any],
        credentials: Any = None,
    ) -> Optional[Estimate]:
        """Blocking mode: count within the budget, then run the user's hook.

        Only the hook's exception can leave this method: it is the budget guard's veto, and
        the call is then not sent. Any failure of our own ends in "no estimate".
        """
        job = self._start_blocking(client, request, params, credentials)
        if not isinstance(job, _BlockingCount):
            return job
        try:
            finished = job.finished.wait(self._timeout)
        except BaseException:  # KeyboardInterrupt while waiting: the caller's to have
            job.abandon()
            raise
        return self._end_blocking(job, finished, request)

    async def before_async(
        self, client: Any, request: Request, params: Mapping[str, Any],
        credentials: Any = None,
    ) -> Optional[Estimate]:
        """``before`` for an async client: the same count, awaited (never blocking the loop)."""
        job = self._start_blocking(client, request, params, credentials)
        if not isinstance(job, _BlockingCount):
            return job
        try:
            finished = await job.wait_async(self._timeout)
        except BaseException:  # the task was cancelled while waiting: the caller's to have
            job.abandon()
            raise
        return self._end_blocking(job, finished, request)

    def _start_blocking(
        self, client: Any, request: Request, params: Mapping[str, Any], credentials: Any
    ) -> Union[_BlockingCount, Estimate, None]:
        if self._mode != "blocking":
            return None
        try:
            self._drop_stale_pending()
            if self._hook is None and not self._unsampled and not self._would_sample(request):
                return None  # telemetry-only pre-count of a call whose span is not sampled
            job = self._submit_blocking(client, request, params, credentials)
            if isinstance(job, str):
                return Estimate(None, None, job)
            return job
        except Exception:
            _logger.debug("bedrock-tokens: blocking pre-count failed", exc_info=True)
            return None

    def _end_blocking(
        self, job: _BlockingCount, finished: bool, request: Request
    ) -> Optional[Estimate]:
        try:
            estimate = job.take()
            if estimate is None:  # never left the queue: the pool is busy, not the service
                return None
            if not finished:  # sent, and too slow: the next calls must not pay the budget too
                self._back_off(job.key, "outlived the blocking budget")
        except Exception:
            _logger.debug("bedrock-tokens: blocking pre-count failed", exc_info=True)
            return None
        tokens = estimate.tokens
        if tokens is not None and self._hook is not None:
            keywords = self._hook_bounds(request, tokens)
            try:
                self._hook(request.model, request.operation_name, tokens, **keywords)
            except BaseException:
                job.abandon()
                raise
        self._pending.job = (request, job)
        return estimate

    def _hook_bounds(self, request: Request, tokens: int) -> dict[str, Optional[float]]:
        """estimated_cost (USD) and quota_burn (tokens) if the call used all of its
        ``max_tokens``: None for each without a price or a max_tokens. Never raises."""
        if not self._hook_keywords or self._extras is None:
            return {}
        try:
            max_tokens = request_max_tokens(request.body)
            bounds = self._extras.precount_bounds(
                request.extra, request.raw_model or request.model, tokens, max_tokens
            )
        except Exception:
            _logger.debug("bedrock-tokens: no upper bounds for the hook", exc_info=True)
            bounds = CallCost(None, None)
        found = {"estimated_cost": bounds.cost, "quota_burn": bounds.quota_tokens}
        return {key: value for key, value in found.items() if key in self._hook_keywords}

    def after_start(
        self, client: Any, request: Request, params: Mapping[str, Any], record: CallRecord,
        credentials: Any = None,
    ) -> None:
        """Blocking mode: hand the invocation's record to the count span (link back, end).
        Background mode: queue a pre-count linked to the started invocation span."""
        if self._mode == "blocking":
            pending = getattr(self._pending, "job", None)
            if pending is not None and pending[0] is request:
                self._pending.job = None
                pending[1].attach(record)
            return
        if not self._unsampled and not record.span.is_recording():
            return  # nobody would see its estimate, and it costs a request
        work = self._prepare(client, request, params, credentials)
        if work is None:
            return
        if isinstance(work, str):
            record.span.set_attribute(names.AWS_BEDROCK_COUNT_TOKENS_SKIPPED, work)
            return
        if not self._pool.submit(_BackgroundCount(self, work, record)):
            self._dropped(request)

    # -- lifecycle -----------------------------------------------------------------------------
    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for every queued and running pre-count to finish (tests, orderly shutdowns).
        True when they did within ``timeout`` seconds."""
        return self._pool.flush(timeout)

    def shutdown(self, timeout: float = 0.0) -> None:
        """Called by ``uninstrument()``: no new pre-counts, queued ones are dropped, running
        ones finish in their daemon threads; waits at most ``timeout`` seconds for them."""
        self._pool.close(timeout)
        _pools.discard(self._pool)

    # -- deciding ------------------------------------------------------------------------------
    def _prepare(
        self, client: Any, request: Request, params: Mapping[str, Any], credentials: Any = None
    ) -> Union[_Work, str, None]:
        """The pre-count for this call; or a reason (``names.SKIPPED_*``) to say on the span
        when it is skipped because CountTokens is backing off; or None when it is skipped
        for any other reason: not sampled, not an operation CountTokens understands, or known
        in advance to fail."""
        if request.spec.kind not in ("invoke", "converse") or not request.model:
            return None
        if self._ratio < 1.0 and not self._random.random() < self._ratio:
            return None
        if self._is_denied(client):
            return None
        key = (_endpoint(client), request.model)
        if self._is_refused(key):
            return None
        if self._skip_backing_off(key, request):
            return names.SKIPPED_BACKOFF
        members = _count_input_members(client)
        if members is None:
            return None
        count_input = _count_input(request, params, members)
        if count_input is None:
            return None
        return _Work(client, request, count_input, key, context.get_current(), credentials)

    def _submit_blocking(
        self, client: Any, request: Request, params: Mapping[str, Any], credentials: Any
    ) -> Union[_BlockingCount, str, None]:
        work = self._prepare(client, request, params, credentials)
        if work is None or isinstance(work, str):
            return work
        job = _BlockingCount(self, work)
        if not self._pool.submit(job):
            self._dropped(request)
            return None
        return job

    def _drop_stale_pending(self) -> None:
        """A blocking pre-count whose invocation never started (its span could not be
        created) is still waiting to end: end it unlinked rather than keep it forever."""
        pending = getattr(self._pending, "job", None)
        if pending is not None:
            self._pending.job = None
            pending[1].abandon()

    def _dropped(self, request: Request) -> None:
        self._telemetry.precount_dropped.add(1, {
            names.GEN_AI_PROVIDER_NAME: names.PROVIDER_AWS_BEDROCK,
            names.GEN_AI_OPERATION_NAME: request.operation,
            names.GEN_AI_REQUEST_MODEL: request.model,
        })

    def _would_sample(self, request: Request) -> bool:
        """Blocking mode, before the invocation span exists: would it be sampled? The tracer's
        sampler is asked what it will be asked: exactly, for parent-based and fixed samplers
        (the parent's trace id is used); for a root call under a ratio sampler, an independent
        draw of the same ratio."""
        tracer = self._telemetry.tracer
        tracer = getattr(tracer, "_tracer", tracer)  # a ProxyTracer's delegate
        sampler = getattr(tracer, "sampler", None)
        if sampler is None:  # not the SDK's tracer: only a no-op one records nothing
            return not isinstance(tracer, trace.NoOpTracer)
        parent = context.get_current()
        span_context = trace.get_current_span(parent).get_span_context()
        trace_id = span_context.trace_id if span_context.is_valid else (
            self._random.getrandbits(128) or 1)
        name = f"{request.operation} {request.model}" if request.model else request.operation
        try:
            result = sampler.should_sample(parent, trace_id, name, SpanKind.CLIENT)
            return bool(result.decision.is_recording())
        except Exception:
            _logger.debug("bedrock-tokens: could not ask the sampler", exc_info=True)
            return True

    # -- the breaker ---------------------------------------------------------------------------
    def _skip_backing_off(self, key: tuple[str, str], request: Request) -> bool:
        """True (and counted) when this model and endpoint are backing off."""
        with self._lock:
            until = self._backing_off.get(key)
            if until is None:
                return False
            if until <= time.monotonic():
                del self._backing_off[key]
                return False
        self._telemetry.precount_skipped.add(1, {
            names.GEN_AI_PROVIDER_NAME: names.PROVIDER_AWS_BEDROCK,
            names.GEN_AI_OPERATION_NAME: request.operation,
            names.GEN_AI_REQUEST_MODEL: request.model,
            names.AWS_BEDROCK_COUNT_TOKENS_SKIPPED: names.SKIPPED_BACKOFF,
        })
        return True

    def _back_off(self, key: tuple[str, str], why: str) -> None:
        now = time.monotonic()
        with self._lock:
            if self._backing_off.get(key, 0.0) > now:
                return  # already backing off: the period runs from the first failure
            if len(self._backing_off) >= _MAX_REMEMBERED:
                self._backing_off = {k: t for k, t in self._backing_off.items() if t > now}
                if len(self._backing_off) >= _MAX_REMEMBERED:
                    self._backing_off.clear()
            self._backing_off[key] = now + self._backoff_period
        _logger.debug(
            "bedrock-tokens: CountTokens %s for model %r; not pre-counting it for %.0f s",
            why, key[1], self._backoff_period,
        )

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._pending = threading.local()

    # -- remembered answers --------------------------------------------------------------------
    def _is_denied(self, client: Any) -> bool:
        with self._lock:
            return client in self._denied  # False for an object without weak references

    def _deny(self, client: Any) -> None:
        with self._lock:
            # TypeError: not a botocore client as we know it (no weak references); then the
            # denial cannot be remembered, and the one warning is all that happens.
            with contextlib.suppress(TypeError):
                self._denied.add(client)
            warn, self._warned_denied = not self._warned_denied, True
        if warn:
            _logger.warning(
                "bedrock-tokens: CountTokens was denied (AccessDeniedException), so pre-counting "
                "is disabled for this Bedrock Runtime client. Grant the IAM action "
                "bedrock:CountTokens to the client's role to enable it, or set "
                "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT=off. (Logged once.)"
            )

    def _is_refused(self, key: tuple[str, str]) -> bool:
        with self._lock:
            expiry = self._refused.get(key)
            if expiry is None:
                return False
            if expiry > time.monotonic():
                return True
            del self._refused[key]
            return False

    def _refuse(self, key: tuple[str, str]) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._refused) >= _MAX_REMEMBERED:
                for old in [k for k, expiry in self._refused.items() if expiry <= now]:
                    del self._refused[old]
                if len(self._refused) >= _MAX_REMEMBERED:
                    self._refused.clear()
            self._refused[key] = now + UNSUPPORTED_TTL
        _logger.debug(
            "bedrock-tokens: CountTokens refused model %r; not pre-counting it for %.0f s",
            key[1], UNSUPPORTED_TTL,
        )

    def _remember_form(self, key: tuple[str, str], model_id: str) -> None:
        with self._lock:
            if len(self._model_form) >= _MAX_REMEMBERED:
                self._model_form.clear()
            self._model_form[key] = model_id

    # -- counting (worker threads) -------------------------------------------------------------
    def _start_count_span(
        self, work: _Work, invocation: Optional[trace.SpanContext]
    ) -> Span:
        request = work.request
        attrs: dict[str, Any] = {
            names.GEN_AI_OPERATION_NAME: names.OP_COUNT_TOKENS,
            names.GEN_AI_PROVIDER_NAME: names.PROVIDER_AWS_BEDROCK,
            names.GEN_AI_REQUEST_MODEL: request.model,
        }
        if request.address is not None:
            attrs[names.SERVER_ADDRESS] = request.address
            if request.port is not None:
                attrs[names.SERVER_PORT] = request.port
        if self._settings.emit_legacy_system:
            attrs[names.GEN_AI_SYSTEM] = names.PROVIDER_AWS_BEDROCK
        links = [Link(invocation, _LINK_TO_INVOCATION)] if invocation is not None else None
        return self._telemetry.tracer.start_span(
            f"{names.OP_COUNT_TOKENS} {request.model}",
            context=work.parent,
            kind=SpanKind.CLIENT,
            attributes=attrs,
            links=links,
        )

    def _count(self, work: _Work, span: Span) -> _Outcome:
        """Ask CountTokens, falling back once from a rejected cross-region profile id to the
        base model id, and record the answer (or the failure) on the count span."""
        try:
            outcome = self._count_with_fallback(work, span)
        except Exception as exc:  # our own bug: still only the count span may show it
            outcome = _Outcome(error=exc)
        try:
            if outcome.tokens is not None:
                span.set_attribute(names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS, outcome.tokens)
            elif outcome.error is not None:
                failure = outcome.error
                span.set_attribute(names.ERROR_TYPE, error_type(failure))
                span.set_status(Status(
                    StatusCode.ERROR,
                    status_description(failure, self._settings.capture_content),
                ))
        except Exception:
            _logger.debug("bedrock-tokens: could not record a pre-count", exc_info=True)
        return outcome

    def _count_with_fallback(self, work: _Work, span: Span) -> _Outcome:
        request = work.request
        with self._lock:
            known_form = self._model_form.get(work.key)
        model_id = known_form or request.raw_model or request.model
        outcome = self._call(work, span, model_id)
        if outcome.error is None:
            return outcome
        code = error_type(outcome.error)
        if code == _ACCESS_DENIED:
            self._deny(work.client)
            return outcome
        if _backs_off(outcome.error, code):
            self._back_off(work.key, f"failed ({code})")
            return outcome
        if code not in _MODEL_REFUSED:
            return outcome  # throttled, unavailable, network: skip this one, remember nothing
        base = request.info.base_id
        if (
            known_form is None
            and request.info.kind == "inference_profile"
            and base
            and base != model_id
        ):
            retry = self._call(work, span, base)
            if retry.error is None:
                self._remember_form(work.key, base)
                return retry
            if error_type(retry.error) not in _MODEL_REFUSED:
                return retry
            outcome = retry
        self._refuse(work.key)
        return outcome

    def _call(self, work: _Work, span: Span, model_id: str) -> _Outcome:
        """One CountTokens request on the twin of the caller's client, invisible to every
        instrumentation (ours included) but parented under the count span."""
        ctx = trace.set_span_in_context(span, work.parent)
        ctx = context.set_value(INTERNAL_CALL_KEY, True, ctx)
        ctx = context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, ctx)
        sender = count_client(work.client, work.credentials)  # made on a worker, once
        if sender is None:
            return _Outcome(error=RuntimeError("no pre-count client could be made"))
        token = context.attach(ctx)
        try:
            result = sender.count_tokens(modelId=model_id, input=work.count_input)
        except Exception as exc:
            return _Outcome(error=exc)
        finally:
            context.detach(token)
        tokens = to_count(result.get("inputTokens")) if isinstance(result, Mapping) else None
        if tokens is not None:
            return _Outcome(tokens)
        return _Outcome(error=ValueError("CountTokens returned no inputTokens"))


def _backs_off(error: BaseException, code: str) -> bool:
    """Throttled, overloaded or timed out: asking again soon would only make it worse."""
    if code in _BACK_OFF_CODES or isinstance(error, (ReadTimeoutError, ConnectTimeoutError)):
        return True
    response = getattr(error, "response", None)
    meta = response.get("ResponseMetadata") if isinstance(response, Mapping) else None
    return isinstance(meta, Mapping) and meta.get("HTTPStatusCode") == 429


_precounters: weakref.WeakSet[CountTokensPrecounter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child forgets the parent's pending pre-counts and worker threads (they do not
    exist in the child; their jobs belong to the parent's spans), and locks another thread may
    have held at fork; its pools start threads of their own on first use."""
    global _converse_members_lock
    _converse_members_lock = threading.Lock()
    for pool in list(_pools):
        pool._reset()
    for precounter in list(_precounters):
        precounter._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def make_precounter(
    settings: Settings, telemetry: Telemetry, extras: Optional[Extras] = None
) -> CountTokensPrecounter:
    """The pre-counter for ``settings.precount`` (blocking or background)."""
    return CountTokensPrecounter(settings, telemetry, extras)


_BOUND_KEYWORDS = frozenset({"estimated_cost", "quota_burn"})


def _bound_keywords(hook: Any) -> frozenset[str]:
    """Which of the upper-bound keywords the hook accepts (all of them with ``**kwargs``)."""
    if hook is None:
        return frozenset()
    try:
        parameters = inspect.signature(hook).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: called the old way
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return _BOUND_KEYWORDS
    accepted = {p.name for p in parameters
                if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              inspect.Parameter.KEYWORD_ONLY)}
    return frozenset(_BOUND_KEYWORDS & accepted)
