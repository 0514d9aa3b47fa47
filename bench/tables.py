#!/usr/bin/env python3
"""The one place benchmark tables come from (issue 14).

bench/run.sh writes one JSON record per line while it runs; `collect` turns those into one
results file (results-<date>.json) and every table shown anywhere is rendered from such a file,
so a published number always traces back to one run:

    bench/tables.py collect RESULTS.jsonl OUT.json   # run.sh does this at the end
    bench/tables.py render FILE.json                 # the full Markdown report (run.sh prints it)
    bench/tables.py publish FILE.json                # copy FILE into bench/results/ and rewrite
                                                     # the tables in README.md and bench/README.md
    bench/tables.py check                            # exit 1 when those tables differ from what
                                                     # their named results file gives

The tables sit between marker comments that name their source, for example
    <!-- bench-tables:begin summary bench/results/results-20261130-1100.json -->
    ...generated...
    <!-- bench-tables:end -->
KIND is `summary` (README's short table), `full` (bench/README's section tables and
targets) or `quick` (the same tables from a `bench/run.sh --quick` run, which issue 9 asks to
report beside the full-size one). `publish` points the `quick` blocks at a quick run's file and
the others at a full run's, so each block still comes from exactly one run. Only the standard library is used, so the check runs anywhere python3 does.
"""

import json
import os
import re
import shutil
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", os.path.join("bench", "README.md")]
MARKER = re.compile(
    r"<!-- bench-tables:begin (\w+) (\S+) -->\n(.*?)<!-- bench-tables:end -->", re.S
)


