"""Bad input is data: parse errors and missing includes are findings, unusable files a clear error."""

from __future__ import annotations

import json

from runbook.configs import in_memory, lint_paths
from runbook.configs.checks import CHECKS, Severity
from tests.configs.conftest import DATA


def test_syntax_error_is_a_finding_with_line_and_parser_message():
    report = lint_paths([str(DATA / "nginx/syntax-error.conf")])
    assert report.ok
    (parse,) = report.findings
    assert (parse.check, parse.line, parse.severity) == ("CFG001", 4, "error")
    assert 'directive "proxy_pass" is not terminated by ";"' in parse.message


def test_unbalanced_braces():
    source = in_memory({"a.conf": "http {\n    server {\n        listen 80;\n}\n"})
    report = lint_paths(["a.conf"], read=source.read, glob=source.glob)
    assert [(f.check, f.line) for f in report.findings] == [("CFG001", 4)]
    assert 'unexpected end of file, expecting "}"' in report.findings[0].message


def test_missing_include_is_a_finding():
    report = lint_paths([str(DATA / "nginx/missing-include.conf")])
    (missing,) = [f for f in report.findings if f.check == "CFG002"]
    assert missing.line == 2 and "missing/websocket.conf" in missing.message and "no such file" in missing.message


def test_include_glob_without_match_is_fine():
    source = in_memory({"/etc/n/nginx.conf": "events {}\nhttp {\n    include /etc/n/conf.d/*.conf;\n}\n"})
    report = lint_paths(["/etc/n/nginx.conf"], read=source.read, glob=source.glob)
    assert [f.check for f in report.findings] == ["CFG003"]


def test_include_loop_is_reported_once():
    source = in_memory({"/c/a.conf": "events {}\nhttp {\n    include b.conf;\n}\n", "/c/b.conf": "include b.conf;\n"})
    report = lint_paths(["/c/a.conf"], read=source.read, glob=source.glob)
    assert any(f.check == "CFG001" and "loops back" in f.message for f in report.findings)


def test_empty_binary_and_foreign_files_are_clear_errors(tmp_path):
    (tmp_path / "empty.conf").write_text("  \n")
    (tmp_path / "blob.conf").write_bytes(b"\x7fELF\x00\x01\x02")
    (tmp_path / "notes.txt").write_text("Remember to buy milk.\nAnd eggs.\n")
    (tmp_path / "data.json").write_text(json.dumps({"hello": 1}))
    expected = "expected an nginx or HAProxy config"
    for name, problem in (("empty.conf", "empty file"), ("notes.txt", "not an nginx config"), ("data.json", "JSON that is not ALB attributes")):
        report = lint_paths([str(tmp_path / name)])
        assert not report.ok and problem in report.error and expected in report.error, report.error
    blob = lint_paths([str(tmp_path / "blob.conf")])
    assert not blob.ok and "binary file" in blob.error
    missing = lint_paths([str(tmp_path / "nope.conf")])
    assert missing.error == f"{tmp_path / 'nope.conf'}: cannot read: no such file or directory"
    no_match = lint_paths([str(tmp_path / "*.cfg")])
    assert "no file matches this pattern" in no_match.error


def test_one_bad_file_among_good_ones_is_a_finding(tmp_path):
    (tmp_path / "empty.conf").write_text("")
    report = lint_paths([str(DATA / "haproxy/with-tunnel.cfg"), str(tmp_path / "empty.conf")])
    assert report.ok and [f.check for f in report.findings] == ["CFG004"]


def test_checks_table_is_complete():
    """Every check has an id matching its family, a severity and what/why/fix text; ids are unique."""
    for check_id, check in CHECKS.items():
        assert check_id[:3] in ("CFG", "NGX", "HAP", "ING", "LB0") and check.severity in Severity
        assert check.what and check.why and check.fix and check.name


def test_findings_only_use_checks_from_the_table():
    """The linters never invent ids: every id in their findings is in the one table."""
    import runbook.configs as configs

    paths = [str(p) for p in DATA.rglob("*") if p.is_file() and "debian/mime" not in str(p)]
    ids = set()
    for path in paths:
        ids |= {f.check for f in configs.lint_paths([path], heartbeat_s=100).findings}
    assert ids and ids <= set(CHECKS)


def test_random_text_never_raises():
    """Two hundred random snippets built from config characters: every one gives a report, never a traceback."""
    import random
    import string

    rng = random.Random(7)
    alphabet = string.printable + "{};$#'\"" * 4
    pieces = ["server {", "location /ws {", "}", "proxy_pass http://a;", "map $http_upgrade $c {", "include x/*.conf;",
              "backend b\n", "frontend f\n", "timeout tunnel 1h\n", "apiVersion: v1\nkind: Ingress\n", '{"Attributes": [']
    files = {}
    for i in range(200):
        parts = [rng.choice(pieces) if rng.random() < 0.5 else "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
                 for _ in range(rng.randint(1, 12))]
        files[f"f{i}.conf"] = "\n".join(parts)
    source = in_memory(files)
    for name in files:
        report = lint_paths([name], read=source.read, glob=source.glob, heartbeat_s=30, target_path="/ws")
        assert report.ok or report.error
