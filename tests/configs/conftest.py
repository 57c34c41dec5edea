"""Config-lint test helpers: the real nginx and haproxy binaries check that samples stay valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from runbook.configs.nginx_parse import fragment_context
from tests.conftest import require_real

DATA = Path(__file__).parent / "data"
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def nginx_binary() -> str:
    """nginx (PATH, then /usr/sbin), else skip, or fail under RUNBOOK_REQUIRE_REAL=1."""
    return shutil.which("nginx") or require_real("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "nginx")


def haproxy_binary() -> str:
    return shutil.which("haproxy") or require_real("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else "haproxy")


def nginx_test(conf: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """``nginx -t`` on ``conf``; a fragment (a sites file, a server block) is wrapped in a main config."""
    text = conf.read_text()
    context = fragment_context(text, str(conf))
    main = conf
    if context:
        wrapper = "events {}\nhttp {\n    include %s;\n}\n" % conf.resolve()
        if context == ("http", "server"):
            wrapper = "events {}\nhttp {\n    server {\n        listen 127.0.0.1:18099;\n        include %s;\n    }\n}\n" % conf.resolve()
        main = tmp_path / "nginx-test-main.conf"
        main.write_text(wrapper)
    (tmp_path / "logs").mkdir(exist_ok=True)
    return subprocess.run([nginx_binary(), "-t", "-q", "-p", str(tmp_path), "-e", "stderr", "-c", str(main.resolve())],  # noqa: S603
                          capture_output=True, text=True, timeout=30, check=False)


def assert_nginx_accepts(conf: Path, tmp_path: Path) -> None:
    done = nginx_test(conf, tmp_path)
    assert done.returncode == 0, f"nginx -t rejects {conf}: {done.stderr}"


def assert_haproxy_accepts(conf: Path) -> None:
    done = subprocess.run([haproxy_binary(), "-c", "-q", "-f", str(conf)], capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    assert done.returncode == 0, f"haproxy -c rejects {conf}: {done.stderr}"


def apply_patch(target: Path, diff: str) -> None:
    """Apply a unified diff to ``target`` with GNU patch; fail the test if it does not apply cleanly."""
    patch = require_real("patch")
    done = subprocess.run([patch, "--batch", "--forward", "--no-backup-if-mismatch", "-F0", str(target)],  # noqa: S603
                          input=diff, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"patch failed on {target}:\n{done.stdout}{done.stderr}\n{diff}"
