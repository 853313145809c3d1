#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`make results`: runs every examples/*-auto.json over three seeds with
`spkd run` and writes the table of docs/results.md between its markers.

Each run's database and summary go under var/results/; a run whose
summary says "succeeded" is not run again, so an interrupted `make
results` goes on where it stopped (spkd run itself resumes a killed
run from its last completed epoch). Only the job's `seed` changes
between seeds: the label noise (seed 7) and the validation split stay
the same, so the spread is that of training alone.

    scripts/results.py [--seeds 1,2,3] [--only sym40,clean] [--table-only]
"""
import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGIMES = ["clean", "sym20", "sym40", "sym60", "pair45", "memorise"]
STAGES = ["spl", "teacher", "student", "baseline"]
BEGIN = "<!-- results:begin (scripts/results.py writes this part) -->"
END = "<!-- results:end -->"


def read_summary(stem):
    """The summary spkd run wrote at stem.summary.json, or None."""
    try:
        with open(stem + ".summary.json") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def spkd_run(spec, stem, label):
    """Runs spec with `spkd run` into stem.db and stem.summary.json
    unless a summary there says it succeeded; the summary. Exits when
    the run fails. Shared with scripts/levers.py."""
    s = read_summary(stem)
    if s and s.get("state") == "succeeded":
        return s
    with open(stem + ".json", "w") as f:
        json.dump(spec, f, indent=1)
    cmd = [os.path.join(ROOT, "build", "spkd"), "run", stem + ".json",
           "--db", stem + ".db", "--summary", stem + ".summary.json"]
    print("%s: %s" % (label, " ".join(cmd)), flush=True)
    t = time.time()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    if r.returncode != 0:
        sys.exit("%s failed (exit %d)" % (label, r.returncode))
    print("%s: done in %.0f s" % (label, time.time() - t), flush=True)
    return read_summary(stem)


def run_one(regime, seed, stem):
    """Runs regime at seed unless it has succeeded; the summary."""
    with open(os.path.join(ROOT, "examples", regime + "-auto.json")) as f:
        spec = json.load(f)
    spec["seed"] = seed
    spec["name"] = "%s-s%d" % (spec["name"], seed)
    return spkd_run(spec, stem, "results: %s seed %d" % (regime, seed))


def easy_fraction(stem, job_id):
    """The share of training samples in the run's final easy set, from
    its database."""
    con = sqlite3.connect("file:%s.db?mode=ro" % stem, uri=True)
    row = con.execute("SELECT easy_fraction FROM epoch_metrics WHERE "
                      "job_id = ? AND stage = 'spl' ORDER BY epoch DESC "
                      "LIMIT 1", (job_id,)).fetchone()
    con.close()
    return row[0] if row else None


def mean_sd(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def pct(x):
    return "—" if x is None else "%.2f" % (100 * x)


def acc(s, stage, which):
    st = s["stages"].get(stage)
    return st["test_accuracy"][which] if st else None


def table(results):
    """results: {regime: [summary per seed]} -> markdown lines."""
    seeds = max(len(v) for v in results.values())
    out = []
    out.append("Test accuracy in %%, mean of %d seeds: last epoch, then "
               "(in brackets) at the epoch of best validation accuracy."
               % seeds)
    out.append("")
    out.append("| regime | spl | teacher | student | baseline | "
               "student − baseline, last (per seed) | best-val |")
    out.append("|---|---|---|---|---|---|---|")
    for regime, runs in results.items():
        cells = [regime]
        for stage in STAGES:
            last, _ = mean_sd([acc(s, stage, "last") for s in runs])
            best, _ = mean_sd([acc(s, stage, "best") for s in runs])
            cells.append("%s (%s)" % (pct(last), pct(best)))
        d = [acc(s, "student", "last") - acc(s, "baseline", "last")
             for s in runs]
        db = [acc(s, "student", "best") - acc(s, "baseline", "best")
              for s in runs]
        m, sd = mean_sd(d)
        mb, sdb = mean_sd(db)
        cells.append("%+.2f ± %.2f (%s)" % (100 * m, 100 * sd, ", ".join(
            "%+.2f" % (100 * x) for x in d)))
        cells.append("%+.2f ± %.2f" % (100 * mb, 100 * sdb))
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("Noise and the final easy set (the self-paced stage's last "
               "epoch), mean ± standard deviation over the seeds; wall "
               "time of the whole job (four stages) on this machine.")
    out.append("")
    out.append("| regime | injected | estimate | AUROC | easy set kept | "
               "easy precision | easy recall | wall time |")
    out.append("|---|---|---|---|---|---|---|---|")
    for regime, runs in results.items():
        est = mean_sd([s["noise"]["estimated_rate"] for s in runs])
        cells = [regime, "%.2f" % runs[0]["noise"]["rate"],
                 "%.4f ± %.4f" % est]
        m, sd = mean_sd([s["detection"]["auroc"] for s in runs])
        cells.append("—" if m is None else "%.4f ± %.4f" % (m, sd))
        m, sd = mean_sd([s["easy_fraction"] for s in runs])
        cells.append("—" if m is None else "%.2f %% ± %.2f" %
                     (100 * m, 100 * sd))
        for k in ("precision", "recall"):
            m, sd = mean_sd([s["detection"][k] for s in runs])
            cells.append("—" if m is None else "%.4f ± %.4f" % (m, sd))
        w, _ = mean_sd([s["wall_seconds"] for s in runs])
        cells.append("%d min %02d s" % (w // 60, w % 60))
        out.append("| " + " | ".join(cells) + " |")
    return out


def write_doc(path, lines):
    doc = "# Results\n"
    if os.path.exists(path):
        with open(path) as f:
            doc = f.read()
    body = BEGIN + "\n\n" + "\n".join(lines) + "\n\n" + END
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + body + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n## `make results`\n\n" + body + "\n"
    with open(path + ".tmp", "w") as f:
        f.write(doc)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--only", default=",".join(REGIMES))
    ap.add_argument("--out", default=os.path.join(ROOT, "var", "results"))
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs",
                                                  "results.md"))
    ap.add_argument("--table-only", action="store_true",
                    help="write the table from the summaries already there")
    a = ap.parse_args()
    seeds = [int(x) for x in a.seeds.split(",")]
    regimes = [r for r in a.only.split(",") if r]
    for r in regimes:
        if r not in REGIMES:
            sys.exit("results: unknown regime '%s' (%s)" %
                     (r, ", ".join(REGIMES)))
    os.makedirs(a.out, exist_ok=True)
    results = {r: [] for r in regimes}
    # Seed by seed, so that an interrupted run has every regime once.
    for seed in seeds:
        for regime in regimes:
            stem = os.path.join(a.out, "%s-s%d" % (regime, seed))
            s = (read_summary(stem) if a.table_only else
                 run_one(regime, seed, stem))
            if s and s.get("state") == "succeeded":
                s["easy_fraction"] = easy_fraction(stem, s["id"])
                results[regime].append(s)
    results = {r: v for r, v in results.items() if v}
    if not results:
        sys.exit("results: no finished run to tabulate")
    lines = table(results)
    print("\n".join(lines))
    write_doc(a.doc, lines)
    print("results: wrote %s" % a.doc)


if __name__ == "__main__":
    main()
