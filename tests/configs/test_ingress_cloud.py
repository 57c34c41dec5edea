"""ingress-nginx Ingress/ConfigMap YAML, AWS ALB ingress and attributes JSON, and the cloud LB presets."""

from __future__ import annotations

import pytest

from runbook.configs import in_memory, lint_paths
from runbook.configs.cloud import PRESETS
from tests.configs.conftest import DATA

INGRESS = DATA / "ingress"


def test_ingress_with_annotations_is_clean():
    """proxy-read/send-timeout 3600 in the annotations: nothing to say at a 90 s heartbeat."""
    report = lint_paths([str(INGRESS / "with-annotations.yaml")], heartbeat_s=90)
    assert report.kind == "ingress" and report.findings == [] and report.upgrade_forwarded is True
    (timeout,) = report.path_timeouts
    assert (timeout.component, timeout.seconds, timeout.line, timeout.is_default) == ("ingress-nginx", 3600, 7, False)


def test_ingress_without_annotations_uses_the_60s_default():
    """No annotation: the 60 s default is a warning, an error past a 90 s heartbeat, with the annotation as fix."""
    path = str(INGRESS / "without-annotations.yaml")
    unknown = lint_paths([path])
    assert [(f.check, f.line) for f in unknown.findings] == [("ING002", 2)]
    late = lint_paths([path], heartbeat_s=90)
    assert sorted(f.check for f in late.findings) == ["ING001", "ING003"]
    assert '+    nginx.ingress.kubernetes.io/proxy-read-timeout: "3600"' in late.findings[0].fix
    assert late.path_timeouts[0].is_default


def test_controller_configmap_applies_to_ingresses():
    """The ConfigMap's 45 s read timeout applies to an Ingress without annotations; reloads are noted."""
    both = in_memory({"all.yaml": (INGRESS / "controller-configmap.yaml").read_text() + "---\n"
                      + (INGRESS / "without-annotations.yaml").read_text()})
    report = lint_paths(["all.yaml"], read=both.read, glob=both.glob, heartbeat_s=50)
    checks = {f.check: f for f in report.findings}
    assert set(checks) == {"ING001", "ING003", "ING005"}
    assert "45 s, 5 s short of the 50 s heartbeat (line 8)" in checks["ING001"].message
    assert report.path_timeouts[0].seconds == 45


def test_alb_ingress_and_attributes_json():
    """ALB idle timeout from the ingress annotation (600 s) and from describe-load-balancer-attributes (60 s)."""
    ingress = lint_paths([str(INGRESS / "alb-ingress.yaml")], heartbeat_s=30)
    assert ingress.findings == [] and ingress.path_timeouts[0].seconds == 600
    attrs = lint_paths([str(DATA / "alb-attributes.json")], heartbeat_s=60)
    (finding,) = attrs.findings
    assert (finding.check, finding.line) == ("LB001", 8)
    assert "modify-load-balancer-attributes" in finding.message
    assert (attrs.path_timeouts[0].component, attrs.path_timeouts[0].seconds) == ("aws-alb", 60)


@pytest.mark.parametrize(("preset", "heartbeat", "checks"), [
    ("aws-alb", 90, ["LB001"]), ("aws-alb", 30, []), ("aws-nlb", 30, []), ("heroku", None, ["LB002"]),
    ("gcp-https-lb", 20, ["LB003"]), ("aws-api-gateway", 30, ["LB003"]), ("cloudflare", 120, ["LB001"])])
def test_presets(preset, heartbeat, checks):
    """Each preset's timeouts, compared with the heartbeat; GCP's and API Gateway's are lifetime caps."""
    report = lint_paths([], lb_preset=preset, heartbeat_s=heartbeat)
    assert report.kind == "lb" and sorted(f.check for f in report.findings) == checks
    kinds = {t.kind for t in report.path_timeouts}
    assert ("lifetime" in kinds) == (PRESETS[preset].lifetime_s is not None)


def test_lb_idle_timeout_overrides_the_preset():
    report = lint_paths([], lb_preset="aws-alb", lb_idle_timeout_s=4000, heartbeat_s=90)
    assert report.findings == [] and report.path_timeouts[0].seconds == 4000 and not report.path_timeouts[0].is_default
    bare = lint_paths([], lb_idle_timeout_s=45, heartbeat_s=50)
    assert [f.check for f in bare.findings] == ["LB001"] and bare.path_timeouts[0].component == "lb"


def test_unknown_preset_is_a_bad_parameter():
    with pytest.raises(ValueError, match="unknown lb_preset 'alb'"):
        lint_paths([], lb_preset="alb")


def test_nginx_inc_websocket_services(tmp_path):
    """NGINX Inc ingress: a service missing from nginx.org/websocket-services is an error; the fix lists it."""
    from tests.configs.conftest import apply_patch

    target = tmp_path / "nginx-inc.yaml"
    target.write_text((INGRESS / "nginx-inc.yaml").read_text())
    report = lint_paths([str(target)], heartbeat_s=30)
    (missing,) = report.findings
    assert (missing.check, missing.line) == ("ING006", 8) and "service chat not in nginx.org/websocket-services" in missing.message
    assert report.upgrade_forwarded is False
    assert report.path_timeouts[0].component == "nginx-ingress" and report.path_timeouts[0].seconds == 3600
    apply_patch(target, missing.fix)
    assert 'nginx.org/websocket-services: "notifications,chat"' in target.read_text()
    after = lint_paths([str(target)], heartbeat_s=30)
    assert after.findings == [] and after.upgrade_forwarded is True
