"""Property-based run over the OpenAPI schema: no input makes the app answer 5xx (issue 6)."""

from __future__ import annotations

import time

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

MAX_EXAMPLES = 15
# Loading a model from disk and refitting are slow, and covered by test_serve_realtime.
SKIP = {("POST", "/admin/reload"), ("POST", "/admin/fit")}


def test_no_server_errors_on_generated_input(fresh) -> None:
    client, auth, _ = fresh()
    app = client.app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    start = time.time()
    n_ops = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in SKIP:
            continue
        n_ops += 1

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case) -> None:
            for headers in (auth, None):
                try:
                    r = case.call(headers=headers)
                except Exception as exc:  # noqa: BLE001 - the test client re-raises server errors
                    failures.append(f"{op.method.upper()} {op.path} -> {type(exc).__name__}: {exc}"[:2000])
                    continue
                if r.status_code >= 500:
                    failures.append(f"{op.method.upper()} {op.path} -> {r.status_code}: "
                                    f"{case.as_curl_command()}"[:2000])

        check()
    assert n_ops >= 15
    assert not failures, "\n".join(failures[:10])
    assert time.time() - start < 120
