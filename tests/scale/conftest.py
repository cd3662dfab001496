"""A local Ray (2 CPUs) and an S3-compatible server on loopback (moto's server mode), each started once per session.

Nothing here mocks headstart: the cache and the parts talk HTTP to a real S3 API through s3fs, and extraction runs on
a real Ray cluster with real actors.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

BUCKET = "headstart-test"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A local Ray with 2 CPUs for the whole session (start-up costs about 10 s), shut down at the end."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port), with one bucket; s3fs finds it through AWS_ENDPOINT_URL."""
    server_module = pytest.importorskip("moto.server")
    port = free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir(BUCKET)
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_prefix(s3_server: str) -> str:
    """A fresh prefix in the test bucket: s3://headstart-test/<random>."""
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"
