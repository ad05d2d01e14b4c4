"""boto3 clients for the AWS actuators, the calls they make, and their errors.

Built once by `jarvis.actuators.aws.ecs.aws_actuators` (or by tests, with a session
holding dummy credentials pointed at moto). Every client counts its API calls
in a shared `CallLog`, which the benchmark reports and the IAM-policy test
checks against ``deploy/aws/jarvis-iam-policy.json``. `to_actuator_error` is
the one place botocore exceptions become `ActuatorError`s with an error kind.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from jarvis.actuators.base import ActuatorError, run_blocking
from jarvis.config.aws import AwsSettings
from jarvis.model import ErrorKind

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_ce import CostExplorerClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

#: Marks the retry-less client of a service among the clients made.
_ONCE = ":once"

# IAM prefixes differ from botocore signing names for CloudWatch.
_IAM_PREFIX = {"monitoring": "cloudwatch"}
# Operations authorised by an IAM action of another name.
_IAM_ACTIONS = {
    "s3:HeadBucket": ("s3:ListBucket",),
    # A cloned task definition passes its task/execution roles to ECS and keeps its tags.
    "ecs:RegisterTaskDefinition": ("ecs:RegisterTaskDefinition", "ecs:TagResource", "iam:PassRole"),
}

_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "EC2ThrottledException",
        "BandwidthLimitExceeded",
        "TransactionInProgressException",
    }
)
# Answered with HTTP 400 yet transient, as botocore's standard retry mode treats them:
# Route 53's PriorRequestNotComplete asks to retry with increasing waits.
_TRANSIENT = frozenset({"PriorRequestNotComplete", "RequestTimeout", "RequestTimeoutException"})
_SERVER_SIDE = frozenset(
    {"ServerException", "InternalFailure", "InternalError", "ServiceUnavailable"}
)
# The target is not there: deleted (or being deleted) since it was observed.
_GONE = frozenset(
    {"ServiceNotFoundException", "ServiceNotActiveException", "ClusterNotFoundException"}
)
_ACCESS_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized"}
)


# Failures below the HTTP answer: (exception types, error code, kind, wording).
_BOTOCORE_ERRORS: tuple[tuple[tuple[type[BotoCoreError], ...], str, ErrorKind, str], ...] = (
    ((ConnectTimeoutError, ReadTimeoutError), "Timeout", ErrorKind.TEMPORARY, "timed out"),
    (
        (EndpointConnectionError, ConnectionClosedError),
        "ConnectionError",
        ErrorKind.TEMPORARY,
        "could not connect",
    ),
    (
        (NoCredentialsError,),
        "NoCredentials",
        ErrorKind.TERMINAL,
        "found no AWS credentials in boto3's standard chain",
    ),
    ((ParamValidationError,), "ParamValidation", ErrorKind.TERMINAL, "was an invalid request"),
)


def iam_actions(operation: str) -> tuple[str, ...]:
    """The IAM actions that authorise one ``prefix:Operation`` call."""
    return _IAM_ACTIONS.get(operation, (operation,))


@dataclass
class CallLog:
    """Counts API calls by ``prefix:Operation``; shared by all clients, thread-safe."""

    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, operation: str) -> None:
        with self._lock:
            self.counts[operation] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def watch(self, client: Any) -> None:
        """Count every API call ``client`` makes (once per call, not per retry)."""
        prefix = _iam_prefix(client)

        def _count(model: Any, **_: Any) -> None:
            self.record(f"{prefix}:{model.name}")

        client.meta.events.register("before-call", _count, unique_id=f"jarvis-calllog-{id(self)}")


def _iam_prefix(client: Any) -> str:
    signing = str(client.meta.service_model.signing_name)
    return _IAM_PREFIX.get(signing, signing)


class AwsClients:
    """The boto3 clients the AWS actuators use, and the log of their calls.

    Each client is built on first use, not up front: building one costs about
    0.1 s of CPU, and a `jarvis plan` with CloudWatch metrics and Cost Explorer
    off uses two of the five. Built under a lock, as a boto3 session is not
    safe to share between threads and calls run in worker threads.
    """

    def __init__(self, settings: AwsSettings, session: boto3.Session | None = None) -> None:
        self._session = session or boto3.Session()
        self._config = Config(
            region_name=settings.region,
            # botocore's ``max_attempts`` counts retries only: one request more than the
            # setting says ("first attempt included").
            retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_pool_connections=settings.max_concurrency,
            # Path-style keeps presigned URLs valid against a local stand-in on an IP.
            s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
        )
        self._endpoint = settings.endpoint_url
        self.max_attempts = settings.max_attempts
        """Requests a call may make, the first included (`sent_unless_refused` for changes)."""
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.calls = CallLog()

    @classmethod
    def create(cls, settings: AwsSettings, session: boto3.Session | None = None) -> AwsClients:
        """Clients from ``session`` (default: boto3's standard credential chain), built lazily."""
        return cls(settings, session)

    def _client(self, service: str, *, once: bool = False) -> Any:
        name = f"{service}{_ONCE}" if once else service
        made = self._made.get(name)
        if made is not None:
            return made
        with self._lock:
            made = self._made.get(name)
            if made is None:
                config = self._config
                if once:
                    config = config.merge(
                        Config(retries={"mode": "standard", "total_max_attempts": 1})
                    )
                if service in {"ce", "route53"}:
                    # Cost Explorer and Route 53 are global; their API lives in
                    # us-east-1 whatever the fleet's region.
                    config = config.merge(Config(region_name="us-east-1"))
                elif service == "s3":
                    # SigV4 presigned URLs: the only kind every region accepts.
                    config = config.merge(Config(signature_version="s3v4"))
                made = self._session.client(  # type: ignore[call-overload]  # one of six literals
                    service, config=config, endpoint_url=self._endpoint
                )
                self.calls.watch(made)
                self._made[name] = made
        return made

    @property
    def ecs(self) -> ECSClient:
        client: ECSClient = self._client("ecs")
        return client

    @property
    def ecs_changes(self) -> ECSClient:
        """ECS without botocore's retries, for the calls that change a service.

        UpdateService and RegisterTaskDefinition take no client token: botocore
        resending one whose answer timed out (or was cut) after ECS acted made
        the change twice under one idempotency key (a second forced deployment,
        a second revision). Such a change is the retry budget's to try again, on
        a later tick, under a new key; one ECS refused unread is sent again at
        once (`sent_unless_refused`).
        """
        client: ECSClient = self._client("ecs", once=True)
        return client

    @property
    def cloudwatch(self) -> CloudWatchClient:
        client: CloudWatchClient = self._client("cloudwatch")
        return client

    @property
    def autoscaling(self) -> ApplicationAutoScalingClient:
        client: ApplicationAutoScalingClient = self._client("application-autoscaling")
        return client

    @property
    def ce(self) -> CostExplorerClient:
        client: CostExplorerClient = self._client("ce")
        return client

    @property
    def s3(self) -> S3Client:
        client: S3Client = self._client("s3")
        return client

    @property
    def route53(self) -> Route53Client:
        client: Route53Client = self._client("route53")
        return client

    def made(self) -> list[str]:
        """The services whose clients were built so far, in the order they were."""
        with self._lock:
            return list(dict.fromkeys(name.removesuffix(_ONCE) for name in self._made))

    def close(self) -> None:
        with self._lock:
            made, self._made = list(self._made.values()), {}
        for client in made:
            client.close()


def sent_unless_refused(
    call: Callable[[], T], attempts: int, *, sleep: Callable[[float], None] = time.sleep
) -> T:
    """``call`` (a change, on a client that never resends), sent again only when its
    answer proves AWS did not act: throttled, or no connection made. Up to ``attempts``
    requests, with botocore's standard back-off (full jitter, at most 20 s).

    A read timeout, a connection closed before the answer or a 5xx may follow a
    change that was made; those are not sent again (`AwsClients.ecs_changes`).
    Without this, every throttled change cost a retry-budget attempt that
    botocore's retries used to absorb, and a throttled fleet escalated.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ClientError as exc:
            if attempt == attempts or not _throttled(*_code_and_status(exc)):
                raise
        except (EndpointConnectionError, ConnectTimeoutError):
            if attempt == attempts:
                raise
        sleep(random.random() * min(20.0, 2.0**attempt))  # noqa: S311 - back-off jitter
    raise AssertionError("unreachable: the last attempt returns or raises")


async def aws_call(
    operation: str, func: Callable[[], T], limiter: anyio.CapacityLimiter, *, change: bool = False
) -> T:
    """Run one blocking boto3 call in a worker thread; failures become ActuatorError.

    ``change``: the call changes a resource, so a failure after the request was
    sent (`unanswered`) may follow a change AWS made, and is said to be.
    """
    try:
        return await run_blocking(func, limiter)
    except (ClientError, BotoCoreError) as exc:
        error = to_actuator_error(exc, operation)
        error.unanswered = change and unanswered(exc)
        raise error from exc


def unanswered(exc: BaseException) -> bool:
    """Whether ``exc`` came after the request was sent and before its answer was read.

    botocore's own split: an `HTTPClientError` (a read timeout, a connection
    closed or a response cut mid-stream) follows a request AWS may have acted
    on; a `botocore.exceptions.ConnectionError` (refused, a connect timeout:
    those `sent_unless_refused` sends again; a failed TLS handshake) means no
    request reached AWS. An error AWS answered was read, whatever it says.
    """
    return isinstance(exc, HTTPClientError)


async def gather(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``calls`` concurrently; their results in order, or the first ActuatorError raised.

    The reconciler records one error per actuator, so a group of them (one per
    cluster, say) is reduced to its first member rather than an ExceptionGroup.
    """
    results: dict[int, T] = {}

    async def run(index: int, call: Callable[[], Awaitable[T]]) -> None:
        results[index] = await call()

    try:
        async with anyio.create_task_group() as group:
            for index, call in enumerate(calls):
                group.start_soon(run, index, call)
    except ExceptionGroup as failed:
        first = _first(failed)
        if first is None:
            raise
        raise first from failed
    return [results[index] for index in range(len(calls))]


