"""Risk policy file, hash vector (risk-and-state.md §2) and the reason-code set (§4)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from titan.risk.policy import (
    REQUIRED_KEYS,
    PolicyError,
    RiskState,
    canonical_policy_json,
    load_policy,
    parse_policy,
    policy_hash,
)
from titan.risk.reasons import REASONS, ReasonCode, dlq_reason, reason_table_markdown, render_reason

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "config" / "risk_policy.json"
CANONICAL_TEXT = (
    '{"correlationPenalty":0.5,"lastUpdated":0,"maxAccountLeverage":10,"maxCorrelation":0.7,'
    '"maxDailyLoss":-1000,"maxOpenOrdersPerSymbol":5,"maxPositionNotional":50000,"maxSlippageBps":100,'
    '"maxStalenessMs":5000,"minConfidenceScore":0.7,"minStopDistanceMultiplier":1.5,'
    '"symbolWhitelist":["BTC/USDT","ETH/USDT","SOL/USDT"],"version":1}'
)
EXPECTED_HASH = "7ff820b56b12d89d64dcb78a261a8062087cde3bc3d47e03e11037a4de354a7d"
RUST_HASH = "9a673e760519baedf56ab8b39c5f3cb5da84bd2b48fe885279f4317eef2e98fd"


def test_default_policy_file_hashes_to_the_spec_vector() -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert policy.policy_hash == EXPECTED_HASH
    assert policy.policy_hash != RUST_HASH
    document = json.loads(DEFAULT_POLICY.read_text())
    assert canonical_policy_json(document) == CANONICAL_TEXT.encode()
    assert list(document) == [
        "maxPositionNotional", "maxAccountLeverage", "maxDailyLoss", "maxOpenOrdersPerSymbol",
        "symbolWhitelist", "maxSlippageBps", "maxStalenessMs", "maxCorrelation", "correlationPenalty",
        "minConfidenceScore", "minStopDistanceMultiplier", "version", "lastUpdated",
    ]  # fmt: skip


def test_hash_of_the_literal_canonical_text() -> None:
    assert policy_hash(json.loads(CANONICAL_TEXT)) == EXPECTED_HASH


def test_default_policy_values_are_exact() -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert policy.max_position_notional == Decimal("50000.0")
    assert policy.max_daily_loss == Decimal(-1000)
    assert policy.max_open_orders_per_symbol == 5
    assert policy.symbol_whitelist == ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    assert policy.max_correlation == Decimal("0.7")
    assert policy.current_state is RiskState.NORMAL


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_missing_required_key_names_it(key: str) -> None:
    document = json.loads(DEFAULT_POLICY.read_text())
    del document[key]
    with pytest.raises(PolicyError, match=f"'{key}'"):
        parse_policy(json.dumps(document))


def test_missing_key_error_from_file_names_key_and_path(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"maxPositionNotional": 1}')
    with pytest.raises(PolicyError, match="maxAccountLeverage") as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_snake_case_aliases_and_staging_policy() -> None:
    staging = {
        "max_position_notional": 100, "max_account_leverage": 10, "max_daily_loss": -20,
        "max_open_orders_per_symbol": 2, "symbol_whitelist": ["BTCUSDT"], "max_slippage_bps": 50,
        "max_staleness_ms": 3000, "current_state": "Cautious",
    }  # fmt: skip
    policy = parse_policy(json.dumps(staging))
    assert policy.symbol_whitelist == ("BTC/USDT",)
    assert policy.max_open_orders_per_symbol == 2
    assert policy.max_staleness_ms == 3000
    assert policy.current_state is RiskState.CAUTIOUS
    assert policy.version == 0 and policy.max_correlation == Decimal("0.7")
    # The hash covers the document as loaded, aliases and all; state changes do not matter later.
    assert policy.policy_hash == policy_hash(staging)


def test_policy_update_changes_hash() -> None:
    document = json.loads(CANONICAL_TEXT)
    document["maxPositionNotional"] = 60000
    assert parse_policy(json.dumps(document)).policy_hash != EXPECTED_HASH


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"maxOpenOrdersPerSymbol": 1.5}, "maxOpenOrdersPerSymbol"),
        ({"maxAccountLeverage": "10"}, "maxAccountLeverage"),
        ({"symbolWhitelist": "BTC/USDT"}, "symbolWhitelist"),
        ({"current_state": "Panic"}, "current_state"),
    ],
)
def test_ill_typed_values_name_the_key(patch: dict[str, object], fragment: str) -> None:
    document = json.loads(CANONICAL_TEXT) | patch
    with pytest.raises(PolicyError, match=fragment):
        parse_policy(json.dumps(document))


def test_canonical_json_matches_fastpath_raw_vectors() -> None:
    vectors = json.loads((Path("/work/shared/vectors/fastpath_hmac.json")).read_text())
    for case in vectors["raw_cases"]:
        assert canonical_policy_json(json.loads(case["raw_signal_text"])).decode() == case["canonical"]


def test_every_reason_code_has_a_template_and_renders() -> None:
    assert set(REASONS) == set(ReasonCode)
    table = reason_table_markdown()
    for code in ReasonCode:
        assert f"`{code.value}`" in table
        assert render_reason(code)  # missing fields render as "?" rather than raising


def test_upstream_display_strings() -> None:
    assert (
        render_reason(
            ReasonCode.MAX_POSITION_NOTIONAL,
            symbol="BTC/USDT",
            current=Decimal("45000"),
            add=Decimal("6000.456"),
            limit=Decimal(50000),
        )
        == "Position cap exceeded for BTC/USDT: Curr 45000.00 + Add 6000.46 > Limit 50000.00"
    )
    assert dlq_reason(ReasonCode.SYMBOL_NOT_WHITELISTED, symbol="DOGE/USDT") == (
        "❌ RISK REJECTION: Symbol 'DOGE/USDT' not in whitelist"
    )
    assert dlq_reason(ReasonCode.INTENT_EXPIRED, latency_ms=6001) == "Intent EXPIRED: 6001 ms latency"
    assert render_reason(ReasonCode.INTENT_EXPIRED, latency_ms=6001) == "Latency 6001 ms"


def test_duplicate_keys_and_bad_json_are_refused() -> None:
    with pytest.raises(PolicyError, match="duplicate"):
        parse_policy(CANONICAL_TEXT[:-1] + ',"version":2}')
    with pytest.raises(PolicyError, match="invalid JSON"):
        parse_policy(b"{not json")
