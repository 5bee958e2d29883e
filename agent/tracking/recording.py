"""Which file a call is recorded to, from the `VarSet` events the dialplan causes.

- `MIXMONITOR_FILENAME`: app_mixmonitor sets it on the channel it records, to the file's path.
- A FreePBX-style dialplan (FreePBX, Issabel: `sub-record-check`) sets `__CALLFILENAME`, `__YEAR`, `__MONTH`,
  `__DAY` and `__REC_STATUS=RECORDING`, and records with
  `MixMonitor(${MIXMON_DIR}${YEAR}/${MONTH}/${DAY}/${CALLFILENAME}.${MIXMON_FORMAT})`, the name it also stores
  in `CDR(recordingfile)`; `MIXMON_DIR` empty means Asterisk's monitor directory, so the path is then
  relative to it (the `recordings` directory of the `[[pbx]]` table).
- The operator's `recording_variables` (agent.toml): a variable whose value is the file's path.

A `VarSet` of an inherited variable names it with its leading underscores; they are dropped here.
"""

from __future__ import annotations

from agent.tracking.state import Call

MIXMONITOR = "MIXMONITOR_FILENAME"
FREEPBX = frozenset({"CALLFILENAME", "MIXMON_DIR", "MIXMON_FORMAT", "YEAR", "MONTH", "DAY", "REC_STATUS"})


def watched(name: str, operator: tuple[str, ...]) -> str | None:
    """The variable's plain name when it may name a recording, else None (cheap: every VarSet passes here)."""
    plain = name.lstrip("_")
    if plain == MIXMONITOR or plain in FREEPBX or plain in operator:
        return plain
    return None


def note(call: Call, name: str, value: str, operator: tuple[str, ...]) -> None:
    """One variable set on one of the call's channels."""
    if name == MIXMONITOR or name in operator:
        if value:
            call.recording = value
        return
    call.rec_vars[name] = value
    if call.recording is None or call.recording_guessed:
        guessed = freepbx_file(call.rec_vars)
        if guessed is not None:
            call.recording = guessed
            call.recording_guessed = True


def freepbx_file(v: dict[str, str]) -> str | None:
    """The file FreePBX's `sub-record-check` records to, once the dialplan says it records."""
    name = v.get("CALLFILENAME", "")
    if v.get("REC_STATUS") != "RECORDING" or not name:
        return None
    day = "/".join(v[k] for k in ("YEAR", "MONTH", "DAY") if v.get(k))
    fmt = v.get("MIXMON_FORMAT") or "wav"
    directory = v.get("MIXMON_DIR", "")
    if directory and not directory.endswith("/"):
        directory += "/"
    return f"{directory}{day + '/' if day else ''}{name}.{fmt}"
