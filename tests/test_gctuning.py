"""A served process freezes its start-up objects and collects young ones less often; cycles it
makes later are still collected; ``AI_SPINE_GC_TUNING=false`` keeps Python's defaults."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from serverproc import TOOLS, running_server


@pytest.mark.parametrize(
    ("env", "tuned"), [({}, True), ({"AI_SPINE_GC_TUNING": "false"}, False)], ids=["on", "off"]
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_served_process_is_tuned_unless_told_not_to(
    env: dict[str, str], tuned: bool, workers: str
) -> None:
    with running_server(TOOLS / "gcinfo.py", "--workers", workers, env=env) as server:
        answer = httpx.post(f"{server.url}/api/execute", json={"input_data": {}}, timeout=10)
    data = answer.json()["output_data"]
    if tuned:
        assert data["threshold"][0] == 20_000
        assert data["frozen"] > 10_000  # the modules, the tool and the server
    else:
        assert data == _python_defaults()


def _python_defaults() -> dict[str, Any]:
    """A fresh interpreter's collector: its thresholds (700 up to 3.12, 2000 after) and what it
    has frozen by itself (nothing, but 375 objects on 3.12.1)."""
    code = "import gc, json; print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    threshold, frozen = json.loads(out.stdout)
    return {"threshold": threshold, "frozen": frozen}


def test_cycles_made_after_tuning_are_still_collected() -> None:
    code = (
        "import gc, weakref\n"
        "from ai_spine_tools.server._gctuning import tune_gc\n"
        "tune_gc()\n"
        "class Node: pass\n"
        "a, b = Node(), Node(); a.other, b.other = b, a\n"
        "gone = weakref.ref(a); del a, b\n"
        "kept = [[] for _ in range(30_000)]\n"  # past the threshold: a pass runs by itself
        "print(gone() is None, gc.get_threshold()[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "20000"]
