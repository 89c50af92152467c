"""The ``statten-hw`` command line: thin subcommands over the library.

Every handler only calls library functions and prints; ``main`` is the one place that turns a
:class:`~statten_hw.errors.StattenError` (or an ``OSError``: a folder that cannot be written) into a
one-line message and exit code 2.
"""
from __future__ import annotations

import argparse
import sys

from statten_hw.errors import StattenError
from statten_hw.interrupts import signal_handling
from statten_hw.reports.files import check_output_folder

EXIT_USER_ERROR = 2


def _model_overrides(args) -> dict:
    return {"timesteps": args.timesteps, "block_size": args.block_size}


def _load(args):
    from statten_hw.defaults import default_checkpoint
    from statten_hw.models import load_checkpoint

    path = args.checkpoint or default_checkpoint()
    return path, load_checkpoint(path, use_ema=args.ema, **_model_overrides(args))


def cmd_info(args) -> None:
    from rich.console import Console
    from rich.table import Table

    from statten_hw.models.inspect import lif_layers, parameter_count

    path, model = _load(args)
    cfg = model.config
    console = Console()
    console.print(f"[bold]{path}[/bold]")
    console.print(f"{cfg.family} / {cfg.attention}: depth {cfg.depth}, dim {cfg.dim}, heads {cfg.heads}, "
                  f"T = {cfg.timesteps}, B = {cfg.block_size}, input {list(cfg.input_shape)}"
                  f"{' (DVS)' if cfg.dvs else ''}, {cfg.num_classes} classes{', TET' if cfg.tet else ''}")
    console.print(f"parameters: {parameter_count(model):,}")
    table = Table("spiking layer", "neurons / step", title="neurons per layer")
    layers = lif_layers(model)
    for name, neurons, _ in layers:
        table.add_row(name, f"{neurons:,}")
    table.add_row("[bold]total[/bold]", f"[bold]{sum(n for _, n, _ in layers):,}[/bold]")
    console.print(table)


def _own_dataset(args) -> str:
    """The data set the checkpoint was trained on (`pipeline.dataset_for`): what --dataset and --input
    default to, so that `digits_seq_b*` models are never measured on single images."""
    from pathlib import Path

    from statten_hw.defaults import default_checkpoint
    from statten_hw.pipeline import dataset_for

    return dataset_for(Path(args.checkpoint) if args.checkpoint else default_checkpoint())


def cmd_eval(args) -> None:
    from statten_hw.data import load_dataset
    from statten_hw.evaluate import accuracy, check_data

    _, model = _load(args)
    source = args.dataset or _own_dataset(args)
    x, y = load_dataset(source)
    check_data(model, x, y, source)
    acc = accuracy(model, x, y, progress=True)
    print(f"{source}: {len(y)} samples, top-1 accuracy {100 * acc:.2f} %")


def cmd_targets(args) -> None:
    from rich.console import Console
    from rich.table import Table

    from statten_hw.targets import list_targets, load_target
    from statten_hw.targets.sanafe import PREFIX, SHIPPED

    targets = [load_target(name) for name, _ in list_targets()]
    targets += [load_target(PREFIX + name) for name in SHIPPED]  # SANA-FE's own files, converted
    table = Table("target", "style", "chips x cores", "neurons/core", "synapse KiB/core", "E_SOP pJ")
    for t in targets:
        table.add_row(t.name, t.execution.value, f"{t.mesh.chips} x {t.cores_per_chip}",
                      _count(t.core.neurons_per_core), _count(t.core.synapse_bytes_per_core / 1024),
                      f"{t.energy.sop_pj:g}")
    console = Console()
    console.print(table)
    for t in targets:
        console.print(f"[bold]{t.name}[/bold]: {t.description}")


def _count(n: float) -> str:
    """A count for a narrow column: digits with separators up to ten million, then 3 significant digits
    (paper45nm's unbounded core holds 2^40 neurons)."""
    return f"{n:,.0f}" if n < 1e7 else f"{n:.3g}"


