"""`nas report` and `nas export`: a study's front, totals and plot; checkpoints of its trials."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.cli.common import (
    JSON_HELP,
    STORAGE_HELP,
    budget_flags,
    budget_texts,
    emit_json,
    parsed,
    resolve_space,
    threads_arg,
)
from nas.errors import ReportError, SpaceError
from nas.model.objectives import plot_axes
from nas.model.recipe import MAX_EPOCHS
from nas.model.space import DEFAULT_SPACE, SUBSET_KEY, VIEWS_KEY, Space
from nas.study.formats import DEFAULT_FORMAT, FORMATS, format_help
from nas.units import count_text, parse_duration, percent, plural


def cmd_report(args: argparse.Namespace) -> int:
    """The feasible Pareto front (or every trial) of a study with its teacher and totals, in the
    format asked for; or the list of studies when the storage holds several and none was named."""
    from nas.study.report import plot, tables
    from nas.study.report.summary import list_studies, load_study_summary
    from nas.study.search.budget import parse_limits

    fmt = _format(args)
    limits = parse_limits(budget_texts(args))
    if args.plot:
        plot.check_plot_path(Path(args.plot))
    if args.study is None:
        studies = list_studies(args.storage)
        if len(studies) > 1:
            return _print_studies(args, studies, fmt)
    summary = load_study_summary(args.storage, args.study, limits)
    if args.plot:
        plot.plot_front(summary, Path(args.plot), args.plot_axes)
    kind = FORMATS[fmt].kind
    if kind == "json":
        emit_json({**getattr(tables, FORMATS[fmt].writer)(summary, args.all), "plot": args.plot})
    elif kind == "text":
        sys.stdout.write(getattr(tables, FORMATS[fmt].writer)(summary, args.all))
    else:
        _print_table(args, summary)
    return 0


def _format(args: argparse.Namespace) -> str:
    """--format, with --json as its alias for json; the two cannot disagree."""
    if args.json and args.format not in (None, "json"):
        raise ReportError(f"--json is --format json; it cannot go with --format {args.format}")
    args.json = args.json or args.format == "json"
    return "json" if args.json else args.format or DEFAULT_FORMAT


def _print_table(args: argparse.Namespace, summary: Any) -> None:
    """Overview lines, then the table; columns the terminal cannot hold are named, not squeezed."""
    from nas.cli.console import console, print_fields
    from nas.study.report import overview, tables
    from nas.study.width import hidden_note

    print_fields({**overview.overview(summary), **({"plot": args.plot} if args.plot else {})})
    table, hidden = tables.rich_table(summary, args.all, console)
    console.print(table)
    if hidden:
        console.print(hidden_note(hidden), style="dim", highlight=False)


def _print_studies(args: argparse.Namespace, studies: list[Any], fmt: str) -> int:
    """The study list `nas report` shows when the storage holds several and none was named."""
    from dataclasses import asdict

    from nas.store.database import normalize_url, safe_url
    from nas.study.report import overview

    storage = safe_url(normalize_url(args.storage))
    if FORMATS[fmt].kind not in ("terminal", "json"):
        raise ReportError(f"--format {fmt} shows one study; {storage} holds {len(studies)} "
                          f"({', '.join(s.name for s in studies)}): pick one with --study")
    if args.json:
        emit_json({"storage": storage, "studies": [asdict(s) for s in studies]})
        return 0
    from nas.cli.console import console

    console.print(overview.studies_table(studies, storage))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a self-contained checkpoint (and ONNX) of the best or a chosen trial. The flags
    and the target files are checked before torch is imported: a refusal takes no time."""
    if args.retrain_epochs is not None and not 1 <= args.retrain_epochs <= MAX_EPOCHS:
        raise SpaceError(f"--retrain-epochs must be between 1 and {MAX_EPOCHS}, got "
                         f"{str(args.retrain_epochs)[:30]}")
    seconds = parsed(args.retrain_time, "--retrain-time", parse_duration)
    _check_targets(args)
    from nas.store.runs import Store
    from nas.study.report import export
    from nas.study.report.summary import read_study

    if args.onnx:
        export.require_onnx(Path(args.onnx))
    data = read_study(args.storage, args.study)
    row = export.choose_trial(data, args.which)
    retrain = args.retrain or args.retrain_epochs is not None or seconds is not None
    store = Store(args.storage, readonly=not retrain)
    run = trial_run = export.trial_run(store, row)
    if retrain:
        run = _retrain(args, data, store, trial_run, seconds)
    checkpoint = export.checkpoint_from_run(
        run, row.trial, retrained_from=trial_run if run is not trial_run else None)
    out = export.save_checkpoint(checkpoint, Path(args.out))
    onnx = export.export_onnx(export.restore(checkpoint), Path(args.onnx), checkpoint) if args.onnx else None
    if args.json:
        emit_json(_export_json(checkpoint, out, onnx))
    elif not args.quiet:
        _print_export(checkpoint, out, onnx)
    return 0


