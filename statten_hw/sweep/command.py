"""``statten-hw sweep``: its argparse sub-parser and its handler (wired into ``statten_hw.cli``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from statten_hw.errors import StattenError

from .config import OWN, int_list, plan
from .report import write_sweep_report
from .run import CONNECT_TIMEOUT_S, DEFAULT_SHARD_SIZE, execute


class SweepFailed(StattenError):
    """Some configurations could not be computed (a worker kept dying, a defect); the rest are stored."""


#: The longest --connect-timeout taken: a day (Dask's clocks overflow on far larger ones, and nothing
#: a sweep waits for takes longer).
MAX_CONNECT_TIMEOUT_S = 86_400.0


def _timeout_seconds(text: str) -> float:
    """--connect-timeout: seconds, more than 0 and at most `MAX_CONNECT_TIMEOUT_S` (review: inf and nan
    were tracebacks from Dask, 1e30 hung, -1 got Dask's garbled message)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < seconds <= MAX_CONNECT_TIMEOUT_S:  # False for nan too
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be more than 0 and at most {MAX_CONNECT_TIMEOUT_S:g}")
    return seconds


def add_sweep_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("sweep", help="block sizes x targets x bit widths on Dask; resumable tradeoff report")
    p.add_argument("checkpoints", nargs="*",
                   help="checkpoint files (default: the embedded temporal-digits family digits_seq_b1..b8, "
                        "each at its own B)")
    p.add_argument("-B", "--block-sizes", default=OWN,
                   help="'own' (each checkpoint at the B it was trained for; default), 'all' (every divisor "
                        "of T), or a list like 1,2,4")
    p.add_argument("--targets", default="loihi2,layerwise",
                   help="comma-separated built-in names or TOML files (default loihi2,layerwise)")
    p.add_argument("--bits", default="8", help="weight bit widths, e.g. 4,8 (1-16; default 8)")
    p.add_argument("--precision", default="graph",
                   help="quantize for the graph (--bits, 24-bit state: default), for each target's own formats "
                   "(target), or both side by side (graph,target)")
    p.add_argument("--samples", type=int, help="test samples per configuration (default: the whole test split)")
    p.add_argument("--dataset", help="digits | digits-seq | PATH.npz (default: the checkpoint's own data set)")
    p.add_argument("--engine", default="fast",
                   help="event simulator engine: fast | detailed | none (map and integer accuracy only); default fast")
    p.add_argument("--calibration-samples", type=int, default=256,
                   help="training samples to calibrate the quantizer on (default 256)")
    p.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://HOST:8786 "
                                       "(default: a LocalCluster on this machine)")
    p.add_argument("--workers", type=int, help="LocalCluster worker processes (default: one per CPU)")
    p.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                   help=f"test samples per task (default {DEFAULT_SHARD_SIZE})")
    p.add_argument("--connect-timeout", type=_timeout_seconds, default=CONNECT_TIMEOUT_S,
                   help=f"seconds to reach --scheduler and see a worker (default {CONNECT_TIMEOUT_S:g})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", default="out/sweep",
                   help="sweep folder: stored results and the report (default out/sweep)")
    p.set_defaults(func=run_sweep)
    return p


def run_sweep(args) -> None:
    """Plan (every input checked), compute what is not stored yet, write the report, print a summary."""
    configs = plan(args.checkpoints, args.block_sizes, [t.strip() for t in args.targets.split(",") if t.strip()],
                   int_list(args.bits, "--bits"), samples=args.samples, dataset=args.dataset,
                   calibration_samples=args.calibration_samples, engine=args.engine,
                   precisions=tuple(p.strip() for p in args.precision.split(",") if p.strip()))
    outcome = execute(configs, args.output, scheduler=args.scheduler, workers=args.workers,
                      shard_size=args.shard_size, progress=not args.no_progress, connect_timeout=args.connect_timeout)
    doc = write_sweep_report(args.output, outcome.results, outcome.failed, len(outcome.computed), len(outcome.reused))
    _print_summary(doc, args.output)
    _warn_uncosted(configs)
    ran = [r for r in doc["configurations"] if r["status"] == "ok"]
    if not ran and not outcome.failed:  # every configuration refused (a mapping limit, ...): nothing to compare
        first = doc["configurations"][0]
        raise SweepFailed(f"none of the {len(configs)} configuration(s) could run (first: "
                          f"{first['label']}: {first['error']}); the report in {args.output}/ lists each")
    if outcome.failed:
        raise SweepFailed(f"{len(outcome.failed)} of {len(configs)} configuration(s) failed "
                          f"(first: {outcome.failed[0]['label']}: {outcome.failed[0]['error']}); finished ones are "
                          f"stored in {args.output}/ and a re-run computes only what is missing")


def _warn_uncosted(configs) -> None:
    """A target that costs nothing (`Target.uncosted`) rates its configurations at 0 J or 0 cycles."""
    import sys

    from statten_hw.targets import load_target

    for name in dict.fromkeys(c.target for c in configs):
        if warning := load_target(name).uncosted_warning():
            print(warning, file=sys.stderr)


def _print_summary(doc: dict, out_dir) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    precisions = list(dict.fromkeys(r["precision"] for r in doc["configurations"]))
    both = len(precisions) > 1  # a column then says which graph each row ran
    table = Table("checkpoint", "target", "bits", *(["for"] if both else []), "B", "cores", "KiB", "steps", "µJ/inf",
                  "accuracy", "", title="block-size sweep", caption="KiB: memory · steps: schedule latency · "
                  "★ Pareto-optimal" + (f" · integers quantized for {_FOR[precisions[0]]}" if len(precisions) == 1 else ""),
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for r in doc["configurations"]:
        row = _summary_row(r)
        table.add_row(*(row[:3] + [r["precision"]] + row[3:] if both else row))
    console = Console()
    console.print(table)
    retried = sum(bool(r["retries"]) for r in doc["configurations"])
    console.print(f"{doc['run']['computed']} computed, {doc['run']['reused']} reused, {retried} retried after a "
                  f"worker died, {len(doc['failed'])} failed; report in {out_dir}/")


#: What a graph was quantized for, in the summary's caption.
_FOR = {"graph": "the graph (--bits, 24-bit state)", "target": "each target's formats"}


def _summary_row(r: dict) -> list[str]:
    head = [Path(r["checkpoint"]).stem, r["target"], str(r["bits"]), str(r["block_size"])]
    if r["status"] != "ok":
        return [*head, "-", "-", "-", "-", f"error: {r['error']}", ""]
    energy = r["per_inference"]["energy_j"]
    return [*head, str(r["totals"]["cores"]), f"{r['memory_bytes'] / 1024:,.1f}", str(r["latency_steps"]),
            "-" if energy is None else f"{energy * 1e6:,.3f}", f"{100 * r['accuracy']:.2f} %",
            "★" if r["pareto"] else ""]
