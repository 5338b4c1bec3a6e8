"""``telerad protocol`` and ``telerad exam``: the catalogue and the exams from the command
line, on the database the server uses."""

from __future__ import annotations

from telerad.testing.peers import telerad_command
from tests.integration.workflow_env import Env, env, request_body

__all__ = ["env"]


def _cli(env: Env, *args: str, check: bool = True) -> str:
    result = telerad_command(*args, data_dir=env.runtime.settings.data_dir, check=check,
                             env={"TELERAD_DATABASE_URL": env.runtime.settings.database_url})
    return result.stdout + result.stderr


def test_protocols_and_exams_from_the_command_line(env: Env) -> None:
    assert "CT_STROKE\tCT\tneuro\thead,angio,perfusion\t" in _cli(env, "protocol", "list")
    assert _cli(env, "protocol", "add", "ct_sinus", "--name", "CT sinuses", "--modality",
                "CT", "--series", "sinus").strip() == "CT_SINUS"
    assert "already exists" in _cli(env, "protocol", "add", "CT_SINUS", "--name", "x",
                                    "--modality", "CT", check=False)
    exam = env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    listed = _cli(env, "exam", "list", "--state", "filed")
    assert listed.startswith(f"{exam['id']}\t{exam['site_id']}\tfiled\turgent\tCT\t-")
    assert "DUPONT" not in listed
    routing = _cli(env, "exam", "routing", str(exam["id"]), "--at",
                   env.clock.now().isoformat())
    assert "step 0: primaries of team Imadis" in routing
    assert "ELIGIBLE\tDr Alice Martin\tprimaries of team Imadis (step 0)" in routing
    assert "no\tDr Farid Gris\tnot on duty now" in routing
    assert "no exam #999" in _cli(env, "exam", "routing", "999", check=False)
