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
    # The extensions a strict verifier requires (Python 3.13 sets VERIFY_X509_STRICT: a CA
    # without keyUsage was refused, "CA cert does not include key usage extension").
    for ca in ("other-ca", "ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                 "-out", f"{ca}.crt", "-days", "2", "-subj", f"/CN=deepagents-redis {ca}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-addext", "subjectKeyIdentifier=hash", cwd=where)  # fmt: skip
    leaf = (
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    # the server's certificate is also the client side of the cluster bus (tls-cluster)
    _signed("server", "/CN=localhost", leaf + "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "extendedKeyUsage=serverAuth,clientAuth\n", where)  # fmt: skip
    _signed("client", "/CN=deepagents-redis client", leaf + "extendedKeyUsage=clientAuth\n",
            where)  # fmt: skip
    return Pki(
        ca=where / "ca.crt",
        server_cert=where / "server.crt",
        server_key=where / "server.key",
        client_cert=where / "client.crt",
        client_key=where / "client.key",
        other_ca=where / "other-ca.crt",
    )
