"""R50 (routing weights fail fast, the engine refuses to start) and R24 (the Brain-heartbeat default)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from titan.cli import main
from titan.config import ConfigError, brain_heartbeat_required, load_config, resolved_env
from titan.engine.settings import settings_from_config

SECRET = {"TITAN_HMAC_SECRET": "s" * 16}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "t.toml"
    p.write_text(text)
    return p


# --- R50: routing ------------------------------------------------------------------------------


def test_valid_weights_load_and_reach_the_router(tmp_path: Path) -> None:
    text = """
[venues.bybit]
enabled = true
[engine]
start_sim = true
[routing]
weights = { bybit = 2, paper = 0.5 }
[routing.per_source.hunter]
fanout = false
weights = { paper = 1 }
[routing.per_source.sentinel]
fanout = true
"""
    cfg = load_config(write(tmp_path, text), env=SECRET)
    routing = settings_from_config(cfg).checks.routing
    assert {k: str(v) for k, v in routing.weights.items()} == {"bybit": "2.0", "paper": "0.5"}
    assert routing.per_source["hunter"].weights is not None
    assert routing.per_source["sentinel"].weights is None  # fanout only: the global weights apply


def test_unset_weights_leave_the_router_on_its_fallback(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""), env=SECRET)
    assert cfg.routing.weights is None
    assert settings_from_config(cfg).checks.routing.weights == {}


def test_every_routing_problem_is_listed_at_once(tmp_path: Path) -> None:
    text = """
