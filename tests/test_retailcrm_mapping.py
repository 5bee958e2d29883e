"""Pure mapping rules: reassigning extensions, merging ours with the module's additionalCodes."""

from __future__ import annotations

import pytest

from connectors.retailcrm.mapping import MappingError, Move, merge, module_codes, reassign
from connectors.retailcrm.models import CrmUser


def test_reassign_moves_an_extension_to_its_new_owner() -> None:
    mapping, moves = reassign({"1": "101", "2": "102"}, {"3": "101"})
    assert mapping == {"2": "102", "3": "101"}
    assert moves == [Move("101", "1", "3")]


def test_reassign_swap_and_remove() -> None:
    mapping, moves = reassign({"1": "101", "2": "102"}, {"1": "102", "2": "101"})
    assert mapping == {"1": "102", "2": "101"}
    assert {(m.extension, m.from_user, m.to_user) for m in moves} == {("102", "2", "1"), ("101", "1", "2")}
    assert reassign({"1": "101", "2": "102"}, {"1": None, "2": ""}) == ({}, [])
    assert reassign({"1": "101"}, {"1": "101"}) == ({"1": "101"}, [])


def test_reassign_replace_reports_what_changed_hands() -> None:
    mapping, moves = reassign({"1": "101", "2": "102"}, {"2": "101", "3": "103"}, replace=True)
    assert mapping == {"2": "101", "3": "103"}
    assert moves == [Move("101", "1", "2")]


def test_reassign_refuses_one_extension_for_two_users() -> None:
    with pytest.raises(MappingError) as err:
        reassign({}, {"1": "7", "2": "7"})
    assert err.value.field == "user_extensions.2"


def test_module_codes_accept_int_and_string_ids() -> None:
    module = {
        "integrations": {
            "telephony": {
                "additionalCodes": [
                    {"userId": 1, "code": "101"},
                    {"userId": "2", "code": 102},
                    {"userId": None, "code": "x"},
                    "junk",
                ]
            }
        }
    }
    assert module_codes(module) == {"1": "101", "2": "102"}
    assert module_codes(None) == {} and module_codes({"integrations": None}) == {}


def test_merge_local_wins_and_differences_are_reported() -> None:
    users = [CrmUser(str(i), f"U{i}", None, True, True, "free") for i in (1, 2, 3, 4)]
    merged = merge(users, {"1": "101", "2": "102", "9": "109"}, {"2": "102", "3": "103", "1": "199"})
    got = {m.user.id: (m.extension, m.source, m.crm_extension, m.differs) for m in merged.managers}
    assert got == {
        "1": ("101", "local", "199", True),
        "2": ("102", "local", "102", False),
        "3": ("103", "crm", "103", False),
        "4": (None, None, None, False),
    }
    assert merged.differences == [
        {"user_id": "1", "local": "101", "crm": "199"},
        {"user_id": "3", "local": None, "crm": "103"},
        {"user_id": "9", "local": "109", "crm": None},
    ]
    assert merged.unknown_users == ["9"]
