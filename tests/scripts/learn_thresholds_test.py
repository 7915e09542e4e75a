"""scripts/learn_thresholds.py: the relaxed LATTE filter, its learning, and its configs.

- As tau -> 0 the soft keep mask becomes SimPolicy's hard mask (the simulator's rule) on
  the same q, k, key for key, and its sum the exact kept count (thetas away from ties).
- lambda > 0 lowers the keep fraction relative to lambda = 0 after a few steps.
- A config written from per-head gammas is accepted by `attnsim run`, and the per-head
  filtered counts of its stats (filter.by_layer[l].by_head[h]) equal SimPolicy's on the
  same exported input (the trace is exported from SimPolicy's forward pass, so every
  layer's q, k are what SimPolicy saw).

Uses the quick models (results/quick/models; trained in seconds if missing).

usage: ATTNSIM=build/attnsim /usr/bin/python3 -m unittest tests/scripts/learn_thresholds_test.py
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import learn_thresholds as lt  # noqa: E402
import models  # noqa: E402
import tasks  # noqa: E402

ATTNSIM = os.environ.get("ATTNSIM", os.path.join(ROOT, "build", "attnsim"))
tasks.setup_torch()

_MODELS = {}


def quick_model(kind):
    if kind not in _MODELS:
        model, _, _ = lt.load_model(kind, quick=True)
        for p in model.parameters():
            p.requires_grad_(False)
        _MODELS[kind] = model
    return _MODELS[kind]


def varied_theta(cfg, base=1.3):
    """Different thresholds per (layer, head), in logit units."""
    t = torch.tensor([[base + 0.61 * l + 0.37 * h for h in range(cfg.heads)] for l in range(cfg.layers)],
                     dtype=torch.float64)
    return t


class Both(models.Policy):
    """Runs the soft policy and SimPolicy on the same q, k, v of every layer; SimPolicy's
    output drives the forward pass."""

    def __init__(self, soft, hard):
        self.soft, self.hard = soft, hard

    def before_layer(self, h, layer, active):
        return self.hard.before_layer(h, layer, active)

    def attend(self, q, k, v, layer, causal, active):
        self.soft.attend(q, k, v, layer, causal, active)
        return self.hard.attend(q, k, v, layer, causal, active)


class SoftToHard(unittest.TestCase):

    def check(self, kind):
        model = quick_model(kind)
        task = lt.Task(model)
        x, _ = task.batch(6)
        theta = varied_theta(model.cfg)
        hard = lt.sim_policy(lt.gammas_from_theta(theta.numpy()), model.cfg, record=True)
        # First pass: the gaps, to place tau far below the closest gap-to-threshold distance.
        probe = lt.SoftThresholdPolicy(model.cfg, theta, 1.0, record=True)
        with torch.no_grad():
            model(x, Both(probe, lt.sim_policy(lt.gammas_from_theta(theta.numpy()), model.cfg)))
        closest = min(float((probe.gaps[l] - theta[l][None, :, None, None]).abs()
                            .masked_fill(~torch.isfinite(probe.gaps[l]), math.inf).min())
                      for l in probe.gaps)
        self.assertGreater(closest, 1e-9, "a gap ties a threshold: pick other thetas")
        distances = []
        for tau in (1.0, 0.1, 0.01, closest / 60):
            soft = lt.SoftThresholdPolicy(model.cfg, theta, tau, record=True)
            hard = lt.sim_policy(lt.gammas_from_theta(theta.numpy()), model.cfg, record=True)
            with torch.no_grad():
                model(x, Both(soft, hard))
            distance = 0.0
            for l in range(model.cfg.layers):
                kept = hard.masks[l] == 2
                cand = hard.masks[l] >= 1
                distance += float((soft.keeps[l] - kept.double()).abs().sum())
                if tau < 1e-3 or tau == closest / 60:
                    # key for key, and the counts per head exactly
                    self.assertTrue(torch.equal(soft.keeps[l] > 0.5, kept), f"{kind} layer {l}")
                    self.assertTrue(torch.equal(torch.isfinite(soft.gaps[l]), cand), f"{kind} layer {l}")
                    self.assertTrue(torch.equal(lt.hard_keep(soft.gaps[l], theta[l]), kept))
                    per_head = soft.keeps[l].sum(dim=(0, 2, 3))
                    expected = hard.counts["candidates"][l] - hard.counts["filtered"][l]
                    self.assertEqual(per_head.round().long().tolist(), expected.tolist())
                    self.assertLess(float((per_head - torch.as_tensor(expected, dtype=torch.float64)).abs().max()),
                                    1e-9)
            distances.append(distance)
        self.assertTrue(all(a > b for a, b in zip(distances, distances[1:])), distances)
        self.assertLess(distances[-1], 1e-9)
        self.assertGreater(hard.filtered_ratio(), 0.05)   # the thresholds do filter

    def test_vit(self):
        self.check("vit")

    def test_charlm_causal(self):
        self.check("charlm")


class Regularizer(unittest.TestCase):

    def test_lambda_lowers_keep_fraction(self):
        model = quick_model("vit")
        thetas = {}
        task = lt.Task(model)
        for lam in (0.0, 1.0):
            thetas[lam], history, _ = lt.learn(model, task, lam, steps=6, batch=16)   # the same batches
            self.assertEqual(len(history), 6)
        again, _, _ = lt.learn(model, task, 0.0, steps=6, batch=16)
        np.testing.assert_array_equal(again, thetas[0.0])   # reproducible, whatever ran before
        x, _ = lt.Task(model, batch_seed=1).batch(32)
        keep = {}
        for lam, theta in thetas.items():
            policy = lt.SoftThresholdPolicy(model.cfg, torch.as_tensor(theta), 0.1)
            with torch.no_grad():
                model(x, policy)
            keep[lam] = float(policy.keep_fraction())
        self.assertLess(keep[1.0], keep[0.0] - 0.01, keep)
        self.assertLess(thetas[1.0].mean(), thetas[0.0].mean())
        self.assertTrue((thetas[1.0] >= 0).all())


@unittest.skipUnless(os.path.exists(ATTNSIM), f"{ATTNSIM}: not built (set ATTNSIM)")
class WrittenConfig(unittest.TestCase):

    def check(self, kind):
        model = quick_model(kind)
        task = lt.Task(model)
        gamma = lt.gammas_from_theta(varied_theta(model.cfg, base=0.9).numpy())
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"latte-learned-{kind}.json")
            lt.write_config(path, gamma, "test")
            with open(path) as f:
                cfg = json.load(f)
            self.assertEqual(cfg["schema"], "attnsim.config/1")
            self.assertEqual(cfg["qk_unit"]["mode"], "latte")
            self.assertEqual(len(cfg["comparator"]["gamma"]), model.cfg.layers)
            r = subprocess.run([ATTNSIM, "config", "--resolve", path], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            check = lt.check_config_on_trace(task, ATTNSIM, path, 3, tmp, kind)
            self.assertEqual(check["attnsim_candidates"], check["sim_candidates"])
            self.assertEqual(check["attnsim_filtered"], check["sim_filtered"])
            self.assertTrue(check["equal"])
            self.assertAlmostEqual(check["attnsim_ratio"], check["sim_ratio"], places=12)
            self.assertGreater(check["sim_ratio"], 0.05)
            filtered = np.asarray(check["sim_filtered"])
            self.assertGreater(len(set(filtered.ravel().tolist())), 1)   # per-head thresholds differ

    def test_vit(self):
        self.check("vit")

    def test_charlm_causal(self):
        self.check("charlm")

    def test_cli_quick(self):
        """The --quick command line (one model, one lambda, no baselines) writes a config
        that attnsim accepts with the same counts."""
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "learn_thresholds.py"), "--quick",
                                "--models", "vit", "--lambdas", "0.5", "--steps", "3", "--no-compare",
                                "--attnsim", ATTNSIM, "--out-dir", tmp], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            with open(os.path.join(tmp, "vit.json")) as f:
                res = json.load(f)
            self.assertTrue(res["attnsim_check"]["equal"])
            self.assertTrue(os.path.exists(os.path.join(tmp, "latte-learned-vit.json")))


if __name__ == "__main__":
    unittest.main()
