"""Configuration: defaults, environment overrides, one clear message per problem, secret masking."""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.cli import DEFAULT_CONFIG, main
from titan.config import (
    MASK,
    ConfigError,
    load_config,
    masked,
    preflight,
    secret_values,
    to_toml,
)

LIVE_EXAMPLE = DEFAULT_CONFIG.parent / "live.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "t.toml"
    p.write_text(text)
    return p


def test_default_config_loads_without_any_key() -> None:
    cfg = load_config(DEFAULT_CONFIG, env={})
    assert cfg.http.port == 3002 and cfg.http.bind == "127.0.0.1"
    # Everything local: the venue simulator under the supervisor (no keys: its [sim] accounts), its
    # streams as market data, orders to its Bybit and to paper.
    assert cfg.engine.start_sim and cfg.marketdata.mode == "venues"
    assert cfg.venues_enabled() == ["bybit", "paper"] and cfg.venues.bybit.api_key == ""
    assert preflight(cfg) == [] or all("live engine" in p for p in preflight(cfg))


def test_live_example_is_disarmed_and_has_no_secrets() -> None:
    doc = tomllib.loads(LIVE_EXAMPLE.read_text())
    cfg = load_config(
        LIVE_EXAMPLE,
        env={f"{v}_API_{k}": "x" * 8 for v in ("BYBIT", "BINANCE", "MEXC") for k in ("KEY", "SECRET")}
        | {"TITAN_HMAC_SECRET": "s" * 32},
    )
    assert cfg.execution.armed_at_start is False
    assert set(cfg.venues_enabled()) >= {"bybit", "binance", "mexc"}
    assert all(not doc["venues"][v].get("api_key") for v in ("bybit", "binance", "mexc"))
    assert not doc.get("ingress", {}).get("hmac_secret")


@pytest.mark.parametrize(
    ("env", "path", "expected"),
    [
        ({"PORT": "4100"}, ("http", "port"), 4100),
        ({"NATS_URL": "nats://h:1"}, ("nats", "url"), "nats://h:1"),
        ({"LOG_LEVEL": "DEBUG"}, ("engine", "log_level"), "DEBUG"),
        ({"TITAN_IPC_SOCKET": "/tmp/x.sock"}, ("ingress", "socket_path"), "/tmp/x.sock"),
        ({"TITAN_HMAC_SECRET": "abc123"}, ("ingress", "hmac_secret"), "abc123"),
        ({"TITAN_EXECUTION_API_KEY": "k1"}, ("http", "api_key"), "k1"),
        ({"BYBIT_API_KEY": "bk"}, ("venues", "bybit", "api_key"), "bk"),
        ({"BYBIT_API_SECRET": "bs"}, ("venues", "bybit", "api_secret"), "bs"),
        ({"BINANCE_API_KEY": "nk"}, ("venues", "binance", "api_key"), "nk"),
        ({"BINANCE_API_SECRET": "ns"}, ("venues", "binance", "api_secret"), "ns"),
        ({"MEXC_API_KEY": "mk"}, ("venues", "mexc", "api_key"), "mk"),
        ({"MEXC_API_SECRET": "ms"}, ("venues", "mexc", "api_secret"), "ms"),
        ({"TITAN__HTTP__BIND": "0.0.0.0"}, ("http", "bind"), "0.0.0.0"),
        ({"TITAN__VENUES__BYBIT__LEVERAGE": "5"}, ("venues", "bybit", "leverage"), 5),
        ({"TITAN__SUPERVISOR__RESTART_BACKOFF_MS": "[1, 2]"}, ("supervisor", "restart_backoff_ms"), [1, 2]),
        ({"TITAN__VENUES__PAPER__TAKER_FEE": '"0.001"'}, ("venues", "paper", "taker_fee"), "0.001"),
        ({"TITAN__ENGINE__LOG_JSON": "true"}, ("engine", "log_json"), True),
    ],
)
def test_environment_overrides(env: dict[str, str], path: tuple[str, ...], expected: object) -> None:
    node: object = load_config(DEFAULT_CONFIG, env=env)
    for part in path:
        node = getattr(node, part)
    assert node == expected


def test_file_secret_wins_over_legacy_variable(tmp_path: Path) -> None:
    p = write(tmp_path, '[ingress]\nhmac_secret = "from-file"\n')
    assert load_config(p, env={"TITAN_HMAC_SECRET": "from-env"}).ingress.hmac_secret == "from-file"


