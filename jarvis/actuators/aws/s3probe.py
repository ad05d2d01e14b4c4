"""The S3 dependency probe: ``head_bucket``, then a presigned GET of a canary object.

Built by the composition root (`jarvis.providers`) for each bucket in the
``[probes]`` section and handed to `jarvis.actuators.probes.ProbeSensor`; it
lives here because only the AWS package imports boto3. The GET goes over plain
HTTP, not the SDK: it is the request the fleet's users make.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import anyio

from jarvis.actuators.aws.clients import aws_call
from jarvis.actuators.base import ActuatorError
from jarvis.actuators.probes.dependencies import Check, Probe, error_text, probe_ref
from jarvis.actuators.probes.endpoints import read_body
from jarvis.config.probes import ProbeSettings, S3ProbeSettings
from jarvis.model import ErrorKind

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from jarvis.actuators.aws.clients import CallLog


def s3_probes(
    settings: ProbeSettings, *, s3: S3Client, calls: CallLog, limiter: anyio.CapacityLimiter
) -> list[Probe]:
    return [
        Probe(
            probe_ref("s3", bucket.bucket),
            "s3",
            f"{bucket.bucket}/{bucket.canary_key}",
            _check(bucket, s3, calls, limiter),
        )
        for bucket in settings.s3
    ]


def _check(
    settings: S3ProbeSettings, s3: S3Client, calls: CallLog, limiter: anyio.CapacityLimiter
) -> Check:
    bucket, key = settings.bucket, settings.canary_key

    async def check() -> None:
        await aws_call("s3:HeadBucket", lambda: s3.head_bucket(Bucket=bucket), limiter)
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60
        )
        calls.record("s3:GetObject")
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                # Not the whole object: a canary key naming a large one would
                # otherwise be downloaded, into memory, every tick.
                await read_body(response.content)
                status = response.status
        except aiohttp.ClientError as exc:
            raise ActuatorError(error_text(exc), code=type(exc).__name__) from exc
        if status != 200:
            raise ActuatorError(
                f"presigned GET of s3://{bucket}/{key} answered HTTP {status}",
                kind=ErrorKind.TEMPORARY,
                code=f"HTTP{status}",
            )

    return check
