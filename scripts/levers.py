#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Runs variants of one example spec with `spkd run` and prints, per
stage, validation and test accuracy at the last epoch and at the best
validation epoch. Variants are chosen on the validation split; the test
column is printed for the record, not for choosing.

    scripts/levers.py examples/sym40-auto.json \\
        default= \\
        alpha9=student.kd.alpha=0.9 \\
        all=student.spl_weights="all" \\
        ens3=teachers=[{"epochs":15,"seed":11},{"epochs":15,"seed":12}]

A variant is NAME=PATH=JSON[;PATH=JSON...]; PATH is dotted (list items
by index: teachers.0.epochs). Runs go under var/levers/ and are not run
again once their summary says they succeeded.
"""
import json
import os
import sqlite3
import sys

from results import ROOT, spkd_run


def set_path(doc, path, value):
    keys = path.split(".")
    for k in keys[:-1]:
        doc = doc[int(k)] if isinstance(doc, list) else doc.setdefault(k, {})
    last = keys[-1]
    if isinstance(doc, list):
        doc[int(last)] = value
    else:
        doc[last] = value


def stage_rows(db):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    rows = con.execute("SELECT stage, epoch, val_acc, test_acc FROM "
                       "epoch_metrics ORDER BY stage, epoch").fetchall()
    con.close()
    out = {}
    for stage, epoch, val, test in rows:
        out.setdefault(stage, []).append((epoch, val, test))
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        base = json.load(f)
    outdir = os.path.join(ROOT, "var", "levers")
    os.makedirs(outdir, exist_ok=True)
    tag = os.path.basename(sys.argv[1]).rsplit(".", 1)[0]
    for arg in sys.argv[2:]:
        name, _, patch = arg.partition("=")
        spec = json.loads(json.dumps(base))
        for item in filter(None, patch.split(";")):
            path, _, value = item.partition("=")
            set_path(spec, path, json.loads(value))
        stem = os.path.join(outdir, "%s-%s" % (tag, name))
        wall = spkd_run(spec, stem, "levers: " + name)["wall_seconds"]
        for stage, eps in stage_rows(stem + ".db").items():
            best = max(eps, key=lambda e: e[1])
            print("%-10s %-9s val last %.4f best %.4f (ep %d)   "
                  "test last %.4f at-best %.4f   %4.0f s" %
                  (name, stage, eps[-1][1], best[1], best[0], eps[-1][2],
                   best[2], wall), flush=True)


if __name__ == "__main__":
    main()