def _check_targets(args: argparse.Namespace) -> None:
    """Refuse, before anything is read or trained, an --out or --onnx file that export may not
    replace (a database, a foreign file without --force), and the same file for both."""
    from nas.study.report.export_target import check_target

    database = _sqlite_file(args.storage)
    check_target(Path(args.out), "checkpoint", force=args.force, database=database)
    if args.onnx:
        if Path(args.onnx).expanduser().absolute() == Path(args.out).expanduser().absolute():
            raise ReportError(f"--onnx {args.onnx}: is also --out; give two file names")
        check_target(Path(args.onnx), "onnx", force=args.force, database=database)


def _sqlite_file(storage: str | None) -> Path | None:
    """The database file a SQLite URL names (None for a server, or a URL export will refuse)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from nas.errors import StoreError
    from nas.store.database import normalize_url

    try:
        parsed = make_url(normalize_url(storage))
    except (StoreError, ArgumentError):
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def _export_json(checkpoint: dict[str, Any], out: Path, onnx: Path | None) -> dict[str, Any]:
    """What `nas export --json` prints: the checkpoint's description, without the weights."""
    keys = ("study", "trial", "run_id", "genome", "attention", "flops", "params", "classes", "input",
            "mean", "std", "pixel_scale", "interpolation", "antialias", "metrics", "retrained")
    return {**{key: checkpoint.get(key) for key in keys}, "checkpoint": str(out),
            "onnx": str(onnx) if onnx else None}


def _retrain(args: argparse.Namespace, data: Any, store: Any, run: Any, seconds: float | None
             ) -> Any:
    """Train the trial's genome again in the study's context and recipe (its --set keys), for
    --retrain-epochs or the space's whole schedule (--retrain-time: for that wall clock), on the
    space's training subset; warn if the teacher changed."""
    from nas.cli.console import ProgressView, err_console
    from nas.study.report import export
    from nas.study.search import identity
    from nas.train.experiment import resolve_device

    space = identity.searched_recipe(resolve_space(str(data.info.get("space", DEFAULT_SPACE))),
                                     data.info.get("fingerprint"), data.info.get("sets"))
    with ProgressView(args.quiet) as view:
        device = resolve_device(args.device, args.threads)
        new = export.retrain(space, data, store, run, args.retrain_epochs, device, seconds=seconds,
                             progress=view.data, callbacks=(view.epochs(f"{run.genome} {run.attention}"),))
    expected = (data.info.get("teacher") or {}).get("fingerprint")
    if expected and new.teacher_fingerprint != expected and not args.quiet:
        err_console.print(_teacher_note(new.teacher_fingerprint, expected, space,
                                        data.info.get("fingerprint")))
    return new


def _teacher_note(made: str, expected: str, space: Space, searched: Any) -> str:
    """Why the final model's teacher is not the study's: the training images (subset and views)
    it is made for when they differ from the trials' (a teacher is made for its student's
    images), else only that it is not."""
    train = space.train
    stored = searched if isinstance(searched, dict) else {}
    final = _images(train.train_per_class, train.augment.views)
    trials = _images(stored.get(SUBSET_KEY, train.train_per_class),
                     stored.get(VIEWS_KEY, train.augment.views))
    if trials != final:
        return (f"note: the final model's teacher ({made}) is made for {final}, the study's "
                f"({expected}) for its trials' {trials}")
    return f"note: the teacher ({made}) is not the study's ({expected})"


def _images(per_class: int, views: Sequence[str]) -> str:
    """'1,000 images per class and the views hflip+mixup'."""
    images = f"{per_class:,} images per class" if per_class else "the whole training set"
    return images + (f" and the views {', '.join(views)}" if views else "")


