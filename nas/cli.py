"""The `nas` command: subcommands parse flags, call the library, print results.

Every NasError becomes one line on stderr and exit code 2 (`--debug` shows the
traceback). Heavy modules (torch, optuna) are imported inside the subcommands
so that `nas --help` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.errors import NasError, SpaceError
from nas.genome import ATTENTIONS, Genome
from nas.space import DEFAULT_SPACE, InputShape, Space, load_space

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def resolve_space(path: str) -> Space:
    """Load a space file; a relative path missing here is looked up in the project tree."""
    candidate = Path(path)
    if not candidate.exists() and not candidate.is_absolute() and (PROJECT_ROOT / path).exists():
        candidate = PROJECT_ROOT / path
    return load_space(candidate) if candidate.exists() else load_space(path)


def format_flops(flops: int) -> str:
    """`0.180348032 G (180,348,032)`: the report's unit (M below 0.1 G), then the exact count."""
    if flops >= 1e8:
        return f"{flops / 1e9:.9g} G ({flops:,})"
    return f"{flops / 1e6:.6g} M ({flops:,})"


def emit_json(payload: dict[str, Any]) -> None:
    """One JSON object on stdout and nothing else."""
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def _input_arg(text: str) -> InputShape:
    try:
        return InputShape.parse(text)
    except SpaceError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _classes_arg(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"classes must be an integer from 1 to 100000, got {text!r}")
    return int(text)


def cmd_count(args: argparse.Namespace) -> int:
    """FLOPs (report convention) and parameters of one genome."""
    space = resolve_space(args.space)
    genome = Genome.parse(args.genome, args.attention)
    shape = args.input or space.input or InputShape()
    from nas.complexity import count

    result = count(genome, space, shape=shape, classes=args.classes)
    built = genome.rounded(space.model.divisor)
    row = {
        "genome": genome.notation, "attention": genome.attention, "flops": result.flops,
        "params": result.params, "input": str(shape), "classes": args.classes,
        "built": built.notation, "space": space.path, "in_space": _in_space(space, genome),
    }
    if args.json:
        emit_json(row)
        return 0
    from nas.console import print_fields

    print_fields({
        "genome": genome.notation + ("" if built == genome else f"  (built as {built.notation})"),
        "attention": genome.attention,
        "input": f"{shape}, {args.classes} classes",
        "FLOPs": format_flops(result.flops),
        "params": f"{result.params:,}",
    })
    return 0


def _in_space(space: Space, genome: Genome) -> bool:
    try:
        space.check(genome)
    except NasError:
        return False
    return True


def cmd_space(args: argparse.Namespace) -> int:
    """Validate a space and summarise it: size, smallest and largest genome."""
    space = resolve_space(args.file)
    shape = args.input or space.input or InputShape()
    from nas.complexity import count


    def extreme(largest: bool) -> dict[str, Any]:
        rows = [(count(g, space, shape=shape, classes=args.classes), g)
                for g in space.extremes(largest)]
        result, genome = (max if largest else min)(rows, key=lambda r: (r[0].flops, r[0].params))
        return {"genome": genome.notation, "attention": genome.attention,
                "flops": result.flops, "params": result.params}

    summary = {
        "space": space.path, "name": space.name, "genomes": space.size(),
        "stages": [space.min_stages, len(space.stages)], "attention": list(space.attention),
        "input": str(shape), "classes": args.classes,
        "smallest": extreme(False), "largest": extreme(True),
    }
    if args.json:
        emit_json(summary)
        return 0
    from nas.console import print_fields

    def describe(row: dict[str, Any]) -> str:
        return (f"{row['genome']} {row['attention']}: {format_flops(row['flops'])} FLOPs, "
                f"{row['params']:,} params")

    print_fields({
        "space": f"{space.path} ({space.name})",
        "genomes": f"{summary['genomes']:,}",
        "stages": f"{space.min_stages} to {len(space.stages)}",
        "attention": ", ".join(space.attention),
        "input": f"{shape}, {args.classes} classes",
        "smallest": describe(summary["smallest"]),
        "largest": describe(summary["largest"]),
    })
    return 0


