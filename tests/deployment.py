"""Runs the Ansible playbooks for real and starts a Mosquitto with the files they write (password,
ACL, and optionally TLS from a throwaway CA), for the deployment tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from depotwatch.embedded_broker import free_port
from tests.conftest import EXAMPLE_LAYOUT, REPO

ANSIBLE = REPO / "ansible"
MOSQUITTO = shutil.which("mosquitto")
OPENSSL = shutil.which("openssl")
TLS_FILES = {"cafile": "ca.crt", "certfile": "server.crt", "keyfile": "server.key"}


def run_playbook(
    playbook: str, vars_file: Path, extra_vars: dict[str, object], *args: str
) -> subprocess.CompletedProcess[str]:
    """`ansible-playbook ansible/<playbook>` with `extra_vars` (written to `vars_file`, so types and
    secrets survive the command line); never raises on a failed play."""
    vars_file.write_text(yaml.safe_dump(extra_vars))
    command = [str(Path(sys.executable).with_name("ansible-playbook")), str(ANSIBLE / playbook)]
    return subprocess.run(
        [*command, "-e", f"@{vars_file}", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=600,
        env={**os.environ, "LC_ALL": "C.UTF-8", "ANSIBLE_NOCOLOR": "1"},  # Ansible insists on UTF-8
    )


def write_mosquitto_users(out: Path, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """ansible/mqtt_acl.yml for the example layout, writing passwd and acl into `out`."""
    return run_playbook(
        "mqtt_acl.yml",
        out / "acl-vars.yml",
        {
            "facility_layout": str(EXAMPLE_LAYOUT),
            "mosquitto_dir": str(out),
            "mqtt_passwords": passwords,
        },
    )


def make_tls(out: Path, host: str = "localhost") -> Path:
    """A throwaway site CA and a server certificate for `host`; returns the CA certificate."""
    assert OPENSSL is not None

    def openssl(*args: str) -> None:
        subprocess.run([OPENSSL, *args], cwd=out, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
            "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", "server.key",
            "-out", "server.csr")  # fmt: skip
    (out / "san.ext").write_text(f"subjectAltName=DNS:{host}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    return out / "ca.crt"


@contextmanager
def mosquitto(out: Path, tls: bool = False) -> Iterator[int]:
    """A Mosquitto enforcing out/passwd and out/acl (TLS with out/server.* when `tls`); yields its port."""
    assert MOSQUITTO is not None
    port = free_port()
    tls_lines = "".join(f"{key} {out / name}\n" for key, name in TLS_FILES.items()) if tls else ""
    (out / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\n{tls_lines}allow_anonymous false\npassword_file {out / 'passwd'}\n"
        f"acl_file {out / 'acl'}\npersistence false\n"
        # Started as root, Mosquitto would switch to its own user, who cannot read pytest's tmp folder.
        "user root\n"
    )
    broker = subprocess.Popen([MOSQUITTO, "-c", str(out / "mosquitto.conf")], stderr=subprocess.PIPE)
    time.sleep(0.5)
    assert broker.poll() is None, broker.stderr.read() if broker.stderr else ""
    try:
        yield port
    finally:
        broker.terminate()
        broker.wait(5)