VALID_KEYS = {"TITAN_HMAC_SECRET": "s" * 16}


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[shm]\nring_slots = 1000\n", {}, "shm.ring_slots must be a power of two ≥ 2 (got 1000)"),
        ("[shm]\nslot_size = 60\n", {}, "shm.slot_size must be a multiple of 8 and ≥ 64 (got 60)"),
        ("[http]\nport = 70000\n", {}, "http.port must be 1..65535 (got 70000)"),
        ("", {"PORT": "0"}, "http.port must be 1..65535 (got 0)"),
        ("[ingress]\nmax_connections = 0\n", {}, "ingress.max_connections must be ≥ 1"),
        ("[ingress]\nmax_frame_bytes = 10\n", {}, "ingress.max_frame_bytes must be ≥ 256"),
        ("[marketdata]\nsymbols = []\n", {}, "marketdata.symbols cannot be empty"),
        (
            '[marketdata]\nsymbols = ["DOGE/USDT"]\n',
            {},
            "marketdata.sim_prices has no starting price for 'DOGE/USDT'",
        ),
        (
            '[venues.paper]\nprice_source = "nowhere"\n',
            {},
            "venues.paper.price_source 'nowhere' is not a market-data venue",
        ),
        ('[engine]\nlog_level = "LOUD"\n', {}, "engine.log_level must be DEBUG/INFO/WARNING/ERROR/CRITICAL"),
        ("[nats]\nembedded = false\n", {}, "NATS URL cannot be empty"),
        ("", {"NATS_URL": ""}, "NATS URL cannot be empty"),
        ("", {"NATS_URL": "  "}, "NATS URL cannot be empty"),
        ("[supervisor]\nrestart_backoff_ms = []\n", {}, "supervisor.restart_backoff_ms must be a non-empty"),
        ("[supervisor]\nstop_timeout_s = 0\n", {}, "supervisor.stop_timeout_s must be > 0"),
        ("[supervisor]\ncrash_loop_max_restarts = 0\n", {}, "supervisor.crash_loop_max_restarts must be ≥ 1"),
        ("[supervisor]\nheartbeat_timeout_ms = 5\n", {}, "supervisor.heartbeat_timeout_ms must be ≥ 100"),
        ("[venues.bybit]\nenabled = true\n", {}, "Exchange 'bybit' is enabled but API Key is missing"),
        (
            "[venues.binance]\nenabled = true\n",
            {"BINANCE_API_KEY": "k"},
            "Exchange 'binance' is enabled but API Secret is missing",
        ),
        ("[venues.mexc]\nenabled = true\n", {}, "Exchange 'mexc' is enabled but API Key is missing"),
        # R50: routing weights (upstream's messages; '{n}' is "default" or the source), each naming its key.
        (
            "[routing]\nweights = { paper = 0 }\n",
            {},
            "Routing weight for 'default' must be > 0 (exchange: paper)",
        ),
        ("[routing]\nweights = { paper = -1.5 }\n", {}, "(routing.weights.paper = -1.5)"),
        (
            "[routing]\nweights = { paper = nan }\n",
            {},
            "Routing weight for 'default' must be > 0 (exchange: paper)",
        ),
        (
            "[routing]\nweights = { paper = inf }\n",
            {},
            "Routing weight for 'default' must be > 0 (exchange: paper)",
        ),
        (
            "[routing.per_source.hunter]\nweights = { paper = 0 }\n",
            {},
            "Routing weight for 'hunter' must be > 0 (exchange: paper)"
            " (routing.per_source.hunter.weights.paper = 0",
        ),
        ("[routing]\nweights = {}\n", {}, "Routing weights for 'default' cannot be empty (routing.weights)"),
        (
            "[routing.per_source.scavenger]\nweights = {}\n",
            {},
            "Routing weights for 'scavenger' cannot be empty (routing.per_source.scavenger.weights)",
        ),
        (
            "[routing]\nweights = { bybt = 1 }\n",
            {},
            "Routing weights for 'default' name unknown venue 'bybt' (routing.weights.bybt;",
        ),
        (
            "[routing]\nweights = { Paper = 1 }\n",
            {},
            "Routing weights for 'default' name unknown venue 'Paper'",
        ),
        (
            "[routing.per_source.sentinel]\nweights = { paper = 1, kraken = 2 }\n",
            {},
            "Routing weights for 'sentinel' name unknown venue 'kraken'"
            " (routing.per_source.sentinel.weights.kraken;",
        ),
        (
            "[routing]\nweights = { mexc = 1 }\n",
            {},
            "Routing weights for 'default' name venue 'mexc', which is not enabled (routing.weights.mexc;",
        ),
        (
            "",
            {"TITAN__ROUTING__WEIGHTS": "{ paper = 0 }"},
            "Routing weight for 'default' must be > 0 (exchange: paper)",
        ),
        (
            "[risk]\nbrain_heartbeat_timeout_ms = 0\n",
            {},
            "risk.brain_heartbeat_timeout_ms must be ≥ 100 (got 0)",
        ),
        ("[reconcile]\nnot_found_probes = 0\n", {}, "reconcile.not_found_probes must be ≥ 1 (got 0)"),
        ("[http]\nprot = 1\n", {}, "Object contains unknown field `prot`"),
        ('[http]\nport = "high"\n', {}, "Expected `int`, got `str` - at `$.http.port`"),
        ("[http\n", {}, "invalid TOML"),
        ("", {"TITAN__PORT": "1"}, "TITAN__PORT: expected TITAN__<SECTION>__<KEY>"),
        ("", {"TITAN__HTTP__PORT__X": "1"}, "Expected `int`, got `object` - at `$.http.port`"),
        ("[http]\nport = 1\n", {"TITAN__HTTP__PORT__X": "1"}, "http.port: expected a table, got 1"),
    ],
)
def test_every_config_error_has_its_message(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, toml), env=VALID_KEYS | env)
    assert message in str(err.value)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[shm]\nring_slots = 3\n[http]\nport = 0\n"), env={})
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid configuration:"
    assert len(lines) == 3


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"config file not found: /no/such\.toml"):
        load_config("/no/such.toml", env={})


