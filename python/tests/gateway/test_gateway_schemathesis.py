"""schemathesis against the OpenAPI document a real gateway serves: no input makes it answer 500.

A ``python -m asya.gateway serve`` process on real PostgreSQL, fuzzed over HTTP by the
schemathesis CLI with only the ``not_a_server_error`` check: every operation in
``/openapi.json``, every phase (examples, coverage, fuzzing, stateful), a bounded
number of examples and a fixed seed so a run is repeatable and stays within about a
minute. Authentication is off so that generated requests reach the handlers rather
than stopping at the 401 (the token checks have their own tests).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_gateway_restart import Served

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

EXAMPLES = 25
SEED = 7


async def test_no_generated_request_makes_the_gateway_answer_500(gateway_dsn: str, tmp_path: Path) -> None:
    served = Served(gateway_dsn, tmp_path)
    served.env["ASYA_GATEWAY_AUTH"] = "off"
    proc = await served.start()
    st = Path(sys.executable).with_name("st")
    cmd = [
        str(st), "run", f"{served.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(EXAMPLES), "--seed", str(SEED),
        "--request-timeout", "10", "--generation-database", "none", "--no-color",
    ]  # fmt: skip
    try:
        run = subprocess.run(
            cmd, cwd=tmp_path, env=os.environ, capture_output=True, text=True, timeout=200, check=False
        )
    finally:
        proc.stop()
    served.procs.clear()
    errors = [line for line in proc.log().splitlines() if "Traceback" in line or " 500 " in line]
    assert run.returncode == 0 and not errors, run.stdout[-6000:] + "\n--- gateway log:\n" + proc.log()[-4000:]
    assert "Tested: 1" in run.stdout  # the document was read and its operations were tried (Tested: 1x)