def cmd_energy(args) -> None:
    import dataclasses

    from statten_hw.data import load_dataset
    from statten_hw.energy import load_rate_profile, measure_rates, paper_energy
    from statten_hw.evaluate import check_input_shape
    from statten_hw.errors import InputError
    from statten_hw.reports.energy import write_energy_report
    from statten_hw.sweep.config import check_count

    samples = 64 if args.samples is None else args.samples
    check_count("--samples", samples)
    given = [flag for flag, value in (("--dataset", args.dataset), ("--samples", args.samples)) if value is not None]
    if args.rates != "measured" and given:
        raise InputError(f"{' and '.join(given)} {'choose' if len(given) > 1 else 'chooses'} the data measured "
                         f"rates come from; the profile "
                         f"{args.rates} gives its rates already")
    _, model = _load(args)
    if args.rates == "measured":
        source = args.dataset or _own_dataset(args)
        x, _ = load_dataset(source)
        x = x[:samples]
        check_input_shape(model, x, source)
        rates = dataclasses.replace(measure_rates(model, x), source=f"measured on {source} ({len(x)} samples)")
    else:
        rates = load_rate_profile(args.rates, model)
    report = paper_energy(model, rates)
    write_energy_report(args.output, model, report)
    print(f"paper45nm energy: {report.total_j * 1e6:.3f} µJ per sample ({len(report.rows)} layers); "
          f"report in {args.output}/")


EXPORT_FORMATS = ("ir", "onnx", "onnx-float", "nir", "netx")
#: The data an export quantizes on when --calibration names none.
DEFAULT_CALIBRATION = "digits"


def cmd_export(args) -> None:
    from pathlib import Path

    from statten_hw.export import export_float_onnx
    from statten_hw.export.nir_export import build_nir, export_nir
    from statten_hw.export.onnx_integer import export_integer_onnx
    from statten_hw.ir import lower, save_graph
    from statten_hw.reports.files import staged_folder

    formats = _export_formats(args)
    target, settings = _export_settings(args)
    path, model = _load(args)
    quantized = {"onnx", "nir", "netx"} & set(formats)
    # ir and onnx-float need data only to know how it arrives (single frames or event sequences).
    calib_x = _calibration_data(model, args) if quantized or args.calibration is not None else None
    name = Path(path).stem
    _check_no_input_overwritten(args, path, [Path(args.output) / f"{name}{suffix}" for f in formats
                                             for suffix in EXPORT_SUFFIXES[f]])
    # Sequence data ([N, T, C, H, W]) arrives event-encoded; single frames are repeated T times.
    events = calib_x is not None and calib_x.dim() == 5
    graph = lower(model, encoding="events" if events else None)
    qgraph = _quantize_for_export(model, graph, calib_x, args, target, settings) if quantized else None
    nir_graph = build_nir(qgraph) if "nir" in formats else None  # refuses a layer NIR cannot type
    written = []
    with staged_folder(args.output) as stage:  # a failing format leaves none of this export's files
        stem = stage / name

        def file(fmt: str, i: int = 0) -> Path:
            return Path(f"{stem}{EXPORT_SUFFIXES[fmt][i]}")

        if "ir" in formats:
            written += [p.name for p in save_graph(graph, stem)]
        if "onnx-float" in formats:
            written.append(export_float_onnx(model, file("onnx-float"), batch_size=args.batch,
                                             sample_shape=tuple(calib_x.shape[1:]) if events else None).name)
        if "onnx" in formats:
            written.append(export_integer_onnx(qgraph, file("onnx"), batch_size=args.batch).name)
        if "nir" in formats:
            written.append(export_nir(qgraph, file("nir"), built=nir_graph).name)
        if "netx" in formats:
            written += _export_netx(qgraph, file("netx", 0), file("netx", 1))
    params = sum(p.numel() for p in model.parameters())
    print(f"{model.config.family}/{model.config.attention}: {params:,} parameters, deployment graph of "
          f"{graph.number_of_nodes()} nodes; wrote " + ", ".join(str(Path(args.output) / w) for w in written))


#: The files each export format writes, after the checkpoint's name (``ir``: `save_graph`'s pair).
EXPORT_SUFFIXES = {"ir": (".json", ".npz"), "onnx": (".int.onnx",), "onnx-float": (".float.onnx",),
                   "nir": (".nir",), "netx": (".net", ".netx.json")}


def _export_formats(args) -> list[str]:
    """The formats of ``--format``, and its counts checked, before anything is loaded."""
    from statten_hw.errors import InputError
    from statten_hw.sweep.config import check_bits, check_count, check_fraction_bits

    formats = list(dict.fromkeys(f.strip() for f in args.format.split(",") if f.strip()))
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown or not formats:
        raise InputError(f"unknown export format(s) {unknown}; available: {', '.join(EXPORT_FORMATS)}" if unknown
                         else f"--format: no format given; available: {', '.join(EXPORT_FORMATS)}")
    check_bits(args.bits)
    if args.fraction_bits is not None:
        check_fraction_bits(args.fraction_bits)
    check_count("--batch", args.batch)
    check_count("--calibration-samples", args.calibration_samples)
    return formats


