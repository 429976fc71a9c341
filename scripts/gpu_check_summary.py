#!/usr/bin/env python3
"""gpu_check_summary.py — the summary of one scripts/gpu_check.sh run, short enough to read whole
in the tail of a device call's stdout (at most MAX_CHARS characters).

Usage: gpu_check_summary.py LOGS_DIR  -> summary on stdout.

LOGS_DIR holds what gpu_check.sh writes: run.txt (budget_s, used_s, dry_run), env.txt, card.txt
(nvidia-smi's line), probe.tsv (name, state, detail), steps.tsv (name, status, seconds, limit,
note) and one log per step (the step name with ':' as '_', plus .log). Sections, in the order of
their priority for the character budget: header and card, probe, every step's status and time,
failures (each failing test's name and its first failure lines; crashes with the test that was
running; sanitizer errors; lab mismatches), the benchmark table (gpu_table.md) and the labs'
timing tables, compacted; what does not fit is cut with a note (everything is in the archive).
"""
import os
import re
import sys

MAX_CHARS = 11000
FAIL_LINES = 6  # lines kept per failing test
LINE_CHARS = 180


def read(path, default=""):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return default


def rows(path, ncols):
    out = []
    for line in read(path).splitlines():
        p = line.split("\t")
        if len(p) >= 2:
            out.append((p + [""] * ncols)[:ncols])
    return out


def clip(line):
    line = line.rstrip()
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 3] + "..."


def log_name(step):
    return step.replace(":", "_") + ".log"


def gtest_failures(text):
    """(test name, first failure lines) per failed test of one GoogleTest log, and a crash note
    when the process stopped inside a test."""
    lines = text.splitlines()
    failed, seen = [], set()
    for ln in lines:
        m = re.match(r"^\[  FAILED  \] (\S+?)(,| \(|$)", ln)
        if m and not re.match(r"^\d+$", m.group(1)) and m.group(1) not in seen:
            seen.add(m.group(1))
            failed.append(m.group(1))
    result = []
    for name in failed:
        start = next((i for i, ln in enumerate(lines) if ln.startswith("[ RUN      ] " + name)), None)
        if start is None:
            result.append((name, []))
            continue
        block = []
        for ln in lines[start + 1:]:
            if ln.startswith("[  FAILED  ] " + name) or ln.startswith("[       OK ] "):
                break
            block.append(ln)
        first = next((i for i, ln in enumerate(block) if ": Failure" in ln), None)
        if first is None:
            first = next((i for i, ln in enumerate(block) if "error" in ln.lower()), None)
        keep = block[first:first + FAIL_LINES] if first is not None else block[-FAIL_LINES:]
        result.append((name, [clip(ln) for ln in keep if ln.strip()]))
    crash = None
    runs = [ln[len("[ RUN      ] "):] for ln in lines if ln.startswith("[ RUN      ] ")]
    ends = {re.sub(r" \(.*", "", ln[13:]) for ln in lines if ln.startswith(("[       OK ] ", "[  FAILED  ] ", "[  SKIPPED ] "))}
    if runs and runs[-1] not in ends and not any(ln.startswith("[==========] ") and "ran" in ln for ln in lines):
        crash = (runs[-1], [clip(ln) for ln in lines[-FAIL_LINES:] if ln.strip()])
    return result, crash


def gtest_counts(text):
    """(passed, failed, skipped) test counts of one GoogleTest log (None when it has none)."""
    def count(tag):
        m = re.search(r"^\[ +%s +\] (\d+) tests?" % tag, text, re.M)
        return int(m.group(1)) if m else 0
    if not re.search(r"^\[==========\] \d+ tests? from .* ran", text, re.M):
        return None
    return count("PASSED"), count("FAILED"), count("SKIPPED")