[routing]
weights = { paper = 0, binanse = 1 }
[routing.per_source.hunter]
weights = {}
"""
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env=SECRET)
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 3, lines
    assert "Routing weight for 'default' must be > 0 (exchange: paper)" in lines[0]
    assert "Routing weights for 'default' name unknown venue 'binanse'" in lines[1]
    assert "Routing weights for 'hunter' cannot be empty" in lines[2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[routing]\nweights = { paper = 0 }\n",
            "Routing weight for 'default' must be > 0 (exchange: paper)",
        ),
        ("[routing]\nweights = {}\n", "Routing weights for 'default' cannot be empty"),
        (
            "[routing]\nweights = { kraken = 1 }\n",
            "Routing weights for 'default' name unknown venue 'kraken'",
        ),
    ],
)
def test_engine_refuses_to_start_on_bad_routing(tmp_path: Path, text: str, message: str) -> None:
    """`titan run` exits 2 with the message before it starts anything (no process, no shared memory)."""
    instance = f"tr50{os.getpid() % 100000}"
    cfg = write(tmp_path, f'[engine]\ninstance = "{instance}"\nrun_dir = "{tmp_path / "run"}"\n{text}')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TITAN", "NATS_", "PORT"))} | SECRET
    done = subprocess.run(
        [sys.executable, "-m", "titan.cli", "--config", str(cfg), "run", "--nats-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "invalid configuration" in done.stderr
    assert not (tmp_path / "run").exists()
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(instance)]


def test_config_check_reports_routing_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, "[routing.per_source.scavenger]\nweights = { paper = -1 }\n")
    assert main(["--config", str(p), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "Routing weight for 'scavenger' must be > 0 (exchange: paper)" in err
    assert "routing.per_source.scavenger.weights.paper = -1" in err


# --- R24: risk.brain_heartbeat_required ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected", "why"),
    [
        ("", {}, False, "embedded NATS server"),
        ('[nats]\nurl = "nats://10.0.0.1:4222"\n', {}, True, "external NATS server"),
        ("[nats]\nembedded = false\nurl = 'nats://h:4222'\n", {}, True, "external NATS server"),
        ("", {"NATS_URL": "nats://h:4222"}, True, "external NATS server"),
        ("", {"TITAN__NATS__URL": '"nats://h:4222"'}, True, "external NATS server"),
        ("[risk]\nbrain_heartbeat_required = true\n", {}, True, "set explicitly"),
        (
            '[nats]\nurl = "nats://h:4222"\n[risk]\nbrain_heartbeat_required = false\n',
            {},
            False,
            "set explicitly",
        ),
        ("", {"TITAN__RISK__BRAIN_HEARTBEAT_REQUIRED": "true"}, True, "set explicitly"),
        (
            '[nats]\nurl = "nats://h:4222"\n',
            {"TITAN__RISK__BRAIN_HEARTBEAT_REQUIRED": "false"},
            False,
            "explicitly",
        ),
    ],
)
def test_heartbeat_required_resolution(
    tmp_path: Path, text: str, env: dict[str, str], expected: bool, why: str
) -> None:
    cfg = load_config(write(tmp_path, text), env=SECRET | env)
    required, reason = brain_heartbeat_required(cfg)
    assert (required, why in reason) == (expected, True), reason
    assert settings_from_config(cfg).heartbeat_required is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ('[nats]\nurl = "nats://10.0.0.1:4222"\n', True),
        ("[risk]\nbrain_heartbeat_required = true\n", True),
        ('[nats]\nurl = "nats://10.0.0.1:4222"\n[risk]\nbrain_heartbeat_required = false\n', False),
    ],
)
def test_children_resolve_like_the_supervisor(tmp_path: Path, text: str, expected: bool) -> None:
    """A child process sees the embedded server's URL in NATS_URL; the supervisor's resolved value wins."""
    path = write(tmp_path, text)
    supervisor_cfg = load_config(path, env=SECRET)
    child_env = SECRET | {"NATS_URL": "nats://127.0.0.1:40001"} | resolved_env(supervisor_cfg)
    child_cfg = load_config(path, env=child_env)
    assert settings_from_config(child_cfg).heartbeat_required is expected


def test_without_the_supervisors_value_a_child_would_mistake_the_embedded_server(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    child_env = SECRET | {"NATS_URL": "nats://127.0.0.1:40001"}
    assert brain_heartbeat_required(load_config(path, env=child_env))[0] is True  # why resolved_env exists
    assert resolved_env(load_config(path, env=SECRET)) == {"TITAN__RISK__BRAIN_HEARTBEAT_REQUIRED": "false"}


def test_shipped_configs_resolve_as_documented() -> None:
    root = Path(__file__).resolve().parents[2] / "config"
    keys = {f"{v}_API_{k}": "x" * 8 for v in ("BYBIT", "BINANCE", "MEXC") for k in ("KEY", "SECRET")}
    assert brain_heartbeat_required(load_config(root / "default.toml", env={}))[0] is False  # make run
    assert brain_heartbeat_required(load_config(root / "live.example.toml", env=SECRET | keys))[0] is True


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "",
            "# risk.brain_heartbeat_required = false: unset: the embedded NATS server has no Brain attached",
        ),
        (
            '[nats]\nurl = "nats://h:4222"\n',
            "# risk.brain_heartbeat_required = true: unset: the engine uses an ext",
        ),
        (
            "[risk]\nbrain_heartbeat_required = true\n",
            "# risk.brain_heartbeat_required = true: set explicitly",
        ),
    ],
)
def test_config_check_shows_the_effective_heartbeat_rule_and_why(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    line: str,
) -> None:
    for name in list(os.environ):
        if name.startswith(("TITAN", "NATS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TITAN_HMAC_SECRET", "s" * 16)
    monkeypatch.setenv("TITAN_IPC_SOCKET", str(tmp_path / "x.sock"))
    p = write(tmp_path, text)
    assert main(["--config", str(p), "config", "check"]) == 0
    out = capsys.readouterr().out
    assert any(row.startswith(line) for row in out.splitlines()), out[-600:]
    expected = "true" if "= true" in line else "false"
    risk = out.split("[risk]", 1)[1].split("\n[", 1)[0]
    assert f"brain_heartbeat_required = {expected}" in risk  # the value in effect, in the TOML too
    assert "= None" not in out and '"None"' not in out  # unset keys are left out, never printed as None
