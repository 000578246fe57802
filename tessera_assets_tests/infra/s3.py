"""A moto S3-protocol server on 127.0.0.1, with a bucket and credentials."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tessera_assets_tests.infra.ports import free_port

KEY = "tessera-test-key"
SECRET = "tessera-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str

    @property
    def storage_options(self) -> dict:
        return {"key": KEY, "secret": SECRET, "client_kwargs": {"endpoint_url": self.endpoint}}

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach the server through boto/s3fs defaults."""
        return {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL_S3": self.endpoint}

    def credentials_file_env(self, folder: Path) -> dict[str, str]:
        """The same, with the keys in a shared credentials file (as a mounted Kubernetes
        secret or an instance role gives them) instead of ``AWS_ACCESS_KEY_ID`` /
        ``AWS_SECRET_ACCESS_KEY``: with those two variables set, rasterio builds a boto3
        session on every reprojection (rasterio#3331), which made ``s2_cube`` 3-5× slower
        (docs/operations.md, "S3 credentials")."""
        path = folder / "aws-credentials"
        path.write_text(f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
        path.chmod(0o600)
        return {"AWS_SHARED_CREDENTIALS_FILE": str(path), "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL_S3": self.endpoint}


def moto_server_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("moto_server")
    return [found] if found else [sys.executable, "-m", "moto.server"]


@contextmanager
def s3_server(bucket: str = "tessera") -> Iterator[S3Server]:
    """Start moto_server on a free loopback port, create ``bucket``; stop it after."""
    import s3fs

    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)  # s3fs then creates buckets plainly
    port = free_port()
    proc = subprocess.Popen([*moto_server_cmd(), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        server = S3Server(endpoint, bucket)
        s3fs.S3FileSystem(**server.storage_options).mkdir(bucket)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)