def _data_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by every command that trains: space, data, size, storage, device."""
    p.add_argument("--space", default=DEFAULT_SPACE)
    p.add_argument("--data", default="digits",
                   help="digits (default), an ImageFolder path, or a torchvision set name")
    p.add_argument("--image-size", default=None, help="HxW (default: the space's, else the data's)")
    p.add_argument("--storage", default=None, help="database URL (default sqlite:///studies.db)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true")


def open_context(args: argparse.Namespace, view: Any, space: Space | None = None,
                 check: Callable[[Any], None] | None = None) -> Any:
    """Space, store and shared training context (data, views, teacher) from the flags."""
    from nas.data import parse_image_size
    from nas.pipeline import prepare, resolve_device
    from nas.store import Store

    space = space or resolve_space(args.space)
    size = parse_image_size(args.image_size) if args.image_size else None
    device = resolve_device(args.device, args.threads)
    store = Store(args.storage)
    return prepare(space, args.data, store, size=size, device=device, progress=view.data,
                   teacher_callbacks=(view.epochs("teacher"),), check=check)


def teacher_fields(ctx: Any) -> dict[str, Any]:
    teacher = ctx.teacher
    return {"fingerprint": teacher.fingerprint, "kind": ctx.space.teacher.kind,
            "val_accuracy": teacher.val_accuracy, "test_accuracy": teacher.test_accuracy,
            "cached": teacher.cached}


def cmd_teacher(args: argparse.Namespace) -> int:
    """Train the space's teacher once (or find it in the cache) and show its accuracy."""
    from nas.console import ProgressView, print_fields

    with ProgressView(args.quiet or args.json) as view:
        ctx = open_context(args, view)
    row = {**teacher_fields(ctx), "data": ctx.data.name, "input": str(ctx.shape),
           "storage": ctx.store.url}
    if args.json:
        emit_json(row)
        return 0
    spec = ctx.space.teacher
    print_fields({
        "teacher": f"{spec.genome} {spec.attention}" if spec.kind == "genome" else spec.model,
        "fingerprint": ctx.teacher.fingerprint + ("  (cached)" if ctx.teacher.cached else ""),
        "data": f"{ctx.data.name}, {len(ctx.data.classes)} classes, input {ctx.shape}",
        "val accuracy": f"{ctx.teacher.val_accuracy:.2%}",
        "test accuracy": f"{ctx.teacher.test_accuracy:.2%}",
    })
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Distil one student from the (cached) teacher and report its accuracy."""
    from nas.console import ProgressView, print_fields
    from nas.pipeline import train_genome

    genome = Genome.parse(args.genome, args.attention)
    if args.epochs is not None and args.epochs < 1:
        raise SpaceError(f"--epochs must be at least 1, got {args.epochs}")
    with ProgressView(args.quiet or args.json) as view:
        ctx = open_context(args, view)
        ctx.space.check(genome, strict=False)
        run = train_genome(ctx, genome, epochs=args.epochs, seed=args.seed,
                           callbacks=(view.epochs(genome.notation),))
    row = {"genome": run.genome, "attention": run.attention, "flops": run.flops,
           "params": run.params, "val_accuracy": run.val_accuracy,
           "test_accuracy": run.test_accuracy, "seed": run.seed, "status": run.status,
           "best_epoch": run.best_epoch, "epochs": run.recipe["train"]["epochs"], "run_id": run.id,
           "input": str(ctx.shape), "data": ctx.data.name, "teacher": teacher_fields(ctx),
           "seconds": run.duration_s}
    if args.json:
        emit_json(row)
        return 0 if run.status == "ok" else 1
    print_fields({
        "genome": f"{run.genome} {run.attention}",
        "status": run.status if run.status == "ok" else f"[red]{run.status}: loss became NaN",
        "FLOPs": format_flops(run.flops), "params": f"{run.params:,}",
        "val accuracy": _percent(run.val_accuracy) + f"  (best epoch {run.best_epoch})",
        "test accuracy": _percent(run.test_accuracy),
        "teacher": f"val {ctx.teacher.val_accuracy:.2%}, test {ctx.teacher.test_accuracy:.2%}",
        "stored": f"run {run.id} in {ctx.store.url}",
    })
    return 0 if run.status == "ok" else 1


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def cmd_search(args: argparse.Namespace) -> int:
    """Budgeted multi-objective search; continues the study when run again."""
    import time

    from nas.config import parse_duration, parse_quantity
    from nas.console import ProgressView
    from nas.search import Budget, SearchSettings, default_study_name, open_study, run_search

    started = time.monotonic()
    space = resolve_space(args.space)
    conf = space.search
    budget = Budget(
        flops=_parsed(args.budget_flops or conf.budget_flops, "--budget-flops", parse_quantity),
        params=_parsed(args.budget_params or conf.budget_params, "--budget-params",
                       parse_quantity))
    timeout = _parsed(args.timeout or conf.timeout, "--timeout", parse_duration)
    trials = args.trials if args.trials is not None else conf.trials
    epochs = args.epochs if args.epochs is not None else conf.epochs
    if trials < 1 or epochs < 1:
        raise SpaceError(f"--trials and --epochs must be at least 1, got {trials} and {epochs}")
    with ProgressView(args.quiet or args.json) as view:
        ctx = open_context(args, view, space, check=lambda data: _check_budget(space, data, budget))
        name = args.study or default_study_name(space, args.data, ctx.data.image_size, budget)
        settings = SearchSettings(study=name, trials=trials, epochs=epochs,
                                  sampler=args.sampler or conf.sampler,
                                  seed=args.seed if args.seed is not None else conf.seed,
                                  deadline=started + timeout if timeout else None, budget=budget)
        study = open_study(ctx, settings, args.data)
        view.log(f"study [bold]{name}[/] in {ctx.store.url}: teacher val "
                 f"{ctx.teacher.val_accuracy:.2%}; training {trials} genomes, {epochs} epochs each")
        tally = run_search(ctx, settings, study, on_trial=_trial_line(view, trials),
                           epoch_callbacks=lambda label: (view.epochs("trial"),))
    return _search_summary(args, ctx, name, tally, time.monotonic() - started)


def _parsed(text: str | None, flag: str, parse: Callable[[str, str], float]) -> float | None:
    """`parse(text, flag)` for a flag or space setting that may be unset."""
    return parse(text, flag) if text else None


def _check_budget(space: Space, data: Any, budget: Any) -> None:
    """Refuse a budget that not even the space's smallest genome fits, before any training."""
    from nas.complexity import count

    shape = InputShape(3, *data.image_size)
    classes = len(data.classes)
    rows = [(count(g, space, shape=shape, classes=classes), g) for g in space.extremes(False)]
    for limit, key, name in ((budget.flops, "flops", "FLOPs"), (budget.params, "params", "params")):
        size, genome = min(rows, key=lambda row: getattr(row[0], key))
        if limit is not None and getattr(size, key) > limit:
            raise SpaceError(f"budget of {limit:,.0f} {name} is below the smallest genome of "
                             f"{space.path} at {shape}: {genome} has {getattr(size, key):,} {name}")