def _check_no_input_overwritten(args, checkpoint, outputs) -> None:
    """An export named after its checkpoint may land on an input file (``-o .`` beside a data file of
    the same name): refuse rather than replace it."""
    from pathlib import Path

    from statten_hw.errors import InputError

    inputs = {Path(p).resolve(): option for p, option in ((checkpoint, "the checkpoint"),
                                                          (args.calibration, "--calibration"))
              if p is not None and Path(p).exists()}
    for out in outputs:
        option = inputs.get(out.resolve())
        if option is not None:
            raise InputError(f"export would overwrite {option} {str(out)!r}: choose another -o folder")


def _export_netx(qgraph, path, sidecar) -> list[str]:
    """The lava-dl netx HDF5 of the chain netx can carry at ``path``, and the ``sidecar`` JSON listing
    every node it cannot carry with the reason (attention, residual sums, pooling, ...)."""
    from statten_hw.reports.files import write_json
    from statten_hw.simulator.lava.netx import export_netx

    export = export_netx(qgraph, path)
    write_json(sidecar, {"file": export.path.name, "blocks": [list(b) for b in export.blocks],
                         "input_shape": list(export.input_shape), "input_bits": export.input_bits,
                         "not_carried": [{"node": n, "reason": r} for n, r in export.not_carried]})
    stop = next(((n, r) for n, r in export.not_carried if not r.startswith("not on the netx chain")), None)
    print(f"netx carries {len(export.blocks)} block(s) ({', '.join(lif for _, lif in export.blocks)}); "
          f"{len(export.not_carried)} node(s) it cannot carry are listed in {sidecar.name}"
          + (f"; the chain stops at {stop[0]}: {stop[1]}" if stop else ""))
    return [export.path.name, sidecar.name]


def _calibration_data(model, args):
    from statten_hw.data import load_dataset
    from statten_hw.evaluate import check_input_shape

    source = args.calibration or DEFAULT_CALIBRATION
    calib_x, _ = load_dataset(source, split="train")
    check_input_shape(model, calib_x, source)
    return calib_x


def _export_settings(args) -> tuple[object, dict]:
    """``(target or None, quantize's keyword arguments)``: for ``--for-target``'s number formats, else
    ``--bits`` and ``--fraction-bits``; checked before anything is written."""
    from statten_hw.pipeline import quantizer_settings
    from statten_hw.targets import load_target

    target = load_target(args.for_target) if args.for_target is not None else None
    return target, quantizer_settings(target, args.bits, args.fraction_bits, "graph" if target is None else "target")


def _quantize_for_export(model, graph, calib_x, args, target, settings):
    """Quantize on the calibration split (``settings``, for ``target``'s number formats when given)
    and report float vs integer accuracy on the test split."""
    from statten_hw.data import load_dataset
    from statten_hw.evaluate import check_data
    from statten_hw.quant import compare_float_integer, quantize

    source = args.calibration or DEFAULT_CALIBRATION
    qgraph = quantize(graph, calib_x[: args.calibration_samples], **settings)
    test_x, test_y = load_dataset(source, split="test")
    check_data(model, test_x, test_y, source)
    cmp = compare_float_integer(model, qgraph, test_x, test_y)
    formats = f" for {target.name}'s formats, {qgraph.state_bits}-bit state" if target is not None else ""
    print(f"integer network ({settings['weight_bits']}-bit weights{formats}): accuracy float {100 * cmp['float_accuracy']:.2f} % vs "
          f"integer {100 * cmp['integer_accuracy']:.2f} % on {cmp['n']} {source} test samples; "
          f"spike agreement {100 * cmp['mean_spike_agreement']:.3f} %")
    return qgraph


def _block_sizes(spec: str, timesteps: int) -> list[int]:
    from statten_hw.errors import InputError

    if spec == "all":
        return [b for b in range(1, timesteps + 1) if timesteps % b == 0]
    try:
        sizes = [int(b) for b in spec.split(",") if b.strip()]
    except ValueError:
        raise InputError(f"-B/--block-sizes takes integers like 1,2,4 or 'all', got {spec!r}") from None
    if not sizes or min(sizes) < 1:
        raise InputError(f"block sizes must be positive integers, got {spec!r}")
    return list(dict.fromkeys(sizes))  # one B named twice is mapped once