def num(text):
    """A float from a record field, or None when it is empty or not a number."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def collect(jsonl_path, out_path):
    """Folds the JSON lines of one run into one results document."""
    doc = {"meta": {}, "rows": [], "targets": [], "summary": []}
    with open(jsonl_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            kind = rec.pop("type")
            if kind == "meta":
                doc["meta"][rec["name"]] = rec["value"]
            elif kind == "row":
                doc["rows"].append(row_stats(rec))
            elif kind == "target":
                rec["args"] = rec["args"].split()
                doc["targets"].append(rec)
            elif kind == "summary":
                rec["peers"] = rec["peers"].split()
                doc["summary"].append(rec)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


def row_stats(rec):
    """Adds median/min/max of the wall and CPU times (seconds) to a measured row."""
    if rec.get("status") != "ok":
        return rec
    wall = [int(v) / 1000 for v in rec.pop("wall_ms").split(",")]
    cpu = [int(v) / 1000 for v in rec.pop("cpu_ms").split(",")]
    rec["wall_s"] = wall
    rec["cpu_s"] = cpu
    rec["median_s"] = round(statistics.median(wall), 3)
    rec["cpu_median_s"] = round(statistics.median(cpu), 3)
    rec["rss_mib"] = round(int(rec.pop("rss_kib")) / 1024)
    return rec


def load(path):
    with open(os.path.join(ROOT, path) if not os.path.isabs(path) else path, encoding="utf-8") as f:
        return json.load(f)


def human(b):
    if b >= 2**30:
        return f"{b / 2**30:.2f} GiB"
    if b >= 2**20:
        return f"{b / 2**20:.1f} MiB"
    return f"{b / 1024:.0f} KiB"


def size_cell(row):
    s = row.get("size", "")
    return human(int(s)) if s.isdigit() else s


def mbps(row):
    b = num(row.get("bytes"))
    return f"{b / row['median_s'] / 1e6:.0f}" if b and row["median_s"] > 0 else ""


def rows_by_key(doc):
    return {r["key"]: r for r in doc["rows"]}


def ok(row):
    return row is not None and row.get("status") == "ok"


def verdict(doc, t):
    """(measured text, met / NOT met / not measured) for one target record."""
    rows = rows_by_key(doc)
    a = t["args"]
    kind = t["kind"]
    if kind in ("ratio", "throughput"):
        ra, rb = rows.get(a[0]), rows.get(a[1])
        if not (ok(ra) and ok(rb)) or rb["median_s"] == 0 or ra["median_s"] == 0:
            return "a row is not measured", "not measured"
        r = ra["median_s"] / rb["median_s"] if kind == "ratio" else rb["median_s"] / ra["median_s"]
        op, limit = a[2], float(a[3])
        met = r <= limit if op == "<=" else r >= limit
        shown = f"{r:.2f}× ({ra['median_s']:.2f} s vs {rb['median_s']:.2f} s; target {op} {a[3]}×)"
        return shown, "met" if met else "NOT met"
    if kind == "ceiling":
        # Not a target: what the setup itself allows, shown beside the target it bounds.
        ra, rb = rows.get(a[0]), rows.get(a[1])
        if not (ok(ra) and ok(rb)) or rb["median_s"] == 0:
            return "a row is not measured", "not measured"
        r = ra["median_s"] / rb["median_s"]
        return f"{r:.2f}× ({ra['median_s']:.2f} s vs {rb['median_s']:.2f} s)", "ceiling, no target"
    if kind == "time":
        r = rows.get(a[0])
        if not ok(r):
            return "row not measured", "not measured"
        op, limit = a[1], float(a[2])
        met = r["median_s"] <= limit if op == "<=" else r["median_s"] >= limit
        return f"{r['median_s']:.2f} s (target {op} {a[2]} s)", "met" if met else "NOT met"
    if kind == "rss":
        r = rows.get(a[0])
        if not ok(r):
            return "row not measured", "not measured"
        return f"{r['rss_mib']} MiB (target ≤ {a[1]} MiB)", "met" if r["rss_mib"] <= float(a[1]) else "NOT met"
    if kind == "rss_vs":
        ra, rb = rows.get(a[0]), rows.get(a[1])
        if not (ok(ra) and ok(rb)):
            return "a row is not measured", "not measured"
        met = ra["rss_mib"] <= rb["rss_mib"]
        return f"{ra['rss_mib']} MiB vs {rb['rss_mib']} MiB", "met" if met else "NOT met"
    if kind == "size":
        ra, rb = rows.get(a[0]), rows.get(a[1])
        if not (ok(ra) and ok(rb)) or not ra.get("size", "").isdigit() or not rb.get("size", "").isdigit():
            return "a row is not measured", "not measured"
        d = 100 * (int(ra["size"]) / int(rb["size"]) - 1)
        return f"{d:+.2f} % (target within {a[2]} %)", "met" if abs(d) <= float(a[2]) else "NOT met"
    if kind == "sent":
        r = rows.get(a[0])
        p = num(r.get("sent_pct")) if ok(r) else None
        if p is None:
            return "row not measured", "not measured"
        return f"{p:.2f} % (target ≤ {a[1]} %)", "met" if p <= float(a[1]) else "NOT met"
    raise SystemExit(f"tables.py: unknown target kind {kind!r}")


def runs(m):
    quick = " on the small --quick data" if m.get("quick") == "1" else ""
    long = ""
    if m.get("long_s") and int(m.get("runs", 0)) > 3:
        very = f", 2 over {m['very_long_s']} s" if m.get("very_long_s") else ""
        long = f" (3 for rows over {m['long_s']} s{very})"
    return f"{m.get('runs', '?')} runs per row{long}{quick}"


def render_full(doc, heading="###"):
    """Every section's table, then the targets: bench/README's block and the run's report."""
    m = doc["meta"]
    out = [
        f"Run: {m.get('date', '?')}, {runs(m)}, sections "
        f"{m.get('sections', '?')}, {m.get('duration_s', '?')} s in all"
        + (f" ({m['section_times']})." if m.get("section_times") else "."),
        f"Machine: {m.get('machine', '?')}. Load average at start {m.get('load_start', '?')}, "
        f"at end {m.get('load_end', '?')}.",
        f"fspack: {m.get('fspack', '?')}.",
        f"Peers: {m.get('peers', '?')}.",
        "",
        "Times are wall-clock seconds (median, min–max) and CPU seconds (user + system of the "
        "row's whole process tree, median); peak RSS is the largest of any process of the row. "
        "Page cache warm unless the section says cold.",
    ]
    section = None
    for r in doc["rows"]:
        if r["section"] != section:
            section = r["section"]
            out += ["", f"{heading} {section}", "",
                    "| Row | Data | Median s | Range s | CPU s | Peak RSS MiB | Size | MB/s | Notes |",
                    "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        note = r.get("note", "")
        if ok(r):
            out.append(
                f"| {r['label']} | {r['data']} | {r['median_s']:.2f} | "
                f"{min(r['wall_s']):.2f}–{max(r['wall_s']):.2f} | {r['cpu_median_s']:.2f} | "
                f"{r['rss_mib']} | {size_cell(r)} | {mbps(r)} | {note} |"
            )
        else:
            out.append(f"| {r['label']} | {r['data']} | {r['status']} | | | | | | {note} |")
    if doc["targets"]:
        out += ["", f"{heading} Targets", "", "| target | measured | |", "|---|---|---|"]
        for t in doc["targets"]:
            shown, v = verdict(doc, t)
            out.append(f"| {t['text']} | {shown} | {'**NOT met**' if v == 'NOT met' else v} |")
    return "\n".join(out) + "\n"


def cell(r, with_rss):
    if not ok(r):
        return r["status"] if r else "not run"
    text = f"{r['median_s']:.2f} s"
    if with_rss:
        text += f", {r['rss_mib']} MiB RSS"
    return text


def render_summary(doc):
    """README's short table: each job's fspack row beside its peers' rows."""
    rows = rows_by_key(doc)
    m = doc["meta"]
    out = [
        f"From one `bench/run.sh` run ({m.get('date', '?')}, {runs(m)}, "
        f"medians; {m.get('machine', '?')}; load average at start {m.get('load_start', '?')}).",
        "",
        "| job | fspack | peers |",
        "|---|---|---|",
    ]
    for s in doc["summary"]:
        r = rows.get(s["key"])
        peers = []
        for k in s["peers"]:
            p = rows.get(k)
            if p is not None:
                peers.append(f"{p['label']}: {cell(p, True)}")
        extra = f" ({r['size']})" if ok(r) and r.get("size", "").startswith("sent") else ""
        out.append(f"| {s['job']} | {cell(r, True)}{extra} | {'; '.join(peers)} |")
    return "\n".join(out) + "\n"


RENDER = {
    "summary": render_summary,
    "full": lambda doc: render_full(doc, "####"),
    "quick": lambda doc: render_full(doc, "####"),
}


def block(kind, path):
    return f"<!-- bench-tables:begin {kind} {path} -->\n{RENDER[kind](load(path))}<!-- bench-tables:end -->"


def regenerate(text, new_path=None, kinds=()):
    """The text with every marked block regenerated; blocks of the given kinds from new_path."""
    return MARKER.sub(
        lambda m: block(m.group(1), new_path if m.group(1) in kinds else m.group(2)), text
    )


def check():
    """Exit status 1 when a marked table differs from its results file, with a diff."""
    import difflib

    bad = 0
    found = 0
    for doc in DOCS:
        path = os.path.join(ROOT, doc)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found += len(MARKER.findall(text))
        want = regenerate(text)
        if want != text:
            bad = 1
            sys.stderr.writelines(difflib.unified_diff(
                text.splitlines(True), want.splitlines(True), doc, doc + " (generated)"))
    if found == 0:
        print("tables.py: no bench-tables markers in README.md or bench/README.md", file=sys.stderr)
        return 1
    if bad:
        print("tables.py: the tables above differ from their results file; "
              "hint: run bench/tables.py publish FILE (or fix the results file)", file=sys.stderr)
    return bad


def publish(src):
    """Copies a results file into bench/results/ and points the blocks of its profile at it:
    the `quick` blocks for a --quick run, the `summary` and `full` blocks for a full-size one."""
    quick = load(src)["meta"].get("quick") == "1"
    kinds = ("quick",) if quick else ("summary", "full")
    dest_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(dest_dir, exist_ok=True)
    rel = os.path.join("bench", "results", os.path.basename(src))
    if os.path.abspath(src) != os.path.join(ROOT, rel):
        shutil.copyfile(src, os.path.join(ROOT, rel))
    for doc in DOCS:
        path = os.path.join(ROOT, doc)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(regenerate(text, rel, kinds))
    print(f"tables.py: the {' and '.join(kinds)} tables now show {rel}")


def main(argv):
    if len(argv) == 3 and argv[0] == "collect":
        collect(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "render":
        sys.stdout.write(render_full(load(argv[1])))
    elif len(argv) == 2 and argv[0] == "summary":
        sys.stdout.write(render_summary(load(argv[1])))
    elif len(argv) == 2 and argv[0] == "publish":
        publish(argv[1])
    elif argv == ["check"]:
        return check()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