def _print_export(checkpoint: dict[str, Any], out: Path, onnx: Path | None) -> None:
    from nas.cli.console import print_fields

    metrics, retrained = checkpoint["metrics"], checkpoint["retrained"]
    print_fields({
        "trial": f"{checkpoint['trial']} of study {checkpoint['study']}",
        "genome": f"{checkpoint['genome']} {checkpoint['attention']}",
        "FLOPs": count_text(checkpoint["flops"], exact=True),
        "params": count_text(checkpoint["params"], exact=True),
        "val accuracy": f"{percent(metrics['val_accuracy'])}  (best epoch {metrics['best_epoch']})",
        "test accuracy": percent(metrics["test_accuracy"]),
        **({"retrained": f"{plural(retrained['epochs'], 'epoch')}{_clock(retrained)} as run "
                         f"{checkpoint['run_id']}; "
                         f"the accuracies above are this run's (the trial's test accuracy was "
                         f"{percent(retrained['trial_test_accuracy'])})"} if retrained else
           {"schedule": f"{checkpoint['recipe']['train']['epochs']}-epoch search trial, not final "
                        f"(--retrain: the whole schedule)"}),
        "checkpoint": str(out), **({"onnx": str(onnx)} if onnx else {}),
    })


def _clock(retrained: dict[str, Any]) -> str:
    """' in 540 s of wall clock' for a retraining on a wall-clock schedule, else ''."""
    seconds = retrained.get("seconds")
    return f" in {seconds:.0f} s of wall clock" if seconds else ""


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete a study: Optuna's trials and the `nas_` runs, weights, claims and worker numbers."""
    from nas.study.report.delete import delete_study

    deleted = delete_study(args.storage, args.study)
    if args.json:
        emit_json(deleted)
        return 0
    from nas.cli.console import print_fields

    print_fields({"deleted": f"study {deleted['study']} in {deleted['storage']}",
                  "optuna study": "deleted" if deleted["optuna_study"] else "none (nas rows only)",
                  "runs": f"{deleted['runs']:,} with {count_text(deleted['weight_bytes'])}B of weights",
                  **({"kept": f"{deleted['kept_runs']:,} runs of the ablation of the same name "
                              f"(`nas delete {args.study}` again deletes them)"}
                     if deleted["kept_runs"] else {})})
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("report", help="Pareto front, teacher and totals of a study")
    p.add_argument("--study", default=None, help="study name (default: the storage's only study)")
    p.add_argument("--storage", default=None, help=STORAGE_HELP)
    budget_flags(p, tighter=True)
    p.add_argument("--format", default=None, choices=tuple(FORMATS),
                   help=format_help("the front, or every trial with --all"))
    p.add_argument("--all", action="store_true",
                   help="list every trial (outcome, on the front or not), not only the front")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="write a plot; the extension names the format: .pdf, .svg or .png (200 dpi)")
    p.add_argument("--plot-axes", default="flops-accuracy", choices=plot_axes(),
                   help="the plot's x-y objectives; the third one colours the points")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.set_defaults(func=cmd_report)
    p = commands.add_parser("export", help="checkpoint (and ONNX) of the best or a chosen trial")
    p.add_argument("which", nargs="?", default="best", metavar="best|TRIAL",
                   help="`best` (default: highest val accuracy within budget) or a trial number")
    p.add_argument("--study", default=None, help="study name (default: the storage's only study)")
    p.add_argument("--storage", default=None, help=STORAGE_HELP)
    p.add_argument("--out", default="student.pt", help="checkpoint file (load it with nas.load)")
    p.add_argument("--onnx", default=None, metavar="FILE", help="also write an ONNX model")
    p.add_argument("--force", action="store_true",
                   help="replace an --out or --onnx file that export did not write "
                        "(never a SQLite database)")
    p.add_argument("--retrain", action="store_true",
                   help="train the genome again with the space's whole recipe ([train] epochs and "
                        "training subset, with a progress bar) and export that run")
    p.add_argument("--retrain-epochs", type=int, default=None, metavar="N",
                   help="as --retrain, for N epochs")
    p.add_argument("--retrain-time", default=None, metavar="DURATION",
                   help="as --retrain, for this wall clock (9m, 600s, 4m30s), the cosine schedule spread "
                        "over it (--retrain-epochs: a cap)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where --retrain(-epochs) trains")
    p.add_argument("--threads", type=threads_arg, default=None,
                   help="CPU threads for --retrain(-epochs) (default 1)")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_export)
    p = commands.add_parser("delete", help="delete a study with its runs and weights",
                            description="Delete a study: its Optuna trials and its nas_ rows (runs, "
                                        "weights, claims). `optuna delete-study` alone leaves the "
                                        "nas_ rows and their weights behind.")
    p.add_argument("study", help="study name (`nas report` lists them)")
    p.add_argument("--storage", default=None, help=STORAGE_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_delete)