def _first(group: BaseExceptionGroup[BaseException]) -> ActuatorError | None:
    for exc in group.exceptions:
        if isinstance(exc, ActuatorError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first(exc)
            if found is not None:
                return found
    return None


def _code_and_status(exc: ClientError) -> tuple[str, int]:
    """The error code AWS answered (``"Unknown"`` without one) and the HTTP status (0)."""
    code = str(exc.response.get("Error", {}).get("Code") or "Unknown")
    return code, int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _throttled(code: str, status: int) -> bool:
    """Whether AWS refused a call unread for its rate: any 429 is, whatever its code, as
    botocore's retry modes judge it."""
    return code in _THROTTLING or status == 429


def to_actuator_error(exc: ClientError | BotoCoreError, operation: str) -> ActuatorError:
    """Classify a boto3/botocore failure of ``operation`` (``prefix:Operation``)."""
    if isinstance(exc, ClientError):
        code, status = _code_and_status(exc)
        message = str(exc.response.get("Error", {}).get("Message") or exc)
        if code in _ACCESS_DENIED or status == 403:
            needed = " and ".join(iam_actions(operation))
            return ActuatorError(
                f"{operation} denied: the Jarvis role lacks IAM permission {needed} ({message})",
                kind=ErrorKind.TERMINAL,
                code=code,
            )
        temporary = (
            _throttled(code, status) or code in _TRANSIENT or code in _SERVER_SIDE or status >= 500
        )
        kind = ErrorKind.TEMPORARY if temporary else ErrorKind.TERMINAL
        if code in _GONE:
            kind = ErrorKind.GONE
        return ActuatorError(f"{operation} failed: {code}: {message}", kind=kind, code=code)
    for kinds, code, kind, what in _BOTOCORE_ERRORS:
        if isinstance(exc, kinds):
            return ActuatorError(f"{operation} {what}: {exc}", kind=kind, code=code)
    return ActuatorError(f"{operation} failed: {exc}", code=type(exc).__name__)
