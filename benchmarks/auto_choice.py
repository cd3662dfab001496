"""How `auto` should choose: every cheap candidate's cross-validated fold scores and its test accuracy, on the quality
benchmark's splits, so that choice rules can be compared offline on the same runs.

For each set, label budget and seed: the candidates `auto` would score (baseline, linear / MLP heads, joined
features), each scored on the same folds (`autofit._score`), then each fitted on the whole training part and scored
on the held-out test split (never used to choose). `--analyse` then replays choice rules on the saved runs: the
present rule (`autofit.choose`: the best mean unless it does not beat the default recipe clearly, by a one-sided 90%
Student bound on the paired fold differences), the plain best mean, always the default, and stricter bounds. Each
rule's test accuracy is compared with the oracle (the best candidate on the test split) and with max(baseline, probe).

    python benchmarks/auto_choice.py --sets bbc,titles,tweets,digits,solar,fashion --budgets 4,16 --seeds 0,1,2
    python benchmarks/auto_choice.py --analyse
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "auto_choice.json"


def run(name: str, budget: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from quality import SETS, pool

    from headstart import autofit
    from headstart.data import split
    from headstart.runs import partition

    source, spec = SETS[name]
    ds = pool(source, args.max_items)
    train, test = split(ds, test_size=0.25, seed=seed, labels_per_class=None if budget == "all" else int(budget))
    folds = autofit.fold_indices(train, seed)
    common = {"seed": seed, "batch_size": 32, "progress": False, "class_weight": None}
    part = partition(train, test=test, seed=seed, refit=False)
    rows = []
    pool_ = autofit.candidates(train, [spec], None)
    for cand in pool_:
        if cand.note:
            continue
        t0 = time.perf_counter()
        autofit._score(cand, train, folds, common, None, 0.0, {})
        model = autofit._final_model(cand, train, part, common, False, "test split", {})
        test_acc = float(model.report["tasks"][train.tasks[0]]["accuracy"])
        rows.append({"name": cand.name, "kind": cand.kind, "head": cand.head, "spec": cand.spec,
                     "folds": cand.fold_accuracy, "test": test_acc, "seconds": time.perf_counter() - t0})  # fmt: skip
    default = autofit._default_candidate(pool_)
    return {"set": name, "budget": budget, "seed": seed, "n_train": len(train), "n_test": len(test),
            "default": default.name if default else None, "candidates": rows}  # fmt: skip


def bound_rule(t_level: float | None, n_eff: str) -> Any:
    """A rule: the best mean, unless its paired fold differences with the default fall under max(MIN_GAIN, bound);
    bound = Student t at `t_level` (one-sided) x sd / sqrt(n), n = all folds ("folds") or one draw's ("draw")."""
    from scipy.stats import t

    from headstart.heads.tuning import MIN_GAIN

    def choose(run: dict[str, Any]) -> dict[str, Any]:
        cands = run["candidates"]
        top = max(cands, key=lambda c: (round(float(np.mean(c["folds"])), 9), -cands.index(c)))
        default = next(c for c in cands if c["name"] == run["default"])
        if t_level is None or top is default:
            return top
        diff = np.asarray(top["folds"]) - np.asarray(default["folds"])
        k = len(diff)
        n = k if n_eff == "folds" else max(2, k // 3 if k >= 6 and k % 3 == 0 else k)
        bound = t.ppf(t_level, n - 1) * diff.std(ddof=1) / np.sqrt(n)
        return top if diff.mean() > max(MIN_GAIN, bound) else default

    return choose


def analyse(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rules = {
        "best mean": bound_rule(None, "folds"),
        "present: t 90%, every fold": bound_rule(0.9, "folds"),
        "t 90%, one draw": bound_rule(0.9, "draw"),
        "t 95%, every fold": bound_rule(0.95, "folds"),
        "t 95%, one draw": bound_rule(0.95, "draw"),
        "always the default": lambda run: next(c for c in run["candidates"] if c["name"] == run["default"]),
    }
    out: dict[str, Any] = {}
    for rule, choose in rules.items():
        regrets, vs_floor, per = [], [], {}
        for run in runs:
            cands = run["candidates"]
            oracle = max(c["test"] for c in cands)
            base = next(c for c in cands if c["name"].startswith("baseline"))["test"]
            probe = next(c for c in cands if c["name"] == run["default"])["test"]
            got = choose(run)["test"]
            regrets.append(oracle - got)
            vs_floor.append(got - max(base, probe))
            per.setdefault(f"{run['set']} {run['budget']}", []).append(got)
        out[rule] = {
            "mean_test_accuracy": round(float(np.mean([np.mean(v) for v in per.values()])), 4),
            "mean_regret_vs_oracle": round(float(np.mean(regrets)), 4),
            "mean_vs_max_baseline_probe": round(float(np.mean(vs_floor)), 4),
            "worst_vs_max_baseline_probe": round(float(np.min(vs_floor)), 4),
            "per_cell": {k: round(float(np.mean(v)), 4) for k, v in per.items()},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="bbc,titles,tweets,digits,solar,fashion")
    parser.add_argument("--budgets", default="4,16")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-items", type=int, default=3000)
    parser.add_argument("--analyse", action="store_true", help="replay the choice rules on the saved runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    saved = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    if not args.analyse:
        for name in args.sets.split(","):
            for budget in args.budgets.split(","):
                for seed in [int(s) for s in args.seeds.split(",")]:
                    done = [r for r in saved["runs"] if (r["set"], r["budget"], r["seed"]) == (name, budget, seed)]
                    if done:
                        continue
                    saved["runs"].append(run(name, budget, seed, args))
                    last = saved["runs"][-1]
                    print(json.dumps({k: last[k] for k in ("set", "budget", "seed")}
                                     | {c["name"]: [round(float(np.mean(c["folds"])), 3), round(c["test"], 3)]
                                        for c in last["candidates"]}, ensure_ascii=False), flush=True)  # fmt: skip
                    args.out.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n")
    saved["analysis"] = analyse(saved["runs"])
    if not args.analyse:  # --analyse replays the saved runs: the command that made them stays recorded
        saved["command"] = "python benchmarks/auto_choice.py " + " ".join(sys.argv[1:])
    args.out.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n")
    for rule, figures in saved["analysis"].items():
        print(rule, json.dumps({k: v for k, v in figures.items() if k != "per_cell"}))


if __name__ == "__main__":
    main()
