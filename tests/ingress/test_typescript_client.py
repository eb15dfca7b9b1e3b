"""The unchanged upstream TypeScript FastPathClient against the real ingress process (fastpath.md §12).

The client source is not vendored here. Transpile ``FastPathClient.ts`` (TypeScript ``transpileModule``,
CommonJS, ES2022) and point ``TITAN_TS_FASTPATH_CLIENT_JS`` at the resulting ``.js``; without it (or
without node) the test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from .harness import SECRET, IngressRun, run_ingress

CLIENT_JS = os.environ.get("TITAN_TS_FASTPATH_CLIENT_JS", "")
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(
        not (CLIENT_JS and os.path.exists(CLIENT_JS)), reason="TITAN_TS_FASTPATH_CLIENT_JS not set"
    ),
    pytest.mark.skipif(NODE is None, reason="node not installed"),
    pytest.mark.timeout(120),
]

DRIVER = r"""
const { FastPathClient } = require(process.env.CLIENT_JS);
const out = {};
const attempt = async (name, fn) => {
  try { out[name] = { ok: await fn() }; } catch (e) { out[name] = { error: e.message }; }
};
(async () => {
  const { SOCK, SECRET } = process.env;
  const c = new FastPathClient({ socketPath: SOCK, hmacSecret: SECRET, source: 'hunter' });
  c.on('error', () => {});
  await c.connect();
  await attempt('ping', () => c.ping());
  const intent = (id) => ({ signal_id: id, source: 'hunter', symbol: 'BTCUSDT', direction: 'LONG',
    entry_zone: { min: 50000, max: 50100 }, stop_loss: 49000, take_profits: [51000, 52000.5],
    confidence: 0.95, leverage: 20, timestamp: 0, position_size: 0.30000000000000004,
    metadata: { '10': 'ten', '2': 'two', note: 'é ü 漢字 😀', x: -0.0125, tiny: 1e-7 },
    velocity: undefined });
  await attempt('prepare', () => c.sendPrepare(intent('ts-1')));
  await attempt('confirm', () => c.sendConfirm('ts-1'));
  await attempt('confirm_again', () => c.sendConfirm('ts-1'));
  await attempt('confirm_unknown', () => c.sendConfirm('ts-never'));
  await attempt('abort', () => c.sendAbort('ts-2'));
  await attempt('pipelined', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `ts-p-${i}`);
    const r = await Promise.all(ids.map((id) => c.sendPrepare(intent(id))));
    return r.every((x, i) => x.prepared === true && x.signal_id === ids[i]);
  });
  const bad = new FastPathClient({ socketPath: SOCK, hmacSecret: 'wrong-secret' });
  bad.on('error', () => {});
  await bad.connect();
  await attempt('bad_prepare', () => bad.sendPrepare(intent('ts-bad')));
  await attempt('bad_ping', () => bad.ping());
  out.metrics = c.getMetrics();
  await bad.disconnect();
  await c.disconnect();
  process.stdout.write('RESULT ' + JSON.stringify(out) + '\n');
})().catch((e) => { process.stdout.write('RESULT ' + JSON.stringify({ fatal: String(e) }) + '\n'); });
"""


@pytest.fixture(scope="module")
def ingress_for_ts() -> Iterator[IngressRun]:
    with run_ingress() as run:
        yield run


def test_typescript_client_end_to_end(ingress_for_ts: IngressRun) -> None:
    assert NODE is not None
    env = dict(os.environ, CLIENT_JS=CLIENT_JS, SOCK=ingress_for_ts.socket_path, SECRET=SECRET)
    done = subprocess.run([NODE, "-e", DRIVER], env=env, capture_output=True, timeout=60, check=True)
    line = next(x for x in done.stdout.decode().splitlines() if x.startswith("RESULT "))
    out: dict[str, Any] = json.loads(line[len("RESULT ") :])
    assert "fatal" not in out, out
    assert out["ping"]["ok"]["success"] is True
    prepared = out["prepare"]["ok"]
    assert prepared["prepared"] is True and prepared["signal_id"] == "ts-1"
    assert isinstance(prepared["timestamp"], int) and isinstance(prepared["server_time"], int)
    assert out["confirm"]["ok"]["executed"] is True and out["confirm"]["ok"]["fill_price"] == 50050
    assert out["confirm_again"]["ok"]["duplicate"] is True
    assert out["confirm_unknown"]["ok"]["reason"] == "PREPARE_NOT_FOUND"  # business outcome: resolves
    assert out["abort"]["ok"]["aborted"] is True
    assert out["pipelined"]["ok"] is True
    assert out["bad_prepare"]["error"] == "PREPARE_FAILED: INVALID_SIGNATURE"  # protocol failure: raises
    assert out["bad_ping"]["ok"] == {"success": False, "error": "INVALID_SIGNATURE"}
    assert out["metrics"]["messagesFailed"] == 0  # every reply line parsed (ASCII-only, \n-terminated)
    assert [type(c).__name__ for c in ingress_for_ts.core.seen].count("Prepare") == 51
