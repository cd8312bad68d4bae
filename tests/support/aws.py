"""moto's server (S3, ECR, ...) on loopback for the whole test session, and a fake AWS
environment pointing at it (registered by tests/conftest.py).

    moto_url   "http://127.0.0.1:PORT": one server for the session, started on first use
    aws_env    fake credentials and region in the environment (this test only), the S3 store's
               endpoint (MIRROR_S3_ENDPOINT_URL) at moto; returns moto_url
    s3         a boto3 S3 client for moto
    bucket     a new bucket's name

Tests share the server, so each uses names of its own (``bucket`` is unique; ECR repositories get a
uuid suffix).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server on loopback, for the whole session."""
    from moto.server import ThreadedMotoServer  # imported here: only sessions that use it pay

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Fake AWS credentials in the environment (for this test only), S3 endpoint at moto."""
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "MIRROR_S3_PART_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MIRROR_S3_ENDPOINT_URL", moto_url)
    return moto_url


@pytest.fixture
def s3(aws_env: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"mirror-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def uploads(s3: Any, bucket: str) -> list[Any]:
    """The multipart uploads still open in ``bucket``."""
    return list(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