def _embedded_accuracy(path, block: int):
    """Float accuracy per B (the checkpoint's own, as trained; the integer network's is `sweep`'s):
    it exists only for the embedded temporal-digits family (one checkpoint per B)."""
    from statten_hw.data import load_digits_split
    from statten_hw.defaults import seq_checkpoint
    from statten_hw.evaluate import accuracy
    from statten_hw.models import load_checkpoint

    from pathlib import Path

    if Path(path).resolve().parent != seq_checkpoint(block).resolve().parent or not Path(path).name.startswith("digits_seq_b"):
        return None
    if not seq_checkpoint(block).exists():
        return None
    x, y = load_digits_split("digits-seq", "test")
    return accuracy(load_checkpoint(seq_checkpoint(block)), x, y)


def _block_size_row(b: int, result, accuracy: float | None) -> dict:
    """One B of the block-size table (console and block_sizes.csv), in plain numbers."""
    t = result.totals
    return {"B": b, "cores": t.cores, "lower_bound_cores": result.lower_bound.cores, "buffer_bytes": t.buffer_bytes,
            "total_memory_bytes": t.synapse_bytes + t.state_bytes + t.buffer_bytes,
            "latency_steps": result.schedule.latency_steps, "traffic_in_order": result.traffic["in-order"],
            "traffic_aware": result.traffic["traffic-aware"], "float_accuracy": accuracy}


def _mapped_alike(a: dict, b: dict) -> bool:
    """Two rows of the block-size table with the same mapping figures (B and accuracy aside)."""
    return all(a[k] == b[k] for k in a if k not in ("B", "float_accuracy"))


def _block_size_table(rows: list[dict], title: str):
    from rich.table import Table

    table = Table("B", "cores", "lower bound", "buffer KiB", "total memory KiB", "latency (steps)",
                  "traffic in-order -> aware", "float accuracy", title=title)
    for r in rows:
        table.add_row(str(r["B"]), str(r["cores"]), str(r["lower_bound_cores"]), f"{r['buffer_bytes'] / 1024:,.1f}",
                      f"{r['total_memory_bytes'] / 1024:,.1f}", str(r["latency_steps"]),
                      f"{r['traffic_in_order']:,.0f} -> {r['traffic_aware']:,.0f}",
                      "-" if r["float_accuracy"] is None else f"{100 * r['float_accuracy']:.2f} %")
    return table


def cmd_map(args) -> None:
    from pathlib import Path

    from rich.console import Console

    from statten_hw.defaults import default_checkpoint
    from statten_hw.mapping import map_model
    from statten_hw.models import load_checkpoint
    from statten_hw.reports.files import check_output_folder, check_replaceable, write_csv
    from statten_hw.reports.mapping import (BLOCK_SIZE_TABLE, REPORT_FILES, remove_other_map_reports,
                                            write_mapping_report)
    from statten_hw.sweep.config import check_bits
    from statten_hw.targets import load_target

    path = args.checkpoint or default_checkpoint()
    target = load_target(args.target)
    if args.bits is not None:
        check_bits(args.bits)
    # With -B given, the checkpoint's own B need not divide a new T: B = 1 always does.
    own = {} if args.block_sizes is None else {"block_size": 1}
    base = load_checkpoint(path, use_ema=args.ema, timesteps=args.timesteps, **own)
    sizes = _block_sizes(str(base.config.block_size) if args.block_sizes is None else args.block_sizes,
                         base.config.timesteps)
    models = {b: load_checkpoint(path, use_ema=args.ema, timesteps=args.timesteps, block_size=b) for b in sizes}
    results = {b: map_model(m, target, b, weight_bits=args.bits) for b, m in models.items()}  # all checked first
    # accuracy is measured at the checkpoints' own T
    rows = [_block_size_row(b, results[b], None if args.timesteps else _embedded_accuracy(path, b)) for b in sizes]
    out = Path(args.output)
    folders = [f"B{b}" for b in sizes] if len(sizes) > 1 else None
    for folder in [out / f for f in folders] if folders else [out]:  # every report can be written, before the first is
        check_output_folder(folder)
        check_replaceable(folder, REPORT_FILES)
    if folders:
        check_replaceable(out, [BLOCK_SIZE_TABLE])
    for b in sizes:
        write_mapping_report(out / f"B{b}" if folders else out, models[b], results[b])
    if folders:
        write_csv(out / BLOCK_SIZE_TABLE, rows)
    if removed := remove_other_map_reports(out, folders):
        print(f"removed an earlier map run's {', '.join(sorted({p.name for p in removed}))} from {out}/",
              file=sys.stderr)
    Console().print(_block_size_table(rows, f"{Path(path).name} on {target.name}"))
    if len(rows) > 1 and all(_mapped_alike(row, rows[0]) for row in rows):
        print(f"note: every block size maps alike here: {base.config.attention} attention works step by step, "
              f"and {target.name} runs step by step too, so B changes nothing")
    print(f"reports in {args.output}/ (fan-in and fan-out checked per neuron; `simulate` counts each core's axons)")
    if warning := target.uncosted_warning():
        print(warning, file=sys.stderr)


