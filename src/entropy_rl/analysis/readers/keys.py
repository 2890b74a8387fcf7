"""Finding H, R and the step in a `Table`: named keys, or a framework's preset, or the
first preset whose keys the log has.

A column matches key K when it is K, or a dashboard export's "<run> - K" (W&B's CSV export;
its "__MIN"/"__MAX" companions never match); K may hold `*` for any text. A key that
matches several columns is ambiguous and the error lists them; a key in no column lists
what the log has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np

from entropy_rl.analysis.readers.presets import GENERIC_STEP_KEYS, PRESETS, Preset
from entropy_rl.analysis.readers.table import (
    LogFormatError,
    LogIncomplete,
    Table,
    column,
    make_table,
)

MAX_LISTED_KEYS = 15
"""Available keys listed in a missing-key error."""
_COMPANIONS = ("__MIN", "__MAX")


@dataclass(frozen=True)
class Keys:
    """The columns chosen for H, R and the step (None: the record index), and the preset they
    came from (None: named keys, or keys of several presets)."""

    entropy: str
    reward: str
    step: str | None
    preset: str | None


def matches(table: Table, key: str) -> list[str]:
    """The columns holding `key` (see the module docstring)."""
    if key in table.columns:
        return [key]
    found = []
    for name in table.columns:
        if name.endswith(_COMPANIONS):
            continue
        short = name.rsplit(" - ", 1)[-1]
        if name == key or short == key or ("*" in key and fnmatchcase(short, key)):
            found.append(name)
    return found


def find(table: Table, key: str) -> str | None:
    """The one column holding `key`, None when none does; LogFormatError when several do."""
    found = matches(table, key)
    if len(found) > 1:
        listed = ", ".join(repr(c) for c in found[:MAX_LISTED_KEYS])
        raise LogFormatError(
            f"{table.path}: key {key!r} matches several columns ({listed}); name one of them"
        )
    return found[0] if found else None


def resolve(table: Table, key: str) -> str:
    """The column holding `key`, or LogFormatError listing the available keys."""
    found = find(table, key)
    if found is None:
        raise LogIncomplete(f"{table.path}: no key {key!r} in any record; {available(table)}")
    return found


def first_found(table: Table, candidates: Sequence[str]) -> str | None:
    """The column of the first candidate the log has, or None."""
    for candidate in candidates:
        found = find(table, candidate)
        if found is not None:
            return found
    return None


def available(table: Table) -> str:
    """'available keys: ...', at most MAX_LISTED_KEYS, without __MIN/__MAX companions."""
    keys = [c for c in table.columns if not c.endswith(_COMPANIONS)]
    if not keys:
        return "the log has no keys"
    shown = ", ".join(repr(k) for k in keys[:MAX_LISTED_KEYS])
    more = len(keys) - MAX_LISTED_KEYS
    return f"available keys: {shown}" + (f" and {more} more" if more > 0 else "")


def choose_keys(
    table: Table,
    preset: str | None = None,
    entropy_key: str | None = None,
    reward_key: str | None = None,
    step_key: str | None = None,
) -> Keys:
    """The columns of H, R and the step: named keys first, then the named preset's, then
    those of the first preset (in PRESETS order) whose H and R keys the log both has, then
    (no preset named) the first H key and the first R key of any preset.

    Raises:
        LogFormatError: An unknown preset; a named key the log lacks; no preset matching,
            naming what was tried and what the log has; an ambiguous key.
    """
    if preset is not None and preset not in PRESETS:
        raise LogFormatError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    named_h = None if entropy_key is None else resolve(table, entropy_key)
    named_r = None if reward_key is None else resolve(table, reward_key)
    tried = [PRESETS[preset]] if preset else list(PRESETS.values())
    if named_h is not None and named_r is not None:
        chosen, h, r = (tried[0].name if preset else None), named_h, named_r
    else:
        chosen, h, r = _by_preset(table, tried, named_h, named_r, mix=preset is None)
    step = _step(table, step_key, PRESETS[chosen].step if chosen else ())
    return Keys(h, r, step, chosen)


def _by_preset(
    table: Table, presets: list[Preset], named_h: str | None, named_r: str | None, mix: bool
) -> tuple[str | None, str, str]:
    """(preset, H column, R column) of the first preset the log matches; with `mix`, else
    (None, the first H key of any preset, the first R key of any preset): a log of one's own
    trainer may say `entropy` and `val/acc`."""
    with_h, ambiguous = [], None
    for p in presets:
        h = named_h or first_found(table, p.entropy)
        if h is None:
            continue
        with_h.append(p)
        try:
            r = named_r or first_found(table, p.reward)
        except LogFormatError as err:  # another preset may match without ambiguity
            ambiguous = ambiguous or err
            continue
        if r is not None:
            return p.name, h, r
    if ambiguous is not None:
        raise ambiguous
    if mix and with_h:
        r = first_found(table, [k for p in presets for k in p.reward])
        if r is not None:
            return None, named_h or first_found(table, with_h[0].entropy), r
    if not with_h:
        tried = ", ".join(dict.fromkeys(k for p in presets for k in p.entropy))
        what = "entropy key"
    else:
        tried = ", ".join(dict.fromkeys(k for p in with_h for k in p.reward))
        what = "performance key"
    names = ", ".join(p.name for p in presets)
    raise LogIncomplete(
        f"{table.path}: no {what} found (tried {tried}; presets {names}); "
        f"name it with --entropy-key / --reward-key; {available(table)}"
    )


def _step(table: Table, named: str | None, preset_keys: Sequence[str]) -> str | None:
    """The named step key (must exist), else the preset's first step key the log has, else
    the format's own step, else a generic step key, else None (the record index). A key
    "a|b" stands for a, or b where a record has no a (`with_step_column`): OpenRLHF's W&B
    log holds a training record's step in train/global_step, an evaluation's in
    eval/global_step."""
    if named is not None:
        return "|".join(resolve(table, part) for part in named.split("|"))
    for key in preset_keys:
        found = [c for c in (find(table, part) for part in key.split("|")) if c is not None]
        if found:
            return "|".join(found)
    if table.step_key is not None:
        return table.step_key
    return first_found(table, GENERIC_STEP_KEYS)


def with_step_column(table: Table, step: str | None) -> Table:
    """The table with a column `step` when it stands for several ("a|b"): in each record
    the first of them that the record holds."""
    if step is None or "|" not in step or step in table.columns:
        return table
    parts = step.split("|")
    rows = []
    for where, record in table.rows:
        value = next((record[p] for p in parts if record.get(p) is not None), None)
        rows.append((where, record if value is None else {**record, step: value}))
    return make_table(table.path, table.kind, rows, table.step_key)


def merged_by_step(table: Table, step: str | None) -> Table:
    """One record per step, in first-seen order, a later record's values overwriting an
    earlier one's (a trainer state logs a step's training and evaluation metrics as two
    entries; a restarted run logs a step again). Records without a step are kept as they
    are. Unchanged when `step` is None."""
    if step is None:
        return table
    steps = column(table, step)
    merged: dict[float, tuple[str, dict[str, object]]] = {}
    loose: list[tuple[str, dict[str, object]]] = []
    for value, (where, record) in zip(steps, table.rows, strict=True):
        if np.isnan(value):
            loose.append((where, record))
        elif value in merged:
            merged[value] = (merged[value][0], {**merged[value][1], **record})
        else:
            merged[value] = (where, dict(record))
    return make_table(table.path, table.kind, [*merged.values(), *loose], table.step_key)
