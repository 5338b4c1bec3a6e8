"""The reports' set-up from the command line: a site's reporting settings, its endpoints,
templates (JSON and IHE MRRT), and the reconciliation report's exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path

from telerad.reporting.templates import builtin_templates, template_json
from telerad.testing.peers import telerad_command

MRRT = Path(__file__).parents[1] / "data" / "mrrt" / "ct_pe_ihe.html"


def test_reporting_set_up_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"

    def run(*args: str, check: bool = True) -> str:
        result = telerad_command(*args, data_dir=data, check=False)
        assert (result.returncode == 0) == check, result.stderr
        return result.stdout + result.stderr

    run("site", "add", "CH Carcassonne", "--ae-title", "CT_CARCA")
    shown = run("site", "reporting", "CH Carcassonne", "--hl7-facility", "CHC",
                "--on-call-manager", "Cadre de garde", "--on-call-phone", "0468")
    assert "HL7 facility CHC" in shown
    assert "within 15 min" in shown
    assert "invalid_input" in run("site", "reporting", "CH Carcassonne",
                                  "--critical-minutes", "0", check=False)
    assert run("endpoint", "add", "CH Carcassonne", "--channel", "hl7_mllp",
               "--host", "ris.local", "--port", "2575", "--name", "RIS").strip() == "1"
    assert "AE title" in run("endpoint", "add", "CH Carcassonne", "--channel", "dicom_store",
                             "--host", "pacs.local", "--port", "104", check=False)
    assert re.search(r"hl7_mllp\s+RIS\s+ris.local:2575", run("endpoint", "list"))

    mine = dict(template_json(builtin_templates()[0]), version=7)
    (tmp_path / "mine.json").write_text(json.dumps(mine), encoding="utf-8")
    assert run("template", "import", str(tmp_path / "mine.json")).strip().endswith("v7")
    assert "exists" in run("template", "import", str(tmp_path / "mine.json"), check=False)
    imported = run("template", "import", str(MRRT)).strip()
    assert imported.endswith("v1")
    assert re.search(rf"{mine['code']}\s+v7", run("template", "list"))
    (tmp_path / "bad.json").write_text("[1, 2]", encoding="utf-8")
    assert "JSON object" in run("template", "import", str(tmp_path / "bad.json"), check=False)

    assert "acknowledged" in run("delivery", "reconcile")