def _trial_line(view: Any, trials: int) -> Callable[[Any, Any], None]:
    def show(trial: Any, tally: Any) -> None:
        best = tally.best
        info = f"best {best.val_accuracy:.2%} {best.genome}" if best else "no feasible yet"
        view.update("trials", tally.trained, trials,
                    f"{info} | front {tally.front} | rejected {tally.rejected} | "
                    f"reused {tally.reused} | failed {tally.failed}", description="search")
    return show


def _search_summary(args: argparse.Namespace, ctx: Any, name: str, tally: Any,
                    seconds: float) -> int:
    best = tally.best
    row = {"study": name, "storage": ctx.store.url, "trained": tally.trained,
           "reused": tally.reused, "rejected": tally.rejected, "failed": tally.failed,
           "front_size": tally.front, "seconds": seconds, "teacher": teacher_fields(ctx),
           "best": None if best is None else best.to_json()}
    if args.json:
        emit_json(row)
        return 0
    from nas.console import print_fields

    print_fields({
        "study": f"{name}  ({ctx.store.url})",
        "this run": f"{tally.trained} trained, {tally.reused} reused, {tally.rejected} rejected "
                    f"over budget, {tally.failed} failed, {seconds:.0f} s",
        "front": f"{tally.front} genomes",
        "best": "-" if best is None else
                f"{best.genome} {best.attention}: val {best.val_accuracy:.2%}, "
                f"{format_flops(best.flops or 0)} FLOPs (trial {best.trial})",
        "next": f"nas report --study {name}",
    })
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRY:
        register(commands)
    return parser