def test_enabled_venue_without_keys_is_fine_under_the_simulator(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[engine]\nstart_sim = true\n[venues.bybit]\nenabled = true\n"), env={})
    assert "bybit" in cfg.venues_enabled()


@pytest.fixture
def isolated_socket(tmp_path: Path) -> str:
    return str(tmp_path / "titan.sock")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("", "no FastPath HMAC secret: set TITAN_HMAC_SECRET"),
        ("[ingress]\nhmac_secret_file = '{tmp}/missing'\n", "ingress.hmac_secret_file: cannot read"),
        ("[ingress]\nhmac_secret_file = '{tmp}/empty'\n", "the FastPath HMAC secret cannot be empty"),
    ],
)
def test_preflight_secret_problems(tmp_path: Path, isolated_socket: str, toml: str, message: str) -> None:
    (tmp_path / "empty").write_text("\n")
    p = write(tmp_path, toml.format(tmp=tmp_path))
    cfg = load_config(p, env={"TITAN_IPC_SOCKET": isolated_socket})
    problems = preflight(cfg)
    assert len(problems) == 1 and message in problems[0]


@pytest.fixture
def live_socket(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "live.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    try:
        yield path
    finally:
        srv.close()


def test_preflight_socket_owned_by_live_engine(tmp_path: Path, live_socket: str) -> None:
    cfg = load_config(write(tmp_path, ""), env={"TITAN_IPC_SOCKET": live_socket, **VALID_KEYS})
    assert preflight(cfg) == [
        f"ingress.socket_path {live_socket} is owned by a live engine"
        " (stop it, or point TITAN_IPC_SOCKET elsewhere)"
    ]


def test_preflight_stale_socket_file_is_not_a_problem(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # the file stays, nobody listens
    cfg = load_config(write(tmp_path, ""), env={"TITAN_IPC_SOCKET": path, **VALID_KEYS})
    assert preflight(cfg) == []


SECRET_ENV = {
    "TITAN_HMAC_SECRET": "hmac-secret-value-1",
    "BYBIT_API_KEY": "bybit-key-value-2",
    "BYBIT_API_SECRET": "bybit-secret-value-3",
    "BINANCE_API_SECRET": "binance-secret-value-4",
    "MEXC_API_SECRET": "mexc-secret-value-5",
    "NATS_PASS": "nats-pass-value-6",
    "TITAN_EXECUTION_API_KEY": "api-key-value-7",
    "NATS_URL": "nats://user:url-pass-value-8@nats.example:4222",
}


def test_masked_config_hides_every_secret() -> None:
    cfg = load_config(DEFAULT_CONFIG, env=SECRET_ENV)
    text = to_toml(masked(cfg))
    for value in SECRET_ENV.values():
        if value.startswith("nats://"):
            assert "url-pass-value-8" not in text
        else:
            assert value not in text
    assert masked(cfg)["venues"]["bybit"]["api_secret"] == MASK
    assert masked(cfg)["nats"]["url"] == f"nats://{MASK}@nats.example:4222"
    assert tomllib.loads(text)["http"]["port"] == 3002  # the dump is valid TOML
    assert all(a["secret"] == MASK for a in masked(cfg)["sim"]["accounts"])


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=4, max_size=40))
def test_any_secret_value_is_masked_and_listed(secret: str) -> None:
    cfg = load_config(DEFAULT_CONFIG, env={"BINANCE_API_SECRET": secret})
    assert secret in secret_values(cfg)
    assert masked(cfg)["venues"]["binance"]["api_secret"] == MASK


def test_config_check_cli_prints_masked_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for k, v in SECRET_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("TITAN_IPC_SOCKET", str(tmp_path / "x.sock"))
    assert main(["config", "check"]) == 0
    out, err = capsys.readouterr()
    assert "[venues.bybit]" in out and MASK in out
    for value in SECRET_ENV.values():
        assert value not in out + err


def test_config_check_cli_reports_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, "[venues.bybit]\nenabled = true\n[shm]\nslot_size = 7\n")
    assert main(["--config", str(p), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "Exchange 'bybit' is enabled but API Key is missing" in err
    assert "shm.slot_size must be a multiple of 8" in err