def _simulation_inputs(args):
    """``(source, x, y)``: the ``--input`` data set (default: the checkpoint's embedded one), read
    before the slow preparation of the network, so that a bad file is refused at once."""
    from statten_hw.data import load_dataset
    from statten_hw.sweep.config import check_count

    source = args.input or _own_dataset(args)
    x, y = load_dataset(source, split="test")
    if args.samples is not None:
        check_count("--samples", args.samples)
        x, y = x[: args.samples], y[: args.samples]
    return source, x, y


def _calibration_source(args, source: str, x) -> str:
    """The data that quantizes the network: ``--calibration``; else the checkpoint's own data set
    (its train split, apart from the samples simulated) where the inputs have its sample shape;
    else the ``--input`` data itself, which a model the built-in digits do not fit (an official
    CIFAR checkpoint) needs (`cmd_simulate` notes that the two then share those samples)."""
    from statten_hw.data import load_dataset

    if args.calibration:
        return args.calibration
    own = _own_dataset(args)
    if source == own or load_dataset(own, split="train")[0].shape[1:] == x.shape[1:]:
        return own
    return source


def _simulate_sanafe(deployment, x, args) -> dict:
    from statten_hw.simulator.sanafe import run_sanafe, sanafe_report

    return sanafe_report(deployment, run_sanafe(deployment, x, timing_model=args.sanafe_timing or "detailed"))


def _simulate_lava(deployment, x, args) -> dict:
    from statten_hw.quant import run_integer
    from statten_hw.simulator.lava.report import lava_report
    from statten_hw.simulator.lava.run import run_lava

    return lava_report(deployment, run_lava(deployment.qgraph, x), reference=run_integer(deployment.qgraph, x))


def _reference_check(doc: dict) -> tuple[str, str | None]:
    """A backend run's own check against the integer reference (Lava's, or SANA-FE's per-layer
    mismatch counts): the summary's clause and, where they differ, a warning line (None when they
    agree or there was no check)."""
    check = doc.get("lava", {}).get("integer_reference")
    if check is None:
        compared = [r for r in doc.get("layers", []) if r.get("reference_mismatches") is not None]
        if not compared:
            return "", None
        differing = [r["name"] for r in compared if r["reference_mismatches"]]
        check = {"layers_compared": len(compared), "layers_equal": len(compared) - len(differing),
                 "layers_differing": differing, "logits_equal": None}
    logits = {True: ", logits equal", False: ", logits DIFFERENT", None: ""}[check["logits_equal"]]
    clause = f", spikes equal to the integer reference in {check['layers_equal']}/{check['layers_compared']} layers{logits}"
    differing = check["layers_differing"] + (["the logits"] if check["logits_equal"] is False else [])
    backend = {"lava": "Lava", "sanafe": "SANA-FE"}.get(doc.get("backend"), doc.get("backend"))
    if not differing:
        return clause, None
    if check.get("reference_saturated") or check.get("lava_wrapped_sums"):
        why = (f"the integer reference saturated {check['reference_saturated']} value(s) and "
               f"{check.get('lava_wrapped_sums', 0)} synaptic sum(s) left 24 bits before their bias, which Lava's "
               "24-bit synapses wrap (a limit of the Lava backend: only runs with neither are bit-exact)")
    else:
        why = "a backend defect, please report it"
    return clause, f"warning: {backend} disagrees with the integer reference in {', '.join(differing)}: {why}"


