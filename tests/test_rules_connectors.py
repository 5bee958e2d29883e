"""The DID's default_extension (routing rules) as the connectors' owner of a call nobody answered."""

from __future__ import annotations

from dataclasses import replace

from connectors.amocrm.plan import plan as amocrm_plan
from connectors.amocrm.settings import parse as amocrm_settings
from connectors.retailcrm.plan import plan as retailcrm_plan
from tests import recordings
from tests.test_amocrm_units import BASE
from tests.test_retailcrm_plan import ended, settings


def test_retailcrm_upload_names_the_default_manager_when_nobody_rang() -> None:
    event = ended("cancelled", extensions=(), default_extension="102")
    [upload] = [d for d in retailcrm_plan(event, settings(upload_history=True)) if d.kind == "calls_upload"]
    assert (upload.payload["call"]["code"], upload.payload["call"]["userId"]) == ("102", 8)
    # a group nobody answered (101 and 102 rang): the default manager, not a member
    event = ended("no_answer", default_extension="102")
    [upload] = [d for d in retailcrm_plan(event, settings(upload_history=True)) if d.kind == "calls_upload"]
    assert upload.payload["call"]["code"] == "102"
    # the call's owner (the one phone it rang) still comes first
    event = ended("no_answer", extensions=("101",), extension="101", default_extension="102")
    [upload] = [d for d in retailcrm_plan(event, settings(upload_history=True)) if d.kind == "calls_upload"]
    assert upload.payload["call"]["code"] == "101"


def test_amocrm_missed_call_task_and_lead_go_to_the_default_manager() -> None:
    missed = recordings.play("p_b_incoming_missed")[-1]
    assert missed.event == "ended" and missed.answered_by is None
    s = amocrm_settings(BASE)
    [plain] = amocrm_plan(missed, s)
    assert "default_user" not in plain.payload and "responsible_user_id" not in plain.payload["call"]
    [owned] = amocrm_plan(replace(missed, default_extension="151"), s)
    assert owned.payload["default_user"] == 8 and owned.payload["call"]["responsible_user_id"] == 8
    assert owned.payload["task"] == plain.payload["task"]
