"""Runs of attnsim on config dicts, in parallel threads (each run its own process: SystemC
simulates one design per process). Used by scripts/candidates_experiment.py and
scripts/reproduce.py."""
import concurrent.futures
import json
import os
import subprocess


class Runner:
    """`attnsim run` of config dicts on traces, in parallel: each config is written to
    <work>/configs/<name>.json and its stats to <work>/<stats_dir>/<name>.json."""

    def __init__(self, attnsim, work, jobs, stats_dir="stats"):
        self.attnsim, self.work, self.jobs, self.stats_dir = attnsim, work, jobs, stats_dir
        self.runs = 0
        os.makedirs(os.path.join(work, "configs"), exist_ok=True)
        os.makedirs(os.path.join(work, stats_dir), exist_ok=True)

    def _one(self, job):
        name, cfg, trace = job
        cfg_path = os.path.join(self.work, "configs", name + ".json")
        out = os.path.join(self.work, self.stats_dir, name + ".json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        cmd = [self.attnsim, "run", "-q", "-j", "1", "--config", cfg_path,
               "--trace", getattr(trace, "path", trace), "--out", out]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
        with open(out) as f:
            return name, json.load(f)

    def run(self, jobs):
        """jobs: {name: (config dict, trace: a path or an object with .path)} -> {name: stats}."""
        items = [(name, cfg, trace) for name, (cfg, trace) in jobs.items()]
        self.runs += len(items)
        with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
            return dict(pool.map(self._one, items))
