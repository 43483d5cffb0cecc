"""Self-signed OPC UA application certificates (OPC 10000-6 6.2.2: the application URI and the host in
the subject alternative names), made with asyncua's generator: the server's, and a client's to trust."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

# How long a generated certificate is valid.
VALID_DAYS = 5 * 365


def write_certificate(
    out: Path,
    name: str,
    application_uri: str,
    host: str,
    role: Literal["server", "client"] = "server",
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write `<name>.der` (the certificate) and `<name>.key.pem` (its private key, readable by the owner
    only) into `out`; returns their paths. A pair already there is kept (FileExistsError) unless
    `overwrite`: a server's clients trust its certificate, so a new one is a decision."""
    cert_path, key_path = out / f"{name}.der", out / f"{name}.key.pem"
    if not overwrite and (cert_path.exists() or key_path.exists()):
        raise FileExistsError(f"{cert_path} or {key_path} exists (--force replaces them)")
    out.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    use = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    certificate = cert_gen.generate_self_signed_app_certificate(
        key,
        application_uri,
        {"organizationName": "depotwatch"},
        [x509.UniformResourceIdentifier(application_uri), x509.DNSName(host)],
        extended=[use],
        days=VALID_DAYS,
    )
    # The key is created readable by its owner only, and made so if it existed (overwrite).
    with os.fdopen(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as key_file:
        os.fchmod(key_file.fileno(), 0o600)
        key_file.write(cert_gen.dump_private_key_as_pem(key))
    cert_path.write_bytes(certificate.public_bytes(Encoding.DER))
    return cert_path, key_path