def _register_count(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("count", help="FLOPs and params of a genome")
    p.add_argument("genome", help='stages in the report\'s notation, e.g. "[2,8,6,1,0] [2,16,4,1,0]"')
    p.add_argument("--attention", choices=ATTENTIONS, default=None)
    p.add_argument("--space", default=DEFAULT_SPACE)
    p.add_argument("--input", type=_input_arg, default=None, help="CxHxW (default 3x185x160)")
    p.add_argument("--classes", type=_classes_arg, default=2)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_count)


def _register_space(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("space", help="validate and summarise a search space")
    p.add_argument("file")
    p.add_argument("--input", type=_input_arg, default=None, help="CxHxW (default 3x185x160)")
    p.add_argument("--classes", type=_classes_arg, default=2)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_space)


def _register_teacher(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("teacher", help="train (or reuse) the space's teacher")
    _data_flags(p)
    p.set_defaults(func=cmd_teacher)


def _register_train(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="distil one student from the teacher")
    p.add_argument("genome", help='e.g. "[2,8,6,1,0] [2,16,4,1,0]"')
    p.add_argument("--attention", choices=ATTENTIONS, default=None)
    p.add_argument("--epochs", type=int, default=None, help="default: the space's [train] epochs")
    p.add_argument("--seed", type=int, default=0)
    _data_flags(p)
    p.set_defaults(func=cmd_train)


def _register_search(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("search", help="budgeted Pareto search, stored in the database")
    p.add_argument("--budget-flops", default=None, help="e.g. 0.2G (report convention)")
    p.add_argument("--budget-params", default=None, help="e.g. 50K")
    p.add_argument("--trials", type=int, default=None, help="genomes to train (default: space)")
    p.add_argument("--timeout", default=None, help="start no trial after e.g. 30m")
    p.add_argument("--study", default=None, help="default: derived from space, data and budgets")
    p.add_argument("--sampler", choices=("tpe", "nsga2", "random"), default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: space)")
    _data_flags(p)
    p.set_defaults(func=cmd_search)


def _quantity(text: str | None, flag: str) -> float | None:
    """A --budget-* flag with an optional K/M/G suffix, or None."""
    from nas.config import parse_quantity

    return None if text is None else parse_quantity(text, flag)


def cmd_report(args: argparse.Namespace) -> int:
    """The feasible Pareto front of a study with its teacher and totals, or the list of studies."""
    from nas import render, report

    budget_flops = _quantity(args.budget_flops, "--budget-flops")
    budget_params = _quantity(args.budget_params, "--budget-params")
    if args.study is None:
        studies = report.list_studies(args.storage)
        if len(studies) > 1:
            return _print_studies(args, studies)
    summary = report.load_study_summary(args.storage, args.study, budget_flops, budget_params)
    if args.plot:
        render.plot_front(summary, Path(args.plot))
    if args.json:
        emit_json({**report.summary_json(summary), "plot": args.plot})
        return 0
    from nas.console import console, print_fields

    print_fields({**render.overview(summary), **({"plot": args.plot} if args.plot else {})})
    console.print(render.front_table(summary))
    return 0


def _print_studies(args: argparse.Namespace, studies: list[Any]) -> int:
    """The study list `nas report` shows when the storage holds several and none was named."""
    from dataclasses import asdict

    from nas import render, report
    from nas.store import normalize_url

    storage = report.safe_url(normalize_url(args.storage))
    if args.json:
        emit_json({"storage": storage, "studies": [asdict(s) for s in studies]})
        return 0
    from nas.console import console

    console.print(render.studies_table(studies, storage))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a self-contained checkpoint (and ONNX) of the best or a chosen trial."""
    from nas import export, report
    from nas.store import Store

    if args.retrain_epochs is not None and args.retrain_epochs < 1:
        raise SpaceError(f"--retrain-epochs must be at least 1, got {args.retrain_epochs}")
    data = report.read_study(args.storage, args.study)
    row = export.choose_trial(data, args.which)
    store = Store(args.storage)
    run = trial_run = export.trial_run(store, row)
    if args.retrain_epochs:
        run = _retrain(args, data, store, trial_run)
    checkpoint = export.checkpoint_from_run(
        run, row.trial, retrained_from=trial_run if run is not trial_run else None)
    out = export.save_checkpoint(checkpoint, Path(args.out))
    onnx = export.export_onnx(export.restore(checkpoint), Path(args.onnx), checkpoint) if args.onnx else None
    if not args.quiet:
        _print_export(checkpoint, out, onnx)
    return 0


def _retrain(args: argparse.Namespace, data: Any, store: Any, run: Any) -> Any:
    """Train the trial's genome again in the study's context; warn if the teacher changed."""
    from nas import export
    from nas.console import ProgressView, err_console
    from nas.pipeline import resolve_device

    space = resolve_space(str(data.info.get("space", DEFAULT_SPACE)))
    with ProgressView(args.quiet) as view:
        new = export.retrain(space, data, store, run, args.retrain_epochs, resolve_device(args.device),
                             progress=view.data, callbacks=(view.epochs(f"{run.genome} {run.attention}"),))
    expected = (data.info.get("teacher") or {}).get("fingerprint")
    if expected and new.teacher_fingerprint != expected and not args.quiet:
        err_console.print(f"note: the teacher ({new.teacher_fingerprint}) is not the study's ({expected})")
    return new


def _print_export(checkpoint: dict[str, Any], out: Path, onnx: Path | None) -> None:
    from nas.console import print_fields

    metrics, retrained = checkpoint["metrics"], checkpoint["retrained"]
    print_fields({
        "trial": f"{checkpoint['trial']} of study {checkpoint['study']}",
        "genome": f"{checkpoint['genome']} {checkpoint['attention']}",
        "FLOPs": format_flops(checkpoint["flops"]), "params": f"{checkpoint['params']:,}",
        "val accuracy": f"{_percent(metrics['val_accuracy'])}  (best epoch {metrics['best_epoch']})",
        "test accuracy": _percent(metrics["test_accuracy"]),
        **({"retrained": f"{retrained['epochs']} epoch(s) as run {checkpoint['run_id']}; the accuracies "
                         f"above are this run's (the trial's test accuracy was "
                         f"{_percent(retrained['trial_test_accuracy'])})"} if retrained else {}),
        "checkpoint": str(out), **({"onnx": str(onnx)} if onnx else {}),
    })


def _register_report(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("report", help="Pareto front, teacher and totals of a study")
    p.add_argument("--study", default=None, help="study name (default: the storage's only study)")
    p.add_argument("--storage", default=None, help="database URL (default sqlite:///studies.db)")
    p.add_argument("--budget-flops", default=None, help="a tighter FLOPs budget, e.g. 0.2G")
    p.add_argument("--budget-params", default=None, help="a tighter params budget, e.g. 50K")
    p.add_argument("--plot", default=None, metavar="FILE", help="write a PNG of FLOPs vs accuracy")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)


def _register_export(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("export", help="checkpoint (and ONNX) of the best or a chosen trial")
    p.add_argument("which", nargs="?", default="best", metavar="best|TRIAL",
                   help="`best` (default: highest val accuracy within budget) or a trial number")
    p.add_argument("--study", default=None, help="study name (default: the storage's only study)")
    p.add_argument("--storage", default=None, help="database URL (default sqlite:///studies.db)")
    p.add_argument("--out", default="student.pt", help="checkpoint file (load it with nas.load)")
    p.add_argument("--onnx", default=None, metavar="FILE", help="also write an ONNX model")
    p.add_argument("--retrain-epochs", type=int, default=None, metavar="N",
                   help="train the genome again for N epochs and export that run")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_export)


REGISTRY: list[Callable[[argparse._SubParsersAction], None]] = [
    _register_count, _register_space, _register_teacher, _register_train, _register_search,
    _register_report, _register_export,
]


def quiet_libraries() -> None:
    """Optuna's INFO lines and experimental warnings would drown our own output."""
    import warnings

    warnings.filterwarnings("ignore", module="optuna")
    warnings.filterwarnings("ignore", message=".*Heartbeat.*")
    try:
        import optuna
    except ImportError:
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("search", "report", "export", "ablate"):
        quiet_libraries()
    try:
        return args.func(args)
    except NasError as error:
        if args.debug:
            traceback.print_exc()
        print(f"nas: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