#: Backends other than the event simulator: each returns a report.json dict (unmeasured fields null).
BACKENDS = {"event": None, "sanafe": _simulate_sanafe, "lava": _simulate_lava}


def _check_backend_options(args) -> None:
    """Refuse options the chosen backend would ignore: a report must not name a device or a timing
    model its run did not use."""
    from statten_hw.errors import InputError

    given = [flag for flag, value in (("--engine", args.engine), ("--device", args.device)) if value is not None]
    if args.backend != "event" and given:
        raise InputError(f"{' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to the event backend (--backend event), not to {args.backend}")
    if args.backend != "sanafe" and args.sanafe_timing is not None:
        raise InputError(f"--sanafe-timing applies to --backend sanafe, not to {args.backend} (the event backend's "
                         "timeline on a SANA-FE target follows SANA-FE's simple timing model)")


def cmd_simulate(args) -> None:
    from statten_hw.data import DATASETS
    from statten_hw.errors import InputError
    from statten_hw.evaluate import check_data
    from statten_hw.pipeline import prepare
    from statten_hw.reports.simulation import axon_problem, write_simulation_report
    from statten_hw.resources import check_memory, parse_size, simulation_bytes
    from statten_hw.simulator import simulate
    from statten_hw.sweep.config import check_bits

    if args.backend not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    _check_backend_options(args)
    check_bits(args.bits)
    limit = parse_size(args.max_memory) if args.max_memory is not None else None
    source, x, y = _simulation_inputs(args)
    calibration = _calibration_source(args, source, x)
    deployment = prepare(args.checkpoint, args.target, args.block_size, bits=args.bits, timesteps=args.timesteps,
                         dataset=calibration, use_ema=args.ema, precision=args.precision)
    check_data(deployment.model, x, y, source)
    if args.calibration is None and calibration == source and source not in DATASETS:
        print(f"note: the network is quantized on the samples it simulates ({source}); --calibration names "
              "other data", file=sys.stderr)
    # Refuse before the run, not halfway through it (swapping, or killed by the OOM killer).
    engine, device = args.engine or "fast", args.device or "cpu"  # given only for the event backend
    check_memory(simulation_bytes(deployment, len(x), args.backend, engine), limit)
    data = {"input": _data_name(source), "samples": len(x), "calibration": _data_name(deployment.dataset)}
    if warning := deployment.target.uncosted_warning():
        print(warning, file=sys.stderr)
    if args.backend != "event":
        doc = write_simulation_report(args.output, {**BACKENDS[args.backend](deployment, x, args), "data": data})
        clause, warning = _reference_check(doc)
        print(f"{args.backend} backend: {len(x)} sample(s) on {doc['target']}{clause}; report in {args.output}/")
        if warning:
            print(warning, file=sys.stderr)
        if approximations := doc.get("sanafe", {}).get("approximations"):
            print(f"note: SANA-FE runs {len(approximations)} layer(s) on input currents the integer reference "
                  "computes; their synaptic work is not in its SOPs and energy (report.md lists them)",
                  file=sys.stderr)
        _warn_precision(doc)
        return
    sim = simulate(deployment, x, engine=engine, device=device, labels=y, progress=True)
    doc = write_simulation_report(args.output, {**sim.report, "data": data})
    s, pi = doc["simulation"], doc["simulation"]["per_inference"]
    acc = f", accuracy {100 * s['accuracy']:.2f} %" if s["accuracy"] is not None else ""
    print(f"{deployment.checkpoint.name} on {doc['target']} (B = {doc['block_size']}): {s['samples']} sample(s){acc}; "
          f"per inference {pi['cycles']:,.0f} cycles, {pi['latency_s'] * 1e6:,.2f} µs, {pi['energy_j'] * 1e6:,.3f} µJ; "
          f"{doc['totals']['cores']} core(s); report in {args.output}/")
    _warn_precision(doc)
    if problem := axon_problem(doc["simulation"]["axons"]):
        print(f"warning: {problem}", file=sys.stderr)


def _data_name(spec) -> str:
    """A built-in data set by its name, a file by its absolute path: two reports of one file say the
    same, however the commands named it (`diff` compares them)."""
    from pathlib import Path

    from statten_hw.data import DATASETS

    return str(spec) if str(spec) in DATASETS else str(Path(spec).resolve())


