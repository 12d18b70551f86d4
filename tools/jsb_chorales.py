#!/usr/bin/env python3
"""Builds data/jsb_chorales.txt.gz: J. S. Bach's four-part chorales as 88-key piano rolls.

Run once by a developer (needs `pip install music21==10.5`, BSD licence; the chorales in its
corpus are public domain):

    python3 tools/jsb_chorales.py            # writes data/jsb_chorales.txt.gz

Preprocessing as in Boulanger-Lewandowski et al. (2012), "JSB Chorales": every Bach score of the
music21 corpus that has Soprano, Alto, Tenor and Bass parts is sampled at one step per quarter
note (step t holds the MIDI pitches sounding at offset t quarter notes from the start: notes are
held across steps, ties are merged, rests leave a voice silent). Pitches must lie in 21..108 (the
88 piano keys). Chorales whose rolls are identical to an earlier one (the same harmonisation in
two cantatas) are kept once. The split is fixed: the distinct rolls, sorted by file name, are
shuffled with `random.Random(20120627)` and cut 60% / 20% / 20% into train / valid / test.

Output format (gzipped UTF-8 text, one sequence per line, mtime 0 so reruns are byte-identical):

    <split>\t<name>\t<step> <step> ...

where `<split>` is train, valid or test, `<name>` the corpus file's stem (e.g. `bwv1.6`) and
each `<step>` the sounding MIDI pitches joined by `,` in increasing order, or `-` for silence.
"""

import gzip
import io
import math
import random
import sys
from pathlib import Path

from music21 import corpus, note, chord

VOICES = ("soprano", "alto", "tenor", "bass")
OUT = Path(__file__).resolve().parent.parent / "data" / "jsb_chorales.txt.gz"


def voice_parts(score):
    """The S, A, T, B parts in that order, or None when the score does not have exactly them."""
    found = {}
    for part in score.parts:
        name = (part.partName or "").strip().lower()
        for v in VOICES:
            if name.startswith(v) and v not in found:
                found[v] = part
    if len(found) != 4:
        return None
    return [found[v] for v in VOICES]


def roll(score):
    """The list of steps (sorted tuples of MIDI pitches) at one step per quarter note."""
    parts = voice_parts(score)
    if parts is None:
        return None
    length = math.ceil(float(score.highestTime) - 1e-9)
    steps = [set() for _ in range(length)]
    for part in parts:
        for n in part.stripTies().flatten().notes:
            start = float(n.offset)
            end = start + float(n.quarterLength)
            pitches = [n.pitch.midi] if isinstance(n, note.Note) else [p.midi for p in n.pitches]
            t0 = math.ceil(start - 1e-9)
            for t in range(t0, length):
                if t >= end - 1e-9:
                    break
                steps[t].update(pitches)
    for s in steps:
        if any(p < 21 or p > 108 for p in s):
            raise ValueError(f"pitch outside the 88 keys: {sorted(s)}")
    # Drop leading/trailing silent steps (e.g. an empty pickup measure).
    while steps and not steps[0]:
        steps.pop(0)
    while steps and not steps[-1]:
        steps.pop()
    return [tuple(sorted(s)) for s in steps]


def main():
    paths = sorted(corpus.getComposer("bach"), key=lambda p: p.name)
    rolls, seen, skipped = [], set(), 0
    for p in paths:
        r = roll(corpus.parse(p))
        if not r:
            skipped += 1
            continue
        key = tuple(r)
        if key in seen:
            skipped += 1
            continue
        seen.add(key)
        rolls.append((p.name.rsplit(".", 1)[0], r))
    random.Random(20120627).shuffle(rolls)
    n = len(rolls)
    n_train, n_valid = round(0.6 * n), round(0.2 * n)
    lines = []
    for i, (name, r) in enumerate(rolls):
        split = "train" if i < n_train else "valid" if i < n_train + n_valid else "test"
        steps = " ".join(",".join(map(str, s)) if s else "-" for s in r)
        lines.append(f"{split}\t{name}\t{steps}\n")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as f:
        f.write("".join(lines).encode())
    OUT.write_bytes(buf.getvalue())
    print(f"{n} chorales ({n_train} train, {n_valid} valid, {n - n_train - n_valid} test); "
          f"{skipped} scores skipped (not SATB or duplicates); wrote {OUT} ({len(buf.getvalue())} bytes)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