def main():
    d = sys.argv[1]
    run = dict(ln.split("=", 1) for ln in read(os.path.join(d, "run.txt")).split() if "=" in ln)
    dry = run.get("dry_run") == "1"
    card = read(os.path.join(d, "card.txt")).strip().splitlines()
    env = read(os.path.join(d, "env.txt")).splitlines()
    commit = next((ln[7:] for ln in env if ln.startswith("commit ")), "unknown")
    probe = rows(os.path.join(d, "probe.tsv"), 3)
    steps = rows(os.path.join(d, "steps.tsv"), 5)

    sec = []  # (title, lines, required): required sections are never cut
    head = [f"gpu_check summary{' (DRY RUN: nothing built or run on a device)' if dry else ''}",
            f"date {env[0] if env else '?'}   commit {commit}",
            f"card {card[0] if card else 'none (no nvidia-smi output)'}",
            f"budget {run.get('budget_s', '?')} s, used {run.get('used_s', '?')} s"
            + (" (dry run: simulated step times)" if dry else "")]
    bad = [s for s in steps if s[1] in ("FAILED", "TIMEOUT", "CRASH")]
    # GoogleTest counts in the notes of the test steps.
    totals = [0, 0, 0]
    for s in steps:
        if s[0].startswith("test:") and s[1] not in ("planned", "skipped", "not-run"):
            c = gtest_counts(read(os.path.join(d, log_name(s[0]))))
            if c:
                s[4] = (s[4] + "; " if s[4] else "") + "passed %d, failed %d, skipped %d" % c
                totals = [a + b for a, b in zip(totals, c)]
    head.append("RESULT: " + ("FAILURES in " + ", ".join(s[0] for s in bad) if bad else
                              "no failures" + (" (dry run)" if dry else "")))
    if not dry and totals[2] > 0 and totals[0] == 0 and totals[1] == 0:
        head.append("WARNING: every CUDA test skipped: the CUDA runtime sees no device although "
                    "the probe found one (driver/runtime mismatch?)")
    sec.append(("", head, True))
    sec.append(("probe", [f"  {n:<18} {st:<12} {clip(det)}" for n, st, det in probe], True))
    st_lines = [f"  {'step':<30} {'status':<8} {'s':>4} {'limit':>5}  note"]
    for name, status, secs, limit, note in steps:
        st_lines.append(clip(f"  {name:<30} {status:<8} {secs:>4} {limit:>5}  {note}"))
    sec.append(("steps", st_lines, True))

    fail = []
    for name, status, _, _, _ in steps:
        if status not in ("FAILED", "TIMEOUT", "CRASH"):
            continue
        text = read(os.path.join(d, log_name(name)))
        if name == "probe":
            fail.append("  [probe] missing (nothing was built or run):")
            fail.extend(clip(f"      {n}: {det}") for n, st, det in probe if st == "absent")
        elif name.startswith("test:") or name in ("memcheck", "racecheck"):
            tests, crash = gtest_failures(text)
            for t, ls in tests:
                fail.append(f"  [{name}] {t}")
                fail.extend("      " + ln for ln in ls)
            if crash:
                fail.append(f"  [{name}] stopped inside {crash[0]} ({status}); last lines:")
                fail.extend("      " + ln for ln in crash[1])
            if name in ("memcheck", "racecheck"):
                errs = [ln for ln in text.splitlines()
                        if ln.startswith("=========") and "COMPUTE-SANITIZER" not in ln]
                fail.append(f"  [{name}] {status}; the sanitizer reports:")
                fail.extend("      " + clip(ln) for ln in (errs or text.splitlines()[-FAIL_LINES:])[:8])
            if not tests and not crash and name not in ("memcheck", "racecheck"):
                fail.append(f"  [{name}] {status}; last lines:")
                fail.extend("      " + clip(ln) for ln in text.splitlines()[-FAIL_LINES:])
        elif name.startswith("check:"):
            bad_lines = [ln for ln in text.splitlines() if "FAIL" in ln or "NaN" in ln or "error" in ln.lower()]
            fail.append(f"  [{name}] {status}")
            fail.extend("      " + clip(ln) for ln in (bad_lines or text.splitlines()[-FAIL_LINES:])[:10])
        else:
            errs = [ln for ln in text.splitlines()
                    if re.search(r"error|Error|FAILED|no CUDA|not found|cannot", ln)]
            fail.append(f"  [{name}] {status}; first errors:")
            fail.extend("      " + clip(ln) for ln in (errs or text.splitlines()[-FAIL_LINES:])[:FAIL_LINES])
    if fail:
        sec.append(("failures (full logs in the archive)", fail, False))

    table = read(os.path.join(d, "gpu_table.md")).splitlines()
    if table:
        compact = [re.sub(r"\s*\|\s*", "|", ln.strip()) for ln in table if ln.strip() and not re.match(r"^\|[-:|]+\|$", ln.strip())]
        sec.append(("benchmarks vs PyTorch (gpu_table.md)", compact, False))
    for name, status, _, _, _ in steps:
        if not name.startswith("timing:") or status != "ok":
            continue
        text = read(os.path.join(d, log_name(name))).splitlines()
        body = [re.sub(r"\s+", " ", ln.strip()) for ln in text
                if "|" in ln or ln.startswith(("device", "device copy"))]
        if body:
            sec.append((name, body, False))

    out, used = [], 0
    for title, lines, required in sec:
        block = ([f"== {title}"] if title else []) + lines
        text = "\n".join(block) + "\n"
        if required or used + len(text) <= MAX_CHARS:
            out.append(text)
            used += len(text)
            continue
        room = MAX_CHARS - used - 80
        kept = []
        for ln in block:
            if room - len(ln) - 1 < 0:
                break
            kept.append(ln)
            room -= len(ln) + 1
        cut = len(block) - len(kept)
        kept.append(f"  ... {cut} more lines of '{title}' in the archive")
        text = "\n".join(kept) + "\n"
        out.append(text)
        used += len(text)
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main()