def _warn_precision(doc: dict) -> None:
    """Warning lines for a simulation report's numbers that are not the deployed network's own: where
    the graph does not fit the target's formats, and input values the input quantizer clipped."""
    from statten_hw.reports.simulation import input_clipping

    precision = doc.get("precision")
    if precision is None:  # a Lava run without its integer reference (API only)
        return
    if problems := precision["problems"]:
        print(f"warning: the integer graph does not fit {doc['target']}'s number formats in {len(problems)} place(s) "
              f"(first: {problems[0]}); report.md lists them", file=sys.stderr)
    if precision["inputs_clipped"]:
        print(f"warning: input: {input_clipping(precision)}", file=sys.stderr)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", help="checkpoint file (default: the embedded digits STAtten model)")
    p.add_argument("-T", "--timesteps", type=int, help="override the number of time steps")
    p.add_argument("-B", "--block-size", type=int, help="override the STAtten block (chunk) size")
    p.add_argument("--ema", action="store_true", help="use state_dict_ema instead of state_dict")


def build_parser() -> argparse.ArgumentParser:
    from statten_hw.pipeline import PRECISIONS
    from statten_hw.quant.quantize import FRACTION_BITS
    from statten_hw.resources import SAFETY_FRACTION

    parser = argparse.ArgumentParser(prog="statten-hw", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="detected architecture, parameters, neurons per layer, T, B")
    _add_model_args(info)
    info.set_defaults(func=cmd_info)
    ev = sub.add_parser("eval", help="accuracy on digits, digits-seq or a .npz file (arrays x, y)")
    _add_model_args(ev)
    ev.add_argument("--dataset", help="digits | digits-seq | PATH.npz (default: the one the checkpoint was "
                                      "trained on; digits for your own checkpoints)")
    ev.set_defaults(func=cmd_eval)
    ex = sub.add_parser("export", help="write the deployment graph (JSON+npz), the integer ONNX network and the float ONNX model")
    _add_model_args(ex)
    ex.add_argument("-o", "--output", default="out/export", help="output folder (default out/export)")
    ex.add_argument("--format", default="ir,onnx,onnx-float,nir",
                    help="comma-separated: ir (deployment graph), onnx (integer network), onnx-float, nir, "
                         "netx (lava-dl HDF5 of the part netx carries; not in the default)")
    ex.add_argument("--bits", type=int, default=8, help="weight bits of the integer network (1-16, default 8)")
    ex.add_argument("--fraction-bits", type=int,
                    help=f"bits a layer's sums keep below the weight LSB, Loihi's weight exponent (0-16, default "
                         f"{FRACTION_BITS}); netx files carry no exponent: use 0 with --format netx")
    ex.add_argument("--for-target", metavar="TARGET",
                    help="quantize for this target's number formats (exponent field, state width, decay field; "
                         "weights of --bits, at most the target's width; as simulate --precision target) instead "
                         "of 24-bit state and --fraction-bits")
    ex.add_argument("--calibration",
                    help="data for calibration (train split) and the float-vs-integer check (test split): digits "
                         "| digits-seq | PATH.npz (default digits); its sample shape also says whether the graph "
                         "and the float ONNX take single frames or event sequences")
    ex.add_argument("--calibration-samples", type=int, default=256, help="calibration samples (default 256)")
    ex.add_argument("--batch", type=int, default=1, help="static batch size of the ONNX input (default 1)")
    ex.set_defaults(func=cmd_export)
    mp = sub.add_parser("map", help="temporal blocks + core placement on a target; mapping report")
    mp.add_argument("checkpoint", nargs="?", help="checkpoint file (default: the embedded digits STAtten model)")
    mp.add_argument("--target", default="loihi2", help="loihi2 | layerwise | paper45nm | PATH.toml")
    mp.add_argument("-B", "--block-sizes", help="block size B, a list 1,2,4, or 'all' (every divisor of T)")
    mp.add_argument("-T", "--timesteps", type=int, help="override the number of time steps")
    mp.add_argument("--ema", action="store_true", help="use state_dict_ema instead of state_dict")
    mp.add_argument("--bits", type=int, help="weight bits the network will be quantized to: synapse memory at that "
                    "width where the target packs narrower weights (default: the target's weight width)")
    mp.add_argument("-o", "--output", default="out/map", help="report folder (default out/map)")
    mp.set_defaults(func=cmd_map)
    en = sub.add_parser("energy", help="per-layer energy with the STAtten paper's Table 7 model")
    _add_model_args(en)
    en.add_argument("--model", dest="energy_model", default="paper45nm", choices=["paper45nm"],
                    help="energy model (the STAtten paper's 45 nm operation counts)")
    en.add_argument("--rates", default="measured",
                    help="'measured' (run the model on --dataset) or a JSON file {layer: [rate per step]}")
    en.add_argument("--dataset", help="data to measure rates on: digits | digits-seq | PATH.npz (default: the "
                                      "one the checkpoint was trained on; digits for your own checkpoints)")
    en.add_argument("--samples", type=int, help="samples to measure rates on (default 64)")
    en.add_argument("-o", "--output", default="out/energy", help="report folder (default out/energy)")
    en.set_defaults(func=cmd_energy)
    sm = sub.add_parser("simulate", help="cycle-level event simulation of the placed integer network; report")
    _add_model_args(sm)
    sm.add_argument("--target", default="loihi2",
                    help="loihi2 | layerwise | paper45nm | PATH.toml | sanafe:loihi | sanafe:truenorth | PATH.yaml")
    sm.add_argument("--backend", default="event", help="event (the cycle-level simulator) | lava (Lava processes, Loihi2SimCfg "
                    "fixed_pt) | sanafe (SANA-FE, with --target sanafe:loihi or a SANA-FE .yaml)")
    sm.add_argument("--sanafe-timing", choices=["simple", "detailed"],
                    help="SANA-FE's timing model (--backend sanafe; default detailed)")
    sm.add_argument("--engine", help="fast (tensors, CPU/CUDA; default) | detailed (one packet at a time; CPU)")
    sm.add_argument("--device", help="cpu (default) | cuda (the fast engine)")
    sm.add_argument("--input", help="digits | digits-seq | PATH.npz (default: the model's embedded data set)")
    sm.add_argument("--calibration", help="data whose train split (a PATH.npz: its first 256 samples) quantizes the "
                    "network: digits | digits-seq | PATH.npz (default: the model's embedded data set where --input "
                    "has its sample shape, else the --input data)")
    sm.add_argument("--samples", type=int, help="number of inputs (default: the whole test split)")
    sm.add_argument("--bits", type=int, default=8, help="weight bits of the integer network (default 8)")
    sm.add_argument("--precision", default="graph", choices=PRECISIONS,
                    help="quantize for the graph (--bits, 24-bit state, Loihi's weight exponents: default) or for "
                    "the target's own weight, exponent, state and decay widths; the report lists what does not fit "
                    "either way")
    sm.add_argument("--max-memory", help=f"refuse a run whose estimated peak memory exceeds this, e.g. 2GiB, 512M or "
                    f"bytes (default: {round(SAFETY_FRACTION * 100)} %% of the available memory)")
    sm.add_argument("-o", "--output", default="out/simulate", help="report folder (default out/simulate)")
    sm.set_defaults(func=cmd_simulate)
    from statten_hw.reports.diff import add_diff_parser
    from statten_hw.sweep import add_sweep_parser

    add_sweep_parser(sub)
    add_diff_parser(sub)
    tg = sub.add_parser("targets", help="list the built-in hardware targets (or pass --target FILE.toml elsewhere)")
    tg.set_defaults(func=cmd_targets)
    for command in sub.choices.values():  # before or after the command; SUPPRESS keeps the one given first
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks instead of one-line errors")
    return parser


def _out_of_memory(err: BaseException) -> bool:
    """Python's MemoryError, or the RuntimeError torch's CPU allocator raises for the same cause."""
    return isinstance(err, MemoryError) or "can't allocate memory" in str(err)


def main(argv: list[str] | None = None) -> int:
    with signal_handling():
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        if getattr(args, "output", None) is not None:  # every command that writes a folder
            check_output_folder(args.output)
        status = args.func(args)  # a handler may return its own exit code (diff: 1 = reports differ)
    except (StattenError, OSError) as err:  # OSError: a folder or file the system refuses to write or read
        if args.debug:
            raise
        # a newline inside a path the user gave stays visible and keeps the message on one line
        print(f"statten-hw: error: {str(err).replace(chr(10), '[newline]')}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (MemoryError, RuntimeError) as err:
        if args.debug or not _out_of_memory(err):
            raise
        print("statten-hw: error: out of memory (the model, data or target is larger than this machine holds)",
              file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("statten-hw: interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
