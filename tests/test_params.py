"""Tests of parameter validation (notebook parameters cell == CLI -p names)."""

import subprocess
import sys

import pytest

from runbook.errors import ParameterError
from runbook.params import PARAMS, defaults, has_inputs, validate_params


def test_defaults_are_valid_and_give_no_input():
    """The defaults validate and count as 'no input' (the sample incident)."""
    values = validate_params({})
    assert values == defaults()
    assert not has_inputs(values)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('["a.log", "b/*.jsonl"]', ["a.log", "b/*.jsonl"]),
        ("logs/*.log", ["logs/*.log"]),
        (["a.log", " ", "b.log"], ["a.log", "b.log"]),
        ("", []),
        (None, []),
    ],
)
def test_list_parameters_accept_lists_json_and_single_values(raw, expected):
    """close_logs takes a real list, a JSON list string or a single path/glob."""
    assert validate_params({"close_logs": raw})["close_logs"] == expected


def test_papermill_guessed_types_are_coerced():
    """-p guesses ints and bools; numbers given as strings are accepted where numbers are due."""
    values = validate_params({"server_port": "8080", "insecure_tls": "True", "incident_id": 1234, "probe_seconds": "12.5"})
    assert values["server_port"] == 8080
    assert values["insecure_tls"] is True
    assert values["incident_id"] == "1234"
    assert values["probe_seconds"] == 12.5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"close_log": "a.log"}, "parameter 'close_log': unknown parameter"),
        ({"target_url": "https://chat.example.com/ws"}, "did you mean wss://chat.example.com/ws"),
        ({"target_url": "ws://"}, "parameter 'target_url': has no host name"),
        ({"direct_url": "ws://host:99999/ws"}, "parameter 'direct_url': has a port"),
        ({"server_port": "http"}, "parameter 'server_port': must be a whole number"),
        ({"server_port": 70000}, "parameter 'server_port': must be at most 65535"),
        ({"connections": 0}, "parameter 'connections': must be between"),
        ({"probe_seconds": -1}, "parameter 'probe_seconds'"),
        ({"insecure_tls": "maybe"}, "parameter 'insecure_tls': must be true or false"),
        ({"close_logs": '["a.log",'}, "parameter 'close_logs': looks like a JSON list"),
        ({"close_logs": [1, 2]}, "parameter 'close_logs': items must be strings"),
        ({"header_env": {"a": 1}}, "parameter 'header_env': must be a list"),
    ],
)
def test_bad_parameters_name_what_to_fix(raw, message):
    """Each bad value raises ParameterError whose message names the parameter."""
    with pytest.raises(ParameterError) as caught:
        validate_params(raw)
    assert message in str(caught.value)


def test_any_input_switches_off_the_sample():
    """Any one input (a log, a URL, a port) means the user's data, not the sample."""
    for raw in ({"close_logs": "x.log"}, {"target_url": "ws://127.0.0.1:1/"}, {"server_port": 8080}):
        assert has_inputs(validate_params(raw))


def test_cell_lines_are_papermill_help_format():
    """Each spec renders as `name: type = default  # help`."""
    lines = [spec.cell_line() for spec in PARAMS]
    assert 'close_logs: list = []  # close-log paths or globs, any supported format' in lines
    assert all(" = " in line and "  # " in line for line in lines)


@pytest.mark.parametrize("value", ["local", "tcp://10.0.0.5:8786", " tls://scheduler.internal:8786 ", ""])
def test_dask_scheduler_takes_an_address_or_local(value):
    assert validate_params({"dask_scheduler": value})["dask_scheduler"] == value.strip()


@pytest.mark.parametrize("value", ["10.0.0.5:8786", "http://host:8786", "locall"])
def test_dask_scheduler_names_what_to_give(value):
    with pytest.raises(ParameterError, match="dask_scheduler.*tcp://"):
        validate_params({"dask_scheduler": value})


def test_the_run_command_imports_no_pandas(tmp_path):
    """`ws-runbook run` checks its parameters and input files, runs papermill and exports the
    HTML in a process that never needs pandas (the kernel reads the logs): pandas and plotly's
    figure classes took 0.15-0.2 s of every run there."""
    log = tmp_path / "close.log"
    log.write_text('{"ts": "2026-11-28T03:00:00Z", "event": "connect", "connectionId": "a"}\n')
    code = (
        "import sys\n"
        "import papermill\n"
        "import runbook.cli\n"
        "import runbook.report.export\n"
        "from runbook.execute import check_given_inputs\n"
        "from runbook.params import validate_params\n"
        f"raw = {{'close_logs': [{str(log)!r}], 'heartbeat_interval_s': -1, 'output_dir': {str(tmp_path / 'out')!r}}}\n"
        "check_given_inputs(raw, validate_params(raw), 600)\n"
        "print(sorted(name for name in sys.modules if name in ('pandas', 'plotly.graph_objects')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
