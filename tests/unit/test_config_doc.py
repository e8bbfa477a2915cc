"""docs/configuration.md lists every param the deployed code declares (it is generated)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_is_up_to_date():
    spec = importlib.util.spec_from_file_location("config_doc", ROOT / "scripts" / "config_doc.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    actual = (ROOT / "docs" / "configuration.md").read_text()
    assert actual == expected, (
        "run: functions/venv/bin/python scripts/config_doc.py > docs/configuration.md"
    )


def test_every_param_has_a_description():
    spec = importlib.util.spec_from_file_location("config_doc", ROOT / "scripts" / "config_doc.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [
        p["name"]
        for p in module.manifest()["params"]
        if p["type"] != "secret" and not p.get("description")
    ]
    assert not missing, f"params without a description: {missing}"
