"""A job's output, as worker-comfyui returns it and the contract adds to it:

    success: {"status": "succeeded", "run_id", "applied", "exec_ms",
              "images": [{"filename", "type": "base64"|"s3_url", "data", "node_id", "kind", "mime", "index"}],
              "files":  [the same, for videos, sounds and other files]}
    failure: {"error": message for people, "status": "failed"|"timed_out", "run_id", "run_error": record}

("index": the output's place among all of the run's, so a caller restores their order.) The SDK moves "error" to
the job's own error (the job is FAILED) and keeps the rest as its output.

Files go inline as base64, or to an S3-compatible bucket when one is configured, RunPod's way: the job's
`s3Config`, else env BUCKET_ENDPOINT_URL + BUCKET_ACCESS_KEY_ID + BUCKET_SECRET_ACCESS_KEY; bucket = the
s3Config's bucketName, else the month ("%m-%y", as the SDK's rp_upload names it); key `{job_id}/{8 hex}{ext}`;
`data` = a presigned GET URL valid 7 days. The keys never reach a log or an error message.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from runtimes.contract import ErrorRecord

PRESIGNED_S = 7 * 24 * 3600  # as the SDK's rp_upload.upload_image
BUCKET_ENV = ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY")


class BucketError(Exception):
    """The bucket is half configured, or refused an upload (the message names no key)."""


@dataclass(frozen=True)
class Bucket:
    endpoint_url: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    name: str | None = None  # None: the month, as rp_upload does

    @classmethod
    def of_job(cls, job: Mapping[str, Any], env: Mapping[str, str]) -> Bucket | None:
        """The job's s3Config, else the worker's BUCKET_* env; None when neither is set (files go as base64)."""
        config = job.get("s3Config")
        if isinstance(config, Mapping) and config:
            fields = ("endpointUrl", "accessId", "accessSecret")
            if missing := [f for f in fields if not config.get(f)]:
                raise BucketError(f"the job's s3Config lacks {', '.join(missing)}: send all of "
                                  f"{', '.join(fields)} (and bucketName), or no s3Config")
            return cls(str(config["endpointUrl"]), str(config["accessId"]), str(config["accessSecret"]),
                       str(config["bucketName"]) if config.get("bucketName") else None)
        values = [env.get(name, "") for name in BUCKET_ENV]
        if not any(values):
            return None
        if missing := [name for name, value in zip(BUCKET_ENV, values, strict=True) if not value]:
            raise BucketError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set while "
                              f"{', '.join(n for n in BUCKET_ENV if n not in missing)} is: set all three in the "
                              "endpoint's environment to get bucket URLs, or none to get base64")
        return cls(*values)

    @functools.cached_property
    def client(self) -> Any:
        import boto3  # only when a bucket is configured
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key, region_name=_region(self.endpoint_url),
            config=Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"}))

    def upload(self, job_id: str, filename: str, mime: str, data: bytes) -> str:
        """Put one file; its presigned GET URL. Blocking (boto3): call it from a thread."""
        client = self.client
        bucket = self.name or time.strftime("%m-%y")
        key = f"{job_id}/{uuid.uuid4().hex[:8]}{PurePosixPath(filename).suffix}"
        try:
            client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=mime)
            return str(client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                                     ExpiresIn=PRESIGNED_S))
        except Exception as exc:  # botocore's errors are many; each is reported the same way
            raise BucketError(f"the upload of {filename} to the bucket at {self.endpoint_url} failed: "
                              f"{self.redact(str(exc))}") from None

    def redact(self, text: str) -> str:
        for secret in (self.secret_access_key, self.access_key_id):
            if secret:
                text = text.replace(secret, "***")
        return text


def _region(endpoint_url: str) -> str | None:
    """The region an AWS-style endpoint names (https://<bucket>.s3.<region>.amazonaws.com), as rp_upload reads it;
    None for other S3-compatible stores."""
    if ".s3." in endpoint_url:
        return endpoint_url.split(".s3.")[1].split(".")[0]
    return None


async def success_output(result: dict[str, Any], job_id: str, bucket: Bucket | None) -> dict[str, Any]:
    """The worker's result (runtimes.serverless.wire.outcome_to_result) as the job's output."""
    images: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    for index, item in enumerate(result.get("outputs") or []):
        if bucket is None:
            kind, data = "base64", item["data"]
        else:
            kind, data = "s3_url", await asyncio.to_thread(bucket.upload, job_id, item["filename"], item["mime"],
                                                           base64.b64decode(item["data"]))
        entry = {"filename": item["filename"], "type": kind, "data": data, "node_id": str(item["node_id"]),
                 "kind": item["kind"], "mime": item["mime"], "index": index}
        (images if item["kind"] == "image" else files).append(entry)
    return {"status": "succeeded", "run_id": result.get("run_id"), "applied": result.get("applied") or {},
            "exec_ms": result.get("exec_ms"), "images": images, "files": files}


def failure_output(record: ErrorRecord, *, run_id: str | None, status: str = "failed",
                   refresh_worker: bool = False) -> dict[str, Any]:
    """`refresh_worker`: on the platform, this worker is replaced after the job (its engine is gone)."""
    output: dict[str, Any] = {"error": str(record.get("message") or record.get("type") or "the run failed"),
                              "status": status, "run_id": run_id, "run_error": record}
    if refresh_worker:
        output["refresh_worker"] = True
    return output
