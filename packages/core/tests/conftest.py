"""Fixtures shared by core's tests: a throwaway PKI for the TLS tests."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from deepagents_redis.testing import in_ci


@dataclass(frozen=True)
class Pki:
    """Certificates made for one test session (PEM files; keys unencrypted)."""

    ca: Path
    """The CA that signed the server and client certificates."""
    server_cert: Path
    """The server's certificate, for 127.0.0.1 and localhost."""
    server_key: Path
    client_cert: Path
    """A client certificate for mutual TLS, signed by `ca`."""
    client_key: Path
    other_ca: Path
    """A CA that signed nothing here: trusting it alone must refuse the server."""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(name: str, subject: str, extensions: str, cwd: Path) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", subject, cwd=cwd)  # fmt: skip
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
             cwd=cwd)  # fmt: skip


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate, a client certificate and an unrelated CA (openssl CLI)."""
    if shutil.which("openssl") is None:
        reason = "the TLS tests need the openssl command to make certificates"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: refusing to skip)", pytrace=False)
        pytest.skip(reason)
    where = tmp_path_factory.mktemp("pki")
    for ca in ("other-ca", "ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                 "-out", f"{ca}.crt", "-days", "2", "-subj", f"/CN=deepagents-redis {ca}",
                 cwd=where)  # fmt: skip
    _signed("server", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n", where)
    _signed("client", "/CN=deepagents-redis client", "extendedKeyUsage=clientAuth\n", where)
    return Pki(
        ca=where / "ca.crt",
        server_cert=where / "server.crt",
        server_key=where / "server.key",
        client_cert=where / "client.crt",
        client_key=where / "client.key",
        other_ca=where / "other-ca.crt",
    )
