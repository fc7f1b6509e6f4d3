"""Regenerate the README's "Findings" section from the committed full-run outputs under ``docs/findings/``.

    python examples/make_findings.py           # rewrite the section between the markers in README.md
    python examples/make_findings.py --check   # exit 1 if README.md differs from what the JSON says (tests)

Every number in the section comes from a ``results.json`` written by an example's full mode; nothing is
typed by hand. Under each finding a line ``Numbers from: ...`` says where they came from (the ``environment``
the example recorded: versions, CPU, torch threads, date; "environment not recorded" for older outputs). The
section lives between ``<!-- findings:start -->`` and ``<!-- findings:end -->``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _provenance import describe

ROOT = Path(__file__).resolve().parents[1]
FINDINGS = ROOT / "docs" / "findings"
START, END = "<!-- findings:start -->", "<!-- findings:end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = FINDINGS / name / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _missing(name: str, command: str) -> str:
    return f"*Not run yet: `{command}` writes `docs/findings/{name}/`.*\n"


def _numbers_from(data: dict[str, Any]) -> str:
    """The ``Numbers from: ...`` line of a finding (its ``results.json``'s ``environment``, if recorded)."""
    return f"Numbers from: {describe(data.get('environment'))}"


def _footer(figure: str, command: str, data: dict[str, Any], runtime_key: str | None = "runtime_seconds") -> list[str]:
    """The closing lines every finding shares: its figure (Markdown image), the command (with its runtime when
    ``runtime_key`` names the seconds in ``results.json``) and where the numbers came from."""
    runtime = f" ({data[runtime_key] / 60:.1f} min here)" if runtime_key else ""
    return [figure, "", f"Command: `{command}`{runtime}.", "", _numbers_from(data), ""]


def relu_vs_tanh() -> str:
    data = _load("relu_vs_tanh")
    head = "### ReLU simplifies in fewer layers than tanh (Naitzat et al., D-I)\n"
    command = "python examples/relu_vs_tanh.py --out docs/findings/relu_vs_tanh"
    if data is None:
        return head + _missing("relu_vs_tanh", command)
    c, s = data["config"], data["summary"]
    act, paired, settled = s["per_activation"], s["paired"], s["paired_settled"]
    lines = [
        head,
        f"A {c['depth']} x {c['width']} MLP trained to >= {100 * c['target_train_acc']:.1f} % training accuracy on D-I "
        f"({c['train_per_class']} points per class, full-batch Adam, lr {c['lr']['relu']} / {c['lr']['tanh']}) with "
        f"ReLU and with tanh on {len(c['seeds'])} paired seeds (same data and initial weights); per-class Betti "
        f'numbers of every layer on {c["eval_per_class"]} points per class, `metric="knn_hops"`, k = {c["k"]}, '
        f"scale {c['scale']}. Measure: the first layer where class a is one component (b0 = 1; never = "
        f"{act['relu']['first_layer_b0a_1']['censored_at']}).\n",
        "| | ReLU | tanh |",
        "|---|---|---|",
        f"| nets at the accuracy target | {act['relu']['n_trained']} / {act['relu']['n_runs']} | "
        f"{act['tanh']['n_trained']} / {act['tanh']['n_runs']} |",
        f"| training steps, median (range) | {act['relu']['steps']['median']:.0f} ({act['relu']['steps']['min']}-"
        f"{act['relu']['steps']['max']}) | {act['tanh']['steps']['median']:.0f} ({act['tanh']['steps']['min']}-"
        f"{act['tanh']['steps']['max']}) |",
    ]
    for key, label in (
        ("first_layer_b0a_1", "first layer with b0(a) = 1"),
        ("settled_layer_b0a_1", "layer from which b0(a) stays 1"),
    ):
        r, t = act["relu"][key], act["tanh"][key]
        lines.append(
            f"| {label}, mean ± std (median) | {r['mean']:.2f} ± {r['std']:.2f} ({r['median']:g}) | "
            f"{t['mean']:.2f} ± {t['std']:.2f} ({t['median']:g}) |"
        )
    lines += [
        f"| nets whose class a never reaches b0 = 1 | {act['relu']['first_layer_b0a_1']['n_never']} | "
        f"{act['tanh']['first_layer_b0a_1']['n_never']} |",
        f"| b0(a) / b1(b) at the last layer, mean | {act['relu']['b0_a_last_layer']['mean']:.2f} / "
        f"{act['relu']['b1_b_last_layer']['mean']:.2f} | {act['tanh']['b0_a_last_layer']['mean']:.2f} / "
        f"{act['tanh']['b1_b_last_layer']['mean']:.2f} |",
        "",
        f"Paired over {len(paired['seeds'])} seeds: ReLU needs fewer layers on {paired['relu_fewer_layers']}, tanh on "
        f"{paired['tanh_fewer_layers']}, {paired['ties']} ties; mean difference (tanh - ReLU) "
        f"{paired['mean_difference']:+.2f} layers; Wilcoxon signed-rank p = {paired['wilcoxon_p_two_sided']:.3g} "
        f'(two-sided), sign test p = {paired["sign_test_p_two_sided"]:.3g}. With the "settled" measure: '
        f"{settled['relu_fewer_layers']} vs {settled['tanh_fewer_layers']} ({settled['ties']} ties), Wilcoxon p = "
        f"{settled['wilcoxon_p_two_sided']:.3g}. **Does Naitzat's direction reproduce?** "
        f"{s['relu_fewer_layers_than_tanh']}.{_censoring_caveat(act)} Training speed: tanh needed "
        f"{act['tanh']['steps']['median'] / act['relu']['steps']['median']:.1f}x the median steps of ReLU to reach "
        f"{100 * c['target_train_acc']:.1f} % (the recipe: {c.get('training', 'see the config')}).",
        "",
        *_footer(
            "![b0 of class a and b1 of class b against depth, ReLU vs tanh]"
            "(docs/findings/relu_vs_tanh/betti_vs_depth.png)",
            command,
            data,
        ),
    ]
    return "\n".join(lines)


def _censoring_caveat(act: dict[str, Any]) -> str:
    """A caveat when most nets of an activation never reach b0(a) = 1 (their mean is then the censored value)."""
    notes = []
    for name in ("relu", "tanh"):
        first = act[name]["first_layer_b0a_1"]
        if first["n_never"] * 2 > len(first["values"]):
            notes.append(
                f" Caveat: {first['n_never']} of {len(first['values'])} {name} nets never connect class a within "
                f"the net, so the {name} mean is dominated by the censored value."
            )
    return "".join(notes)


def invariances() -> str:
    data = _load("invariances")
    head = "### Omega-vs-depth curves under changes of resolution, data size and seed (Suresh et al.)\n"
    command = "python examples/invariances.py --out docs/findings/invariances"
    if data is None:
        return head + _missing("invariances", command)
    st, refs = data["settings"], data["references"]
    lines = [
        head,
        f"`{st['architecture']}` on the digits, {st['epochs']} epochs ({st['optimiser']}), input sizes "
        f"{', '.join(str(v) for v in st['sizes'])}, training fractions "
        f"{', '.join(f'{100 * v:.0f} %' for v in st['train_fractions'])}, seeds {st['seeds'][0]}-{st['seeds'][-1]}; "
        f"Omega per layer from `analyse` on the same 200 validation digits. Measure: {st['measure']}.\n",
        "| group | pairs | mean r (trained) | min r (trained) | max abs difference | mean r (same nets untrained) |",
        "|---|---|---|---|---|---|",
    ]
    for group, g in data["groups"].items():
        t, u = g["trained"], g["untrained"]
        lines.append(
            f"| {group} ({', '.join(g['labels'])}) | {t['n_pairs']} | {t['mean_r']:.3f} | {t['min_r']:.3f} | "
            f"{t['max_max_abs_diff']:.3f} | {u['mean_r']:.3f} |"
        )
    own, tanh = refs["trained_vs_untrained"], refs["relu_vs_tanh"]

    def verdict(group: str) -> str:
        r = data["groups"][group]["trained"]["mean_r"]
        return f"{'stable' if r >= 0.9 else '**not stable**'} across {group} (mean r {r:.2f})"

    lines += [
        "",
        f"References for how far apart curves can be: each trained net against its own untrained curve, mean r = "
        f"{own['mean_r']:.3f} (min {own['min_r']:.3f}); the seed runs against the same net with tanh, mean r = "
        f"{tanh['mean_r']:.3f}. Reading (r >= 0.9 counted as the same curve): {verdict('seed')}, "
        f"{verdict('subsample')} (these runs share their initial weights) and {verdict('resolution')}, where the "
        "digits are interpolated from 8 x 8. The measure separates curves only partly: the conv/pool layout that "
        "every run shares dominates Pearson r, as the two references show.",
        "",
        *_footer(
            "![normalised Omega against depth per group](docs/findings/invariances/omega_curves.png)", command, data
        ),
    ]
    return "\n".join(lines)


def rank_models() -> str:
    data = _load("rank_models")
    head = "### Ranking pre-trained models for transfer by theta (Suresh et al.)\n"
    command = "python examples/rank_models.py --out docs/findings/rank_models"
    if data is None:
        return head + _missing("rank_models", command)
    st = data["settings"]
    lines = [
        head,
        f"{len(data['models'])} models (CNNs, MLPs, a small ResNet) pre-trained on digits "
        f"{st['source_classes'][0]}-{st['source_classes'][-1]} for {st['pretrain_epochs']} epochs, scored on digits "
        f"{st['target_classes'][0]}-{st['target_classes'][-1]} before fine-tuning, then fine-tuned "
        f"{st['finetune_epochs']} epochs on {100 * st['finetune_fraction']:.0f} % of the target training set; "
        f"means over {st['seeds']} seeds.\n",
        "| model | layers | theta | decay rate | accuracy after fine-tuning |",
        "|---|---|---|---|---|",
    ]
    for row in data["ranking_by_theta"]["rows"]:
        m = data["models"][row["name"]]
        lines.append(
            f"| {row['name']} | {m['layers']} | {m['theta']:+.3f} | {m['decay_rate']:+.3f} | {m['accuracy']:.3f} |"
        )
    lines.append("")
    for key, label in (("ranking_by_theta", "-theta"), ("ranking_by_decay_rate", "decay rate")):
        c = data[key]["correlations"]
        lines.append(
            f"* {label} vs accuracy: Kendall tau = {c['kendall_tau']:+.3f} (p = {c['kendall_p']:.3g}), Spearman rho = "
            f"{c['spearman_rho']:+.3f} (p = {c['spearman_p']:.3g}), weighted tau = {c['weighted_tau']:+.3f}"
        )
    c = data["ranking_by_theta"]["correlations"]
    verdict = (
        "theta ranks these models in the paper's direction (lower theta, higher accuracy)"
        if c["kendall_tau"] > 0 and c["kendall_p"] < 0.05
        else "**the paper's finding does not reproduce here**: at this scale theta before fine-tuning does not "
        "significantly predict accuracy after it"
    )
    lines += [
        "",
        f"Verdict: {verdict}.",
        "",
        *_footer(
            "![theta and decay rate before fine-tuning against accuracy after]"
            "(docs/findings/rank_models/theta_vs_accuracy.png)",
            command,
            data,
            runtime_key="runtime_s",
        ),
    ]
    return "\n".join(lines)


def early_stopping() -> str:
    data = _load("early_stopping")
    head = "### Early stopping on topology (digits CNN)\n"
    command = "python examples/early_stopping.py --out docs/findings/early_stopping"
    if data is None:
        return head + _missing("early_stopping", command)
    st = data["settings"]
    lines = [
        head,
        f"{st['seeds']} seeds, at most {st['max_epochs']} epochs, patience {st['patience']}; every run carries "
        "`TopologyCallback()`.\n",
        "| rule | epochs run (mean) | stopped early | final val accuracy | time saved vs none |",
        "|---|---|---|---|---|",
    ]
    for rule, s in data["summary"].items():
        lines.append(
            f"| {rule} | {s['epochs_run_mean']:.1f} | {s['stopped_early']} / {st['seeds']} | "
            f"{s['final_val_acc_mean']:.3f} | {100 * s['time_saved_mean']:.0f} % |"
        )
    none, topo = data["summary"]["none"], data["summary"]["topology"]
    lines += [
        "",
        f"`TopologyEarlyStopping` with its earlier defaults (patience 3, unsmoothed; the next finding chose new ones) "
        f"stops after {topo['epochs_run_mean']:.1f} epochs on average at "
        f"{topo['final_val_acc_mean']:.3f} validation accuracy, against {none['final_val_acc_mean']:.3f} after "
        f"{none['epochs_run_mean']:.0f} epochs without stopping: "
        + (
            "the decay rate stops improving while accuracy still climbs, so on this task it saves time at a cost "
            "in accuracy."
            if topo["final_val_acc_mean"] < none["final_val_acc_mean"] - 0.01
            else "on this task it saves time at no real cost in accuracy."
        ),
        "",
        *_footer(
            "![validation accuracy and decay rate per epoch](docs/findings/early_stopping/early_stopping.png)",
            command,
            data,
            runtime_key=None,
        ),
    ]
    return "\n".join(lines)


def stopping_rules() -> str:
    data = _load("stopping_rules")
    head = "### Which early-stopping rule earns its place (3 tasks, every rule on the same runs)\n"
    command = "python examples/stopping_rules.py --out docs/findings/stopping_rules"
    if data is None:
        return head + _missing("stopping_rules", command)
    st, summary, chosen, rules = data["settings"], data["summary"], data["default"], data["rules"]
    tasks = list(st["tasks"])
    goal = st["goal"]
    shown = [
        "none",
        "hindsight",
        "half_budget",
        "val_loss_p3",
        "val_loss_p10",
        "decay_p3",
        "decay_p3+floor_p3",
        "omega_last_p10",
        "theta_p15",
        "decay_and_val_loss_p3",
        chosen["rule"],
        chosen["accuracy_first"]["rule"],
    ]
    lines = [
        head,
        f"Each of {len(tasks)} tasks x {st['seeds']} seeds trained once to its last epoch with "
        "`TopologyCallback(charts=False)`; every rule is then evaluated offline on the recorded series (`val_acc`, "
        "`val_loss`, decay rate, theta, Omega of the last layer, seconds per epoch), so all rules see the same "
        "trajectories. Tasks: "
        + "; ".join(f"`{t}`: {st['tasks'][t]['description']}, {st['tasks'][t]['max_epochs']} epochs" for t in tasks)
        + f". Goal for the defaults: mean validation accuracy within {goal['acc_lost_mean_at_most']} of training to "
        f"the end in at most {100 * goal['epoch_fraction_at_most']:.0f} % of the epochs, on every task. Cells: mean "
        "epochs run / mean validation accuracy at the stop (accuracy lost against `none`) / wall time saved.\n",
        "| rule | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for name in dict.fromkeys(shown):
        label = f"**{name}** (the default)" if name == chosen["rule"] else f"`{name}`"
        cells = []
        for task in tasks:
            t = summary[name][task]
            cells.append(
                f"{t['epochs_mean']:.1f} / {t['val_acc_mean']:.3f} ({t['acc_lost_mean']:+.3f}) / "
                f"{100 * t['time_saved_mean']:.0f} %"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    meets = [n for n in summary if rules[n]["family"] != "hindsight" and _meets_goal(summary[n], goal)]
    half = summary["half_budget"]
    beat_budget = [
        n
        for n in summary
        if n not in ("half_budget", "hindsight", "none")
        and all(
            summary[n][t]["acc_lost_mean"] <= half[t]["acc_lost_mean"]
            and summary[n][t]["time_saved_mean"] >= half[t]["time_saved_mean"]
            for t in tasks
        )
    ]
    halves = chosen.get("split_halves") or {}
    args = ", ".join(f"{k}={v!r}" for k, v in chosen["callback_arguments"].items())
    lines += [
        "",
        f"{len(summary)} rules in all (`results.json`): `hindsight` knows the final accuracy and is no rule; "
        "`half_budget` stops after half the epochs whatever it sees. **Goal met** by "
        + (", ".join(f"`{n}`" for n in meets) if meets else "no rule (topology or `val_loss`)")
        + ". Topology rules and `EarlyStopping(val_loss)` lie on one trade-off: a longer patience keeps more "
        "accuracy and saves less time."
        + (
            " No rule beats the fixed budget of half the epochs on every task (less accuracy lost and as much time "
            "saved): on these tasks neither the topology signals nor the validation loss told a rule more about "
            "when to stop than the epoch count did."
            if not beat_budget
            else f" Rules that beat the fixed half budget on every task: {', '.join(f'`{n}`' for n in beat_budget)}."
        ),
        "",
        f"**Default** `TopologyEarlyStopping({args})`: {chosen['why']} (worst task: "
        f"{chosen['worst_task_acc_lost']:+.3f} accuracy; {100 * chosen['time_saved_mean_over_tasks']:.0f} % of the "
        f"time saved on average). Criterion: {chosen['criterion']} The accuracy-first criterion would pick "
        f"`{chosen['accuracy_first']['rule']}` (worst task {chosen['accuracy_first']['worst_task_acc_lost']:+.3f}, "
        f"{100 * chosen['accuracy_first']['time_saved_mean_over_tasks']:.0f} % saved)."
        + (
            " Chosen on each half of the seeds: "
            + ", ".join(f"`{h['choice']}` (seeds {h['seeds'][0]}-{h['seeds'][-1]})" for h in halves.values())
            + "."
            if halves
            else ""
        ),
        "",
        *_footer(
            "![accuracy and decay rate per epoch with the stops; every rule's accuracy lost against time saved]"
            "(docs/findings/stopping_rules/stopping_rules.png)",
            command,
            data,
        ),
    ]
    return "\n".join(lines)


def _pair_list(betti: dict[str, list[int]]) -> str:
    """``(b0, b1)`` of each class, ``"(9, 0) / (1, 9)"``."""
    return " / ".join(f"({b[0]}, {b[1]})" for b in betti.values())


def _mean_pair(mean: list[float]) -> str:
    return f"({mean[0]:.1f}, {mean[1]:.1f})"


def point_cloud_defaults() -> str:
    data = _load("point_cloud_defaults")
    head = "### The point-cloud view at its defaults: D-I and the digits (Naitzat et al.)\n"
    command = "python examples/point_cloud_defaults.py --out docs/findings/point_cloud_defaults"
    if data is None:
        return head + _missing("point_cloud_defaults", command)
    c, rows, mlp, cnn = data["config"], data["inputs"], data["d1_mlp"], data["digits_cnn"]
    known = " / ".join(f"({b[0]}, {b[1]})" for b in c["known_d1"].values())
    recovered = sum(row["auto"] == {k: list(v) for k, v in c["known_d1"].items()} for row in rows)
    sizes = sorted({n for row in rows for n in row["per_class"].values()})
    ks = sorted({k for row in rows for k in row["k_auto"].values()})
    t, u = mlp["trained"], mlp["untrained"]
    settled = f"from layer {t['settled_from']} of {len(mlp['layers'])} on" if t["settled_from"] else "at no layer"
    cnn_t, cnn_u = cnn["trained"], cnn["untrained"]
    cnn_sizes = sorted(cnn["per_class"].values())
    cnn_ks = sorted(set(cnn["k_auto"].values()))
    lines = [
        head,
        f'`analyse(complex="rips")` at the defaults (up to 300 inputs per class, `k="auto"`, 2.5 hops). **D-I\'s '
        f"inputs** (known Betti numbers {known}), through an identity layer: with {', '.join(map(str, sizes))} points "
        f"per class and k = {', '.join(map(str, ks))}, {recovered} of {len(rows)} data seeds give the known numbers ("
        + "; ".join(f"seed {row['seed']}: {_pair_list(row['auto'])}" for row in rows)
        + "); Naitzat et al.'s k = 14 on the same samples gives "
        + "; ".join(_pair_list(row["k14"]) for row in rows)
        + ".",
        "",
        f"**A ReLU MLP on D-I** (`configs/d1_relu.yaml`'s recipe, {mlp['epochs']} epochs, validation accuracy "
        f"{mlp['val_acc']:.3f}): first layer {_pair_list(t['betti'][0])}, every class (1, 0) {settled}; decay rate "
        f"{t['decay_rate']:.3f} (untrained {u['decay_rate']:.3f}, first layer {_pair_list(u['betti'][0])}).",
        "",
        f"**The digits CNN** (`digits_cnn()`, {cnn['epochs']} epochs, validation accuracy {cnn['val_acc']:.3f}): the "
        f"validation split offers {cnn_sizes[0]}-{cnn_sizes[-1]} inputs per class, so k = "
        f"{', '.join(map(str, cnn_ks))}; mean (b0, b1) over classes goes from {_mean_pair(cnn_t['mean_betti'][0])} "
        f"at the first of its {len(cnn['layers'])} layers to {_mean_pair(cnn_t['mean_betti'][-1])} at the last "
        f"(decay rate {cnn_t['decay_rate']:.3f}; untrained {_mean_pair(cnn_u['mean_betti'][0])} to "
        f"{_mean_pair(cnn_u['mean_betti'][-1])}, {cnn_u['decay_rate']:.3f}): small clouds, weak evidence rather than "
        "structure.",
        "",
        *_footer(
            "![mean b0 and b1 per layer before and after training, D-I MLP and digits CNN]"
            "(docs/findings/point_cloud_defaults/betti_vs_depth.png)",
            command,
            data,
        ),
    ]
    return "\n".join(lines)


def _meets_goal(per_task: dict[str, Any], goal: dict[str, float]) -> bool:
    return all(
        t["acc_lost_mean"] <= goal["acc_lost_mean_at_most"]
        and t["epoch_fraction_mean"] <= goal["epoch_fraction_at_most"]
        for t in per_task.values()
    )


def section() -> str:
    """The whole generated section (between the markers)."""
    intro = (
        "Full-mode runs of the examples on a 2-core CPU; this section is generated from their committed\n"
        "`docs/findings/*/results.json` by `python examples/make_findings.py` (a test checks it matches).\n"
    )
    sections = [
        intro,
        relu_vs_tanh(),
        point_cloud_defaults(),
        invariances(),
        rank_models(),
        early_stopping(),
        stopping_rules(),
    ]
    return "\n".join(sections).rstrip() + "\n"


def render(readme: str) -> str:
    """``readme`` with the section between the markers replaced."""
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{section()}{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args(argv)
    path = ROOT / "README.md"
    current = path.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("README.md's Findings section is out of date: run python examples/make_findings.py", file=sys.stderr)
            return 1
        print("README.md's Findings section matches docs/findings/*/results.json")
        return 0
    path.write_text(wanted)
    print(f"updated the Findings section of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
