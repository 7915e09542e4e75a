#!/usr/bin/env python3
"""Golden-output regression of whole runs (tests/golden/README.md).

Runs every case of tests/golden/cases.json through `attnsim run` and compares its stats,
minus `sim` (wall time), with tests/golden/<case>.json: every integer, string and float
must be identical (floats compared as the doubles they are, not within a tolerance).
`trace.path` is replaced by the trace's name in cases.json, since synthesized traces live
in a temporary directory.

usage: scripts/golden.py --attnsim build/attnsim            # check; exit 1 on a difference
       scripts/golden.py --attnsim build/attnsim --update   # rewrite the golden files
       scripts/golden.py --attnsim build/attnsim --case latte -v
       scripts/golden.py --attnsim build/attnsim --against old/attnsim   # two binaries, same cases
       scripts/golden.py --attnsim build/attnsim --against old/attnsim --trace T.safetensors
                         # every case's config and overrides on T instead of its own trace

With --against, each case runs on both binaries and their stats (minus `sim`) must be
identical; a refactoring checks with it that no number moved, on any trace.

Standard library only, so it runs with any Python 3.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")


def load_cases():
    with open(os.path.join(GOLDEN, "cases.json")) as f:
        return json.load(f)


def make_traces(attnsim, traces, tmp):
    paths = {}
    for name, spec in traces.items():
        if "bundled" in spec:
            paths[name] = os.path.join(ROOT, spec["bundled"])
            continue
        out = os.path.join(tmp, name + ".safetensors")
        subprocess.run([attnsim, "trace", "synth", "--out", out] + spec["synth"], check=True,
                       stdout=subprocess.DEVNULL)
        paths[name] = out
    return paths


def run_case(attnsim, case, trace_path, tmp):
    out = os.path.join(tmp, case["name"] + ".json")
    cmd = [attnsim, "run", "-q", "-j", "2", "--config", os.path.join(ROOT, case["config"]),
           "--trace", trace_path, "--out", out]
    for s in case.get("set", []):
        cmd += ["--set", s]
    env = dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return None, f"exit {r.returncode}: {r.stdout}{r.stderr}".strip()
    with open(out) as f:
        stats = json.load(f)
    stats.pop("sim", None)
    stats["trace"]["path"] = case["trace"]
    return stats, None


def differences(expected, got, path="", limit=12):
    """Paths where two JSON trees differ, at most `limit` of them."""
    found = []

    def walk(a, b, p):
        if len(found) >= limit:
            return
        if type(a) != type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                       and not isinstance(a, bool) and not isinstance(b, bool)):
            found.append(f"{p or '(root)'}: expected {json.dumps(a)[:80]}, got {json.dumps(b)[:80]}")
        elif isinstance(a, dict):
            for k in sorted(set(a) | set(b)):
                if k not in a:
                    found.append(f"{p}.{k}: unexpected key")
                elif k not in b:
                    found.append(f"{p}.{k}: missing")
                else:
                    walk(a[k], b[k], f"{p}.{k}" if p else k)
        elif isinstance(a, list):
            if len(a) != len(b):
                found.append(f"{p}: expected {len(a)} items, got {len(b)}")
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{p}[{i}]")
        elif a != b or type(a) != type(b):
            found.append(f"{p}: expected {json.dumps(a)}, got {json.dumps(b)}")

    walk(expected, got, path)
    return found


def report(name, diff, ok_line, against=""):
    """Prints a case's verdict; returns 1 when it differs."""
    if not diff:
        print(ok_line)
        return 0
    print(f"FAIL {name}: {len(diff)}{'+' if len(diff) >= 12 else ''} differences{against}")
    for d in diff:
        print("   ", d)
    return 1


def compare_binaries(other, cases, traces, results, tmp, jobs):
    """Every case's stats from the two binaries must be identical."""
    theirs_dir = os.path.join(tmp, "against")
    os.makedirs(theirs_dir)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        theirs = list(pool.map(lambda c: run_case(other, c, traces[c["trace"]], theirs_dir), cases))
    failures = 0
    for case, (ours, error), (other_stats, other_error) in zip(cases, results, theirs):
        if error or other_error:
            # A case both binaries reject the same way is the same outcome.
            if error != other_error:
                failures += 1
                print(f"FAIL {case['name']}: {error or 'ran'} vs {other_error or 'ran'}")
            else:
                print(f"ok   {case['name']}: both rejected it: {error}")
            continue
        failures += report(case["name"], differences(other_stats, ours),
                           f"ok   {case['name']:<30} cycles {ours['cycles']['total']:>9}  identical",
                           " (expected = --against)")
    print(f"{len(cases) - failures}/{len(cases)} cases identical on both binaries")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attnsim", required=True)
    ap.add_argument("--update", action="store_true", help="rewrite tests/golden/<case>.json")
    ap.add_argument("--case", action="append", help="only this case (repeatable)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--against", help="compare with this attnsim binary instead of the golden files")
    ap.add_argument("--trace", help="with --against: run every case on this trace")
    ap.add_argument("--isa", help="run attnsim's kernels on this path (ATTNSIM_ISA: baseline, avx2, avx512); "
                                  "exits 77 (skipped) when the CPU lacks it")
    args = ap.parse_args()
    attnsim = os.path.abspath(args.attnsim)
    if args.isa:  # every path must give the golden stats bit for bit (core/isa.h)
        available = subprocess.run([attnsim, "--isa"], capture_output=True, text=True, check=True).stdout.split()
        if args.isa not in available[1:]:
            print(f"golden.py: skipped, this CPU cannot run the {args.isa} path (it has: {' '.join(available[1:])})")
            return 77
        os.environ["ATTNSIM_ISA"] = args.isa
    spec = load_cases()
    cases = [c for c in spec["cases"] if not args.case or c["name"] in args.case]
    if args.case and len(cases) != len(args.case):
        sys.exit(f"golden.py: unknown case in {args.case}")
    failures = 0
    if args.trace and not args.against:
        sys.exit("golden.py: --trace needs --against (the golden files belong to the cases' own traces)")
    with tempfile.TemporaryDirectory(prefix="attnsim_golden_") as tmp:
        if args.trace:
            traces = {c["trace"]: os.path.abspath(args.trace) for c in cases}
        else:
            traces = make_traces(attnsim, {c["trace"]: spec["traces"][c["trace"]] for c in cases}, tmp)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda c: run_case(attnsim, c, traces[c["trace"]], tmp), cases))
        if args.against:
            return compare_binaries(os.path.abspath(args.against), cases, traces, results, tmp, args.jobs)
        for case, (stats, error) in zip(cases, results):
            golden = os.path.join(GOLDEN, case["name"] + ".json")
            if error:
                print(f"FAIL {case['name']}: {error}")
                failures += 1
                continue
            if args.update:
                with open(golden, "w") as f:
                    json.dump(stats, f, indent=1, sort_keys=True)
                    f.write("\n")
                print(f"wrote {os.path.relpath(golden, ROOT)}")
                continue
            if not os.path.exists(golden):
                print(f"FAIL {case['name']}: no golden file {os.path.relpath(golden, ROOT)} (run with --update)")
                failures += 1
                continue
            with open(golden) as f:
                expected = json.load(f)
            cycles = stats["cycles"]["total"]
            failures += report(case["name"], differences(expected, stats),
                               f"ok   {case['name']:<30} cycles {cycles:>9}  identical" if args.verbose
                               else f"ok   {case['name']}")
    if not args.update:
        print(f"{len(cases) - failures}/{len(cases)} golden runs identical")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
