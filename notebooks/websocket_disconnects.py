# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # WebSocket disconnects: incident runbook
#
# Chat messages stop arriving, live updates fail, users keep losing their connection. This runbook
# walks the symptoms checklist on your close logs (and, as they are given, your endpoint, proxy
# config and server), ranks the five usual root causes by the evidence, and ends with the fix and
# a postmortem to paste into the incident channel.
#
# **Fill the parameters cell below, then Run All.** With no input at all it shows a bundled
# sample incident. Secrets never go in parameters: put headers in environment variables and name
# them in `header_env`.

# %% tags=["parameters"]
target_url: str = ""  # ws:// or wss:// URL as users reach it (through proxies)
direct_url: str = ""  # the same service bypassing proxies/LBs, to compare
close_logs: list = []  # close-log paths or globs, any supported format
log_format: str = ""  # force a log format: one format id, or {path or glob: format id} ('': detect)
log_timezone: str = "UTC"  # time zone of log times that carry none: UTC, +02:00 or Europe/Berlin
proxy_config: str = ""  # nginx or HAProxy config file in front of the service
heartbeat_interval_s: float = 0.0  # the server's ping interval, seconds (0: unknown, -1: it sends none)
lb_preset: str = ""  # cloud LB/CDN in the path, e.g. aws-alb, gcp-https-lb, cloudflare ('': none)
lb_idle_timeout_s: float = 0.0  # idle timeout of a load balancer in the path, seconds (0: none)
server_port: int = 0  # local server port to sample TCP socket states (0: none)
server_pid: int = 0  # local server process to sample memory/fds (0: none)
probe_seconds: float = 75.0  # time budget of the live probes, seconds (3-3600)
connections: int = 20  # concurrent connections of the churn probe
header_env: list = []  # env var names holding 'Name: value' headers to send
insecure_tls: bool = False  # skip TLS certificate verification of probes
incident_id: str = ""  # incident id for the report (default: from the clock)
output_dir: str = "reports"  # folder for report.ipynb, report.html, diagnosis.json
events: list = []  # deploys/reloads: [{'ts': ISO time, 'label': ...}], 'TIME label' strings or files
baseline: str = ""  # a previous run's output folder: compare before/after the fix
dask_scheduler: str = ""  # read fleet-size logs on Dask: scheduler address (tcp://host:8786) or 'local'

# %%
import runbook.steps as rb

run = rb.start_run(
    target_url=target_url,
    direct_url=direct_url,
    close_logs=close_logs,
    log_format=log_format,
    log_timezone=log_timezone,
    proxy_config=proxy_config,
    heartbeat_interval_s=heartbeat_interval_s,
    lb_preset=lb_preset,
    lb_idle_timeout_s=lb_idle_timeout_s,
    server_port=server_port,
    server_pid=server_pid,
    probe_seconds=probe_seconds,
    connections=connections,
    header_env=header_env,
    insecure_tls=insecure_tls,
    incident_id=incident_id,
    output_dir=output_dir,
    events=events,
    baseline=baseline,
    dask_scheduler=dask_scheduler,
)
rb.check_inputs(run)

# %% [markdown]
# ## Summary
# The verdict, the leading cause and the one fix, filled in when the run reaches its end.

# %%
rb.show_summary(run)

# %% [markdown]
# ## Evidence: close logs
# Every file is parsed into one table (connects, disconnects, errors). Lines that look like records
# but do not parse are counted and shown, never dropped silently.

# %%
rb.read_close_logs(run)
rb.read_events(run)

# %% [markdown]
# ## Evidence: live endpoint, proxy config, server
# The handshake through target_url and direct_url side by side (101 direct but not through the
# proxy is the proxy signature), one idle and one pinging connection held for probe_seconds (who
# dies when, and how), churn of `connections` connections, and the server's sockets and memory.

# %%
rb.probe_endpoints(run)
rb.lint_proxy_config(run)
rb.sample_server(run)

# %% [markdown]
# ## 1. High WebSocket disconnect rates (>5% per minute)

# %%
rb.check_disconnect_rate(run)

# %% [markdown]
# ## 2. Connection timeouts and failed upgrades
# Lifetimes that pile up at one value are a timer in the path; dotted lines mark the defaults of
# common proxies, load balancers and NAT gateways.

# %%
rb.check_timeouts(run)

# %% [markdown]
# ## 3. Client-side reconnection loops

# %%
rb.check_reconnect_loops(run)

# %% [markdown]
# ## 4. Proxy/load balancer connection issues

# %%
rb.check_proxy(run)

# %% [markdown]
# ## 5. Memory leaks from abandoned connections

# %%
rb.check_leaks(run)

# %% [markdown]
# ## Root causes, ranked
# Start from the reference shares (proxy 40%, heartbeat 30%, network 20%, leaks 7%, client 3%);
# each named signal multiplies a cause by its likelihood ratio, at most one signal per family (one
# fact is never counted twice). "What would settle it" names the next check for every cause still
# in the running.

# %%
rb.rank_root_causes(run)

# %% [markdown]
# ## Recommended fixes

# %%
rb.recommend_fixes(run)

# %% [markdown]
# ## Verify the fix
# With `baseline` set to an earlier run's output folder: the unexpected-disconnect rate, the timer,
# the idle probe and each symptom, before and after.

# %%
rb.compare_with_baseline(run)

# %% [markdown]
# ## Postmortem

# %%
rb.write_postmortem(run)
rb.write_outputs(run)
