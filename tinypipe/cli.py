"""The `tinypipe` command line: parse, dispatch, and end through the one exit-code map (core.errors.exit_code).

Results (tables, JSON) go to stdout; progress, warnings and errors to stderr. Every command behaves the same
under a terminal and in a pipe; only the look of the progress (a live display or plain lines) differs.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import signal
import sys
from pathlib import Path

from tinypipe import __version__
from tinypipe.core.errors import EXIT_BUG, EXIT_USER_ERROR, CheckFailed, UserError, exit_code

from tinypipe.engines import ENGINES, all_stage_names

STAGES = all_stage_names()  # in pipeline order; an engine's own stages only run for that engine

EPILOG = """\
examples:
  tinypipe init myproject                   a commented project.yaml that runs as is
  tinypipe run pipelines/gesture            train, quantize, build and run the example on QEMU
  tinypipe run pipelines/gesture --json     the same, one JSON document on stdout
  tinypipe status pipelines/gesture --why   which stages would rerun, and the key that changed
  tinypipe run . --until quantize           stop after a stage
  tinypipe report . --html report.html      results table and charts as one HTML file
  tinypipe export . --crate model           the model as a no_std crate and a C library for your firmware
  tinypipe boards                           boards you can target

Every stage's output is cached by content in .tinypipe/store next to project.yaml; a second run with
nothing changed does nothing. The config keys are documented in docs/config.md.

exit codes: 0 ok · 1 a budget or check failed · 2 a mistake in the input or a missing tool (the message
says how to fix it) · 3 a bug in tinypipe (please report it with the output) · 130 interrupted
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=30)


def _common() -> argparse.ArgumentParser:
    """-q/-v/--color for every command; given before or after the command name."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="print only results, warnings and errors")
    group.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="also print each stage's log lines and the cached stages")
    group.add_argument("--color", choices=("auto", "always", "never"), default=argparse.SUPPRESS,
                       help="colour in the output (default auto: on a terminal, unless NO_COLOR is set)")
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common()
    p = argparse.ArgumentParser(
        prog="tinypipe", parents=[common], formatter_class=_Formatter, epilog=EPILOG,
        description="Declarative, reproducible TinyML firmware builds: project.yaml -> trained int8 model -> "
                    "Rust no_std firmware -> run and measured on an emulated or real board.")
    p.add_argument("--version", action="version", version=f"tinypipe {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str, description: str, examples: list[tuple[str, str]],
                project: str | None = None, json_what: str | None = None) -> argparse.ArgumentParser:
        """A subcommand; `project`: "cells" (DIR, --board, --engine) or "dir" (DIR only); `json_what`: what
        --json prints, if the command has it."""
        width = max(len(cmd) for cmd, _ in examples) + 3
        epilog = "examples:\n" + "\n".join(f"  {cmd:<{width}}{what}" for cmd, what in examples)
        c = sub.add_parser(name, help=summary, description=description, epilog=epilog, parents=[common],
                           formatter_class=_Formatter)
        if project:
            c.add_argument("dir", nargs="?", default=".", metavar="DIR",
                           help="directory holding project.yaml, or the YAML file itself (default: .)")
        if project == "cells":
            c.add_argument("--board", help="only the matrix cells for this board (`tinypipe boards` lists them)")
            c.add_argument("--engine", choices=list(ENGINES), help="only the matrix cells for this engine")
        if json_what:
            c.add_argument("--json", action="store_true", help=f"print {json_what} as one JSON document on stdout")
        return c

    run = command("run", "run the pipeline: every stage whose inputs changed, and nothing else",
                  "Run every stage whose inputs changed since its output was stored (train, quantize, codegen, "
                  "build, run on the board...), then print the results table on stdout. Progress goes to "
                  "stderr; each stage's own output (TensorFlow, compilers) goes to the log.txt in its store "
                  "entry, or to .tinypipe/logs/ when it fails.",
                  [("tinypipe run pipelines/gesture", "everything that changed"),
                   ("tinypipe run . --until quantize", "stop after quantize"),
                   ("tinypipe run . -j 2 --engine tflm", "two stages at once, only the tflm cells"),
                   ("tinypipe run . --json 2>/dev/null", "results as JSON for a script")],
                   project="cells", json_what="the stages run and the results")
    run.add_argument("--until", metavar="STAGE", type=_stage_name,
                     help=f"stop after this stage ({' '.join(STAGES)})")
    run.add_argument("-j", "--jobs", type=_positive_int, default=1, metavar="N",
                     help="N job slots shared by the stages (each in its own worker process) and the compilers "
                          "they start, as with make -j (a jobserver); default 1")
    run.add_argument("--no-wait", action="store_true",
                     help="if another run is writing this project, exit 2 at once instead of waiting for it")
    run.add_argument("--locked", action="store_true",
                     help="a CI gate: exit 1, building nothing, unless config, tools and inputs match tinypipe.lock")
    run.add_argument("--paranoid", action="store_true",
                     help="hash every cached entry before trusting it (default: only entries whose files' sizes or "
                          "mtimes changed)")
    _remote_cache_option(run)
    run.add_argument("--executor", choices=("local", "dask"), default="local",
                     help="where stages run: worker processes here (default), or the workers of a dask cluster, "
                          "exchanging artifacts through the remote cache")
    run.add_argument("--scheduler", metavar="ADDR", default=None,
                     help="with --executor dask: the dask scheduler, e.g. tcp://10.0.0.5:8786 "
                          "(default $TINYPIPE_SCHEDULER)")

    status = command("status", "show which stages are cached and which would run",
                     "For every stage of every matrix cell: cached, stale (its inputs changed) or new. Runs "
                     "nothing. With --check it is a CI gate: exit 1 when any stage would run.",
                     [("tinypipe status .", "one line per stage"),
                      ("tinypipe status . --why", "and the config key or input that changed"),
                      ("tinypipe status . --check", "exit 1 if a run would do anything")],
                      project="cells", json_what="the same data")
    status.add_argument("--why", action="store_true", help="name the input or config key that changed")
    status.add_argument("--check", action="store_true", help="exit 1 when any stage would run (0: all cached)")
    _remote_cache_option(status)

    command("plan", "show the DAG: stages, shared nodes, and what would run",
                   "Print the stages of every matrix cell as one graph: a stage the cells share (training, "
                   "say) is one node, run once.",
                   [("tinypipe plan pipelines/gesture-matrix", "nodes, their needs and their state")],
                   project="cells", json_what="the same data")

    report = command("report", "print the results table of the last run from the store (runs nothing)",
                     "Print the results of the current config from the store: accuracy, bit-exactness, "
                     "instructions, flash and RAM per cell. Runs nothing.",
                     [("tinypipe report .", "the table"),
                      ("tinypipe report . --html report.html", "and an HTML report with charts")],
                      project="cells", json_what="the same data")
    report.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report with charts")

    verify = command("verify", "rebuild from scratch and check every output is what tinypipe.lock records",
                     "Rebuild every stage in a temporary store (nothing cached is used) and compare each output "
                     "with the hash tinypipe.lock records: exit 1 when a stage is not reproducible.",
                     [("tinypipe verify .", "up to build"), ("tinypipe verify . --until quantize", "the model only")],
                     project="cells", json_what="the verdicts")
    verify.add_argument("--until", metavar="STAGE", default="build", type=_stage_name,
                        help="last stage to rebuild (default: build, the ELF; `--until run` also reruns the firmware)")

    release = command("release", "build a release bundle: firmware, sources, lock, model card, report, checksums",
                      "Run the whole pipeline (every variant) held to tinypipe.lock, as `run --locked` does, then "
                      "write DIR/dist/<name>-<version>/ (`version:` in project.yaml): per variant the ELF, .bin, "
                      ".hex and the generated sources; the lock, a model card, the HTML report and SHA256SUMS; and "
                      "DIR/dist/<name>-<version>.tar.gz. The bundle's bytes do not depend on the directory, the "
                      "time (archive times are SOURCE_DATE_EPOCH, else 0), the user or the host. Refuses (exit 1) "
                      "when the lock no longer matches the project, or a check or budget fails.",
                      [("tinypipe release pipelines/gesture", "dist/gesture-0.1.0/ and its .tar.gz"),
                       ("tinypipe release . --out /tmp/rel", "/tmp/rel/<name>-<version>/ instead")],
                      project="dir", json_what="where the bundle is, its files and the results")
    release.add_argument("--out", metavar="OUT", help="write the bundle into OUT instead of DIR/dist")
    release.add_argument("-j", "--jobs", type=_positive_int, default=1, metavar="N",
                         help="run up to N independent stages at once (default 1)")
    _remote_cache_option(release)

    show = command("show", "print where a stage's output is in the store (e.g. the generated model.rs)",
                   "Print the store entry of a stage for each matrix cell, and the files in it.",
                   [("tinypipe show .", "the codegen entry: model.rs"),
                    ("tinypipe show . build", "the ELF and its sizes")], project="cells", json_what="the same data")
    show.add_argument("stage", nargs="?", default="codegen", type=_stage_name,
                      help="stage whose entry to show (default: codegen)")

    command("data", "show the dataset the data stage made: windows per class and split, recordings (runs nothing)",
            "Print what the data stage stored for the current config: windows per class in each split and, for "
            "CSV or WAV recordings, the recordings of each split, their windows and their length in samples; the "
            "declared input scaling; and one example training window per class as a sparkline per axis (--json: "
            "three examples per class as numbers). Runs nothing: after a config or recording change, "
            "`tinypipe run DIR --until data` first.",
            [("tinypipe data pipelines/motion", "a table per split"),
             ("tinypipe data . --json", "the same as JSON, every recording listed")],
            project="cells", json_what="the same data")

    gc = command("gc", "delete store entries the lock file no longer references",
                 "Delete the project store's entries that tinypipe.lock no longer references. With --cache, "
                 "prune the user-level cache instead ($TINYPIPE_CACHE, else $XDG_CACHE_HOME/tinypipe: shared "
                 "Rust sysroots, TFLM libraries and objects) of what no run has used for --days days; a later "
                 "run rebuilds what it needs. With --remote, prune the team's remote cache of the entries "
                 "nobody has pushed or pulled for --days days (keeping those DIR's tinypipe.lock references) "
                 "and of uploads interrupted a day or more ago.",
                 [("tinypipe gc . --dry-run", "what would be deleted"),
                  ("tinypipe gc --cache --days 14", "prune the shared cache"),
                  ("tinypipe gc . --remote --days 60 --dry-run", "what pruning the project's remote would delete"),
                  ("tinypipe gc --remote s3://team/tinypipe", "prune a remote cache by URL")],
                  project="dir", json_what="what was (or would be) deleted")
    gc.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    gc.add_argument("--cache", action="store_true", help="prune the user-level cache instead of DIR's store")
    gc.add_argument("--remote", nargs="?", const="", metavar="URL",
                    help="prune a remote cache instead: URL, or without one the project's (cache.remote, "
                         "$TINYPIPE_REMOTE_CACHE)")
    gc.add_argument("--days", type=float, default=30.0, metavar="N",
                    help="with --cache or --remote: delete what has not been used for N days (default 30; 0: "
                         "everything not locked)")

    boards = command("boards", "list the boards tinypipe can target",
                     "List the board registry: core, target triple, memory, and whether it runs on QEMU or "
                     "through a debug probe.",
                     [("tinypipe boards", "the table"), ("tinypipe boards stm32f4-discovery", "one board in full")],
                     json_what="the same data")
    boards.add_argument("name", nargs="?", help="show one board in full: memory map, clock, LEDs, sensor, notes")

    flash = command("flash", "build the firmware for a real board and flash it through a debug probe",
                    "Run the pipeline up to `build` for the board's matrix cell, then program its ELF with "
                    "pyocd and reset the board (it starts its application).",
                    [("tinypipe flash . --board stm32f4-discovery", "build and flash")], project="dir")
    flash.add_argument("--board", required=True, help="the board on the probe (`tinypipe boards`)")
    flash.add_argument("--engine", choices=list(ENGINES), help="the engine's cell, if the matrix has several")

    export = command("export", "write the model as a no_std Rust crate and a C static library for your own firmware",
                     "Run the pipeline up to the model's generated code and the target's toolchain, then write one "
                     "no_std Rust crate per variant to OUT (OUT/<variant>/ when the project has several): the "
                     "generated model, the kernels it calls, a small API (`Model::new(&mut arena)`, "
                     "`invoke(&input)`, shapes, scales, ARENA_BYTES) and, in c/, the same as a static library "
                     "with a header. A model trained on scaled samples or computed features also gets its front "
                     "end (`FrontEnd::input(&raw)`, `tp_input_from_raw`): raw int16 sensor windows in, the "
                     "model's input out, the same integers as tinypipe's own firmware. Only the native engine's "
                     "variants can be exported yet.",
                     [("tinypipe export . --crate model-crate", "one crate per variant"),
                      ("tinypipe export . --crate m --variant mps2-an386-native", "one variant's crate")],
                     project="dir", json_what="what was exported")
    export.add_argument("--crate", dest="crate_dir", required=True, metavar="OUT",
                        help="the directory to write (new, empty, or a previous export, which is replaced)")
    export.add_argument("--variant", metavar="V", help="export only this variant (`tinypipe status` lists them)")

    command("doctor", "check toolchains, emulator and probes; say how to fix what is missing",
                     "Check every tool tinypipe uses (rustc, cargo, arm gcc, QEMU, bindgen, Python packages) "
                     "and the debug probes attached; exit 2 when something required is missing.",
                     [("tinypipe doctor", "a line per tool, with the fix for what is missing")],
                     json_what="the same data")

    init = command("init", "create a new project directory with a commented project.yaml",
                   "Create DIR with a commented project.yaml that runs as is: a gesture classifier on generated "
                   "data, or with --data one for your recordings (a folder per class of CSV or WAV files): the "
                   "classes, sensor columns, sample rate (a time column, the WAV header), a window that fits the "
                   "shortest recording and, for whole-number CSV values, a standardisation of the raw counts, "
                   "each commented with where it came from. DIR must not hold a project.yaml yet.",
                   [("tinypipe init myproject", "then: tinypipe run myproject"),
                    ("tinypipe init myproject --data recordings", "a project for your recordings")])
    init.add_argument("dir", metavar="DIR", help="the new project's directory (created if missing)")
    init.add_argument("--data", metavar="FOLDER",
                      help="your recordings: FOLDER/<class>/*.csv or *.wav (or FOLDER/train/ and FOLDER/test/)")
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be 1 or more")
    return value


def _stage_name(text: str) -> str:
    if text in STAGES:
        return text
    close = difflib.get_close_matches(text, STAGES, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise argparse.ArgumentTypeError(f"no stage {text!r}: {hint}stages: {', '.join(STAGES)}")


# --- running a command ------------------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: handled like Ctrl-C (workers killed, partial outputs discarded, terminal restored)."""


def _on_signal(signum, frame):
    raise Terminated(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.quiet = getattr(args, "quiet", False)
    args.verbose = getattr(args, "verbose", False)
    args.color = getattr(args, "color", "auto")
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        _error(f"error: {exc.message}", exc.hint)
        return exit_code(exc)
    except CheckFailed as exc:
        _error(f"check failed: {exc}")
        return exit_code(exc)
    except KeyboardInterrupt as exc:
        _error("interrupted" if not isinstance(exc, Terminated) else f"terminated ({exc})")
        return exit_code(exc)


def _error(message: str, hint: str | None = None) -> None:
    sys.stderr.write(message + "\n")
    if hint:
        sys.stderr.write(f"  hint: {hint}\n")
    sys.stderr.flush()


def _console(args, stderr: bool = False):
    """A rich console for stdout (results) or stderr (progress), honouring --color and NO_COLOR.

    Off a terminal the width is 100 columns (CI logs); the results table fits 80 anyway."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    kwargs = {"stderr": stderr, "width": None if tty else 100, "highlight": False}
    if args.color == "always":
        kwargs["force_terminal"] = True
    elif args.color == "never" or os.environ.get("NO_COLOR"):
        kwargs["no_color"] = True
        kwargs["color_system"] = None
    return Console(**kwargs)


def _remote_cache_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--remote-cache", metavar="URL", default=None,
                         help="a cache shared with a team: pull each stage's entry from URL before building it, "
                              "push what is built (over $TINYPIPE_REMOTE_CACHE and `cache.remote`; '' for none)")


def _print_json(value) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def _pipeline(args, until: str | None = None):
    from tinypipe.engine.pipeline import Pipeline

    return Pipeline(Path(args.dir), board=getattr(args, "board", None), engine=getattr(args, "engine", None),
                    until=until, paranoid=getattr(args, "paranoid", False),
                    remote_cache=getattr(args, "remote_cache", None))


def _reporter(args):
    """A live display on a terminal (unless -q), plain lines elsewhere; a context manager either way."""
    import contextlib

    from tinypipe.report.progress import PlainReporter

    if sys.stderr.isatty() and not args.quiet:
        from tinypipe.report.progress import RichReporter

        return RichReporter(_console(args, stderr=True), verbose=args.verbose)
    return contextlib.nullcontext(PlainReporter(quiet=args.quiet, verbose=args.verbose))


# --- commands ------------------------------------------------------------------------------------------------


def cmd_run(args) -> int:
    from tinypipe.report.results import run_document, render_results

    pipeline = _pipeline(args, until=args.until)
    with _reporter(args) as reporter:
        outcome = pipeline.run(reporter, jobs=args.jobs, wait=not args.no_wait, locked=args.locked,
                               make_executor=_executor(args, pipeline))
    doc = run_document(pipeline, outcome)
    if args.json:
        _print_json(doc)
    elif args.until is None or args.until == "run":
        render_results(_console(args), doc["results"])
    _record_history(pipeline, doc)
    ran = sum(1 for r in outcome.records if r.status == "ran")
    cached = sum(1 for r in outcome.records if r.status == "cached")
    pulled = sum(1 for r in outcome.records if r.status == "pulled")
    if not args.quiet:
        remote = f", {pulled} pulled from the remote cache" if pipeline.remote is not None else ""
        pushed = f", {outcome.pushed} pushed" if outcome.pushed else ""
        sys.stderr.write(f"{ran} stage(s) ran, {cached} cached{remote}{pushed}\n")
    return _report_outcome(outcome, doc["checks"] + outcome.lock_drift)


def _executor(args, pipeline):
    """None for the default (the pipeline starts local workers when something needs to run), or a factory of
    the dask executor: connecting to the cluster waits until a stage actually needs it."""
    if args.executor != "dask":
        if args.scheduler:
            raise UserError("--scheduler is for --executor dask", "add --executor dask, or leave out --scheduler")
        return None
    from tinypipe.engine.dask_executor import DaskExecutor, scheduler_address

    address = scheduler_address(args.scheduler, dict(os.environ))
    return lambda: DaskExecutor(address, pipeline.remote)


def _record_history(pipeline, doc) -> None:
    """Keep this run's results and what it did with each stage, for the HTML report's "change since the previous
    run" and its stage table."""
    from tinypipe.report import history

    history.record(pipeline.state_dir, doc["results"], stages=doc["stages"])


def _report_outcome(outcome, checks: list[str]) -> int:
    """Print each failed stage and failed check; the exit code of the worst of them."""
    code = 0
    for rec in outcome.failed():
        err = rec.error
        where = f"{rec.stage} ({', '.join(rec.variants)})"
        if isinstance(err, UserError):
            _error(f"error in {where}: {err.message}", err.hint)
        elif isinstance(err, CheckFailed):
            _error(f"check failed in {where}: {err}")
        else:
            detail = getattr(err, "__traceback_text__", "") or ""
            log = getattr(err, "log", None)
            _error(f"internal error in {where}: {err}\n{detail}".rstrip(),
                   "this is a tinypipe bug; please report it with this output"
                   + (f" and the stage's log {log}" if log else ""))
        code = max(code, exit_code(err))  # the worst: a bug (3) over a user error (2) over a check (1)
    skipped = [r for r in outcome.records if r.status == "skipped"]
    if skipped and outcome.failed():
        _error(f"{len(skipped)} stage(s) not run because a stage they need failed")
    for failure in checks:
        _error(f"check failed: {failure}")
    if checks and code == 0:
        code = exit_code(CheckFailed())
    return code


def cmd_status(args) -> int:
    from tinypipe.engine.why import status

    pipeline = _pipeline(args)
    statuses = status(pipeline.graph, pipeline.lock, pipeline.remote)
    would_run = [s for s in statuses if s.state != "cached"]
    if args.json:
        _print_json([s.__dict__ for s in statuses])
    else:
        current = None
        for s in statuses:
            if s.variant != current:
                current = s.variant
                print(f"{s.variant}:")
            print(f"  {s.stage:<10} {s.state}")
            if args.why:
                for reason in s.reasons:
                    print(f"      because {reason}")
    if args.check and would_run:
        _error(f"check failed: {len(would_run)} stage(s) would run", f"run `tinypipe run {shlex.quote(args.dir)}`")
        return exit_code(CheckFailed())
    return 0


def cmd_plan(args) -> int:
    pipeline = _pipeline(args)
    nodes = []
    for node in pipeline.graph.nodes:
        state = "cached" if node.meta() is not None else "will run"
        label = node.label()  # the store key's prefix, as the lock and `.tinypipe/store/` name it
        nodes.append({"task": label, "id": label, "key": node.key(), "stage": node.name, "variants": node.variants,
                      "needs": [d.label() for d in node.needs], "state": state,
                      "store": "user cache" if node.stage.shared else "project"})
    if args.json:
        _print_json({"nodes": nodes})
        return 0
    for n in nodes:
        shared = f" (shared by {len(n['variants'])} variants)" if len(n["variants"]) > 1 else f" ({n['variants'][0]})"
        print(f"{n['id']:<24} {n['state']:<9}{shared}  needs: {', '.join(n['needs']) or '-'}")
    return 0


def cmd_report(args) -> int:
    from tinypipe.report.results import render_results, result_rows

    pipeline = _pipeline(args)
    rows = result_rows(pipeline)
    if args.json:
        _print_json({"results": rows})
    else:
        render_results(_console(args), rows)
    _note_not_run(pipeline, args.dir)
    if args.html:
        from tinypipe.core.fs import atomic_write_text
        from tinypipe.report import history
        from tinypipe.report.html import html_rows, render_html, stage_times

        page = render_html(pipeline.config["name"], html_rows(pipeline, rows),
                           stage_times(pipeline, history.last_run(pipeline.state_dir)),
                           previous=history.previous(pipeline.state_dir, rows))
        atomic_write_text(Path(args.html), page)
        sys.stderr.write(f"wrote {args.html}\n")
    return 0


def _note_not_run(pipeline, directory: str) -> None:
    """On stderr, when some stages have no store entry for the project as it is now (it was edited since the
    last run, or never ran): the report's empty cells say nothing of why."""
    not_run: dict[str, None] = {}
    variants: set[str] = set()
    for node in pipeline.graph.nodes:
        if node.meta() is None:
            not_run[node.name] = None
            variants.update(node.variants)
    if variants:
        where = shlex.quote(directory)
        _error(f"note: {len(variants)} of {len(pipeline.variants)} variant(s) have stages that have not run for the "
               f"project as it is now ({', '.join(not_run)}): their cells show —",
               f"`tinypipe run {where}` runs them; `tinypipe status {where} --why` says what changed")


def cmd_verify(args) -> int:
    from tinypipe.engine.verify import verify

    with _reporter(args) as reporter:
        verdicts = verify(Path(args.dir), board=args.board, engine=args.engine, until=args.until,
                          reporter=reporter)
    if args.json:
        _print_json([{**v.__dict__, "same": v.same} for v in verdicts])
    else:
        for v in verdicts:
            mark = "identical" if v.same else f"DIFFERS (lock {v.locked[:12]}…, rebuilt {str(v.rebuilt)[:12]}…)"
            print(f"{v.variant:<24} {v.stage:<10} {mark}")
    caveats = {v.stage: v.caveat for v in verdicts if v.caveat}
    if caveats and not args.json:
        for caveat in dict.fromkeys(caveats.values()):
            print(f"note ({', '.join(s for s, c in caveats.items() if c == caveat)}): {caveat}")
    bad = [v for v in verdicts if not v.same]
    if bad:
        unpinned = sorted({v.stage for v in bad if v.caveat})
        why = (f" ({', '.join(unpinned)}: see the note; expected on a machine of another kind than the one that "
               "wrote the lock, a bug on the same one)") if unpinned else ""
        _error(f"check failed: {len(bad)} stage output(s) are not reproducible{why}")
        return exit_code(CheckFailed())
    if not args.quiet:
        sys.stderr.write(f"all {len(verdicts)} stage outputs rebuilt bit for bit\n")
    return 0


def cmd_release(args) -> int:
    from tinypipe.release.bundle import release_blockers, release_name, run_for_release, write_release
    from tinypipe.report.results import run_document

    pipeline = _pipeline(args)
    with _reporter(args) as reporter:
        outcome = run_for_release(pipeline, reporter, jobs=args.jobs)
    doc = run_document(pipeline, outcome)
    _record_history(pipeline, doc)
    blockers = release_blockers(doc["results"], doc["checks"] + outcome.lock_drift)
    if outcome.failed() or blockers:
        code = _report_outcome(outcome, blockers)
        what = f"{len(outcome.failed())} stage(s) failed" if outcome.failed() else f"{len(blockers)} check(s) failed"
        _error(f"error: cannot release {release_name(pipeline)}: {what}; nothing was written",
               f"fix what failed, then run `tinypipe release {shlex.quote(args.dir)}` again")
        return code
    made = write_release(pipeline, doc["results"], Path(args.out) if args.out else None)
    if args.json:
        _print_json({"release": str(made.directory), "tarball": str(made.tarball),
                     "tarball_sha256": made.tarball_sha256, "files": made.files, "results": doc["results"]})
    else:
        print(f"{made.directory}/  ({len(made.files)} files, checked by SHA256SUMS)")
        print(f"{made.tarball}  sha256 {made.tarball_sha256}")
    return 0


def cmd_show(args) -> int:
    from tinypipe.engine.out import stable_paths

    pipeline = _pipeline(args)
    shown = []
    for v in pipeline.variants:
        node = pipeline.graph.by_variant[v.name].get(args.stage)
        if node is None:
            raise UserError(f"no stage {args.stage!r} in the {v.engine} pipeline",
                            f"stages: {', '.join(pipeline.graph.by_variant[v.name])}")
        if node.meta() is None:
            raise UserError(f"{args.stage} ({v.name}) is not built for the current config",
                            f"run `tinypipe run {shlex.quote(args.dir)}` first")
        entry = node.entry_dir()
        files = sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file())
        stable = [str(p) for p in stable_paths(pipeline.state_dir, v.name, args.stage, entry)]
        shown.append({"variant": v.name, "stage": args.stage, "id": node.label(), "key": node.key(),
                      "entry": str(entry), "files": files,
                      "stable": stable})
    if args.json:
        _print_json(shown)
        return 0
    for item in shown:
        print(f"{item['variant']} {item['id']}: {item['entry']}")
        for path in item["stable"]:
            print(f"  stable path: {path}")
        for name in item["files"][:40]:
            print(f"  {name}")
        if len(item["files"]) > 40:
            print(f"  … and {len(item['files']) - 40} more")
    return 0


def cmd_data(args) -> int:
    pipeline = _pipeline(args)
    shown: dict[str, dict] = {}
    for v in pipeline.variants:
        node = pipeline.graph.by_variant[v.name]["data"]
        if node.meta() is None:
            raise UserError(f"data ({v.name}) is not built for the current config",
                            f"run `tinypipe run {shlex.quote(args.dir)} --until data` first")
        entry = node.entry_dir()
        if str(entry) in shown:  # one data entry serves every cell of the matrix
            shown[str(entry)]["variants"].append(v.name)
            continue
        from tinypipe.stages.data import describe

        shown[str(entry)] = {"variants": [v.name], **describe(entry, v, node.meta().get("summary") or {})}
    if args.json:
        _print_json(list(shown.values()))
        return 0
    for item in shown.values():
        where = f" {item['path']}" if item["path"] else ""
        print(f"data ({', '.join(item['variants'])}): {item['source']}{where}, windows of {item['window']} samples "
              f"x {len(item['axes'] or [])} axes\n  {item['entry']}")
        classes = item["classes"]
        width = max([len(c) for c in classes] + [7])
        header = "  split " + "".join(f"{c:>{width + 1}}" for c in classes) + f"{'total':>{width + 1}}"
        if item["recordings"] is not None:
            header += "  recordings  samples min/median/max"
        print(header)
        for split in ("train", "val", "test"):
            counts = (item["windows"] or {}).get(split, {})
            line = f"  {split:<5} " + "".join(f"{counts.get(c, 0):>{width + 1}}" for c in classes)
            line += f"{sum(counts.values()):>{width + 1}}"
            if item["recordings"] is not None:
                recs = item["recordings"].get(split, {})
                lengths = sorted(r["samples"] for r in recs.values() if r["samples"] is not None)
                spread = (f"{lengths[0]}/{lengths[len(lengths) // 2]}/{lengths[-1]}" if lengths else "-")
                line += f"  {len(recs):>10}  {spread}"
            print(line)
        if item["dropped"]:
            print(f"  {item['dropped']} recording(s) shorter than the window were dropped")
        if item["scaling"]:
            scaling = item["scaling"]
            print(f"  input scaling ({scaling['how']}): (raw - offset) * scale, offset "
                  + ", ".join(f"{v:.6g}" for v in scaling["offset"]) + "; scale "
                  + ", ".join(f"{v:.6g}" for v in scaling["scale"]))
        print("  example training window per class (raw; each axis scaled to its range over the classes):")
        for line in _trace_lines(item["traces"], item["axes"] or []):
            print(f"  {line}")
    return 0


SPARKS = "▁▂▃▄▅▆▇█"
ASCII_SPARKS = "_.,-=+*#"  # where stdout cannot encode the blocks (LANG=C in a pipe)
SPARK_WIDTH = 64  # columns of a sparkline; longer windows are averaged down to it


def _spark_levels() -> str:
    try:
        SPARKS.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return ASCII_SPARKS
    return SPARKS


def _trace_lines(traces: dict[str, list], axes: list[str]) -> list[str]:
    """One sparkline per class and axis of each class's first example window."""
    levels = _spark_levels()
    firsts = {name: windows[0] for name, windows in traces.items() if windows}
    if not firsts:
        return []
    width = max(len(name) for name in firsts) + 1 + max(len(a) for a in axes)
    lines = []
    for axis, axis_name in enumerate(axes):
        values = [sample[axis] for window in firsts.values() for sample in window]
        low, high = min(values), max(values)
        for name, window in firsts.items():
            column = [sample[axis] for sample in window]
            step = max(1, -(-len(column) // SPARK_WIDTH))
            means = [sum(column[i:i + step]) / len(column[i:i + step]) for i in range(0, len(column), step)]
            spark = "".join(levels[min(7, int(8 * (v - low) / (high - low)))] if high > low else levels[0]
                            for v in means)
            lines.append(f"{name + ' ' + axis_name:<{width}}  {spark}  {min(column):.4g} .. {max(column):.4g}")
    return lines


def cmd_gc(args) -> int:
    if args.cache and args.remote is not None:
        raise UserError("gc: --cache and --remote prune different caches", "run them one at a time")
    if args.cache:
        return _gc_cache(args)
    if args.remote is not None:
        return _gc_remote(args)
    from tinypipe.engine.pipeline import Pipeline

    pipeline = Pipeline(Path(args.dir))
    live = pipeline.lock.keys()
    store = pipeline.store
    swept = 0 if args.dry_run else store.sweep()
    dead = [k for k in store.keys() if k not in live]
    entries = [{"key": key, "stage": store.meta(key).get("stage")} for key in dead]
    if not args.dry_run:
        for key in dead:
            store.remove(key)
    if args.json:
        _print_json({"dry_run": args.dry_run, "entries": entries, "interrupted_temporaries": swept})
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    if args.dry_run:
        for e in entries:
            print(f"would delete {e['key'][:16]}… ({e['stage']})")
    print(f"{verb} {len(dead)} unreferenced entr{'y' if len(dead) == 1 else 'ies'}"
          + (f" and {swept} interrupted temporaries" if swept else ""))
    return 0


def _gc_cache(args) -> int:
    from tinypipe.core.paths import user_cache_dir
    from tinypipe.engine.cache_gc import prune_user_cache

    if args.days < 0:
        raise UserError(f"--days {args.days:g}: must be 0 or more", "give the idle time in days, e.g. --days 14")
    cache = user_cache_dir()
    pruned = prune_user_cache(cache, args.days, dry_run=args.dry_run)
    if args.json:
        _print_json({"cache": str(cache), "dry_run": args.dry_run, "bytes": pruned.bytes,
                     "entries": [{"kind": what, "name": name, "idle_days": round(idle, 1)}
                                 for what, name, idle in pruned.entries]})
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    if args.dry_run:
        for what, name, idle in pruned.entries:
            print(f"would delete {what} {name}… (unused for {idle:.0f} days)")
    print(f"{cache}: {verb} {len(pruned.entries)} entr{'y' if len(pruned.entries) == 1 else 'ies'} unused for "
          f"{args.days:g}+ days ({pruned.bytes / 1e6:.1f} MB)")
    return 0


def _gc_remote(args) -> int:
    from tinypipe.engine.remote import RemoteCache, RemoteError
    from tinypipe.engine.remote_gc import prune_remote

    if args.days < 0:
        raise UserError(f"--days {args.days:g}: must be 0 or more", "give the idle time in days, e.g. --days 60")
    project = Path(args.dir)
    keep: frozenset[str] = frozenset()
    cache = RemoteCache(args.remote) if args.remote else None
    if (project / "project.yaml").is_file() or project.is_file():
        pipeline = _pipeline(args)
        if cache is None:
            cache = pipeline.remote
        keep = pipeline.lock.keys()
    if cache is None:
        raise UserError("gc --remote: no remote cache to prune (no URL given, and no cache.remote or "
                        "$TINYPIPE_REMOTE_CACHE for this project)",
                        "give its URL: `tinypipe gc --remote s3://bucket/prefix` (or sftp://…, a path)")
    if not cache.push_enabled and cache.protocol in ("http", "https"):
        raise UserError(f"gc --remote {cache.name}: an http(s) cache is read only; nothing can be deleted through it",
                        "prune the directory, sftp:// or s3:// URL the builders push to")
    try:
        pruned = prune_remote(cache, args.days, keep, dry_run=args.dry_run)
    except RemoteError as exc:
        raise UserError(f"gc --remote {cache.name}: {exc}",
                        "check the URL and its credentials: the ones `tinypipe run --remote-cache` uses") from None
    if args.json:
        _print_json({"remote": cache.name, "dry_run": args.dry_run, "days": args.days, "deleted": pruned.deleted,
                     "bytes": pruned.deleted_bytes, "kept": pruned.kept, "kept_bytes": pruned.kept_bytes,
                     "kept_locked": pruned.kept_locked})
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    for entry in pruned.deleted if args.dry_run else []:
        what = entry["stage"] or entry["why"]
        name = entry["key"] if len(entry["key"]) <= 16 else entry["key"][:16] + "…"
        print(f"would delete {name} ({what}, unused for {entry['idle_days']:g} days, "
              f"{entry['bytes'] / 1e6:.1f} MB)")
    locked = f", {pruned.kept_locked} of them in {args.dir}'s tinypipe.lock" if keep else ""
    print(f"{cache.name}: {verb} {len(pruned.deleted)} entr{'y' if len(pruned.deleted) == 1 else 'ies'} "
          f"({pruned.deleted_bytes / 1e6:.1f} MB) unused for {args.days:g}+ days or left by interrupted uploads; "
          f"kept {pruned.kept} ({pruned.kept_bytes / 1e6:.1f} MB){locked}")
    return 0


def _runs_on(b) -> str:
    if not b.buildable:
        return "not buildable yet (see notes)"
    if b.qemu_machine:
        return f"QEMU -M {b.qemu_machine}"
    probe = f"probe: pyocd {b.pyocd_target}" + (" (CMSIS pack)" if b.pyocd_pack else "")
    return f"{probe}; QEMU -M {b.emulator.qemu_machine}" if b.emulator else probe


def _board_json(b) -> dict:
    return {"name": b.name, "description": b.description, "core": b.core, "cpu": b.cpu, "triple": b.triple,
            "features": list(b.features), "fpu": b.fpu, "flash": {"origin": b.flash.origin, "bytes": b.flash.size},
            "ram": {"origin": b.ram.origin, "bytes": b.ram.size}, "stack_bytes": b.stack_bytes,
            "clock_hz": b.clock_hz, "qemu_machine": b.qemu_machine or (b.emulator.qemu_machine if b.emulator else None),
            "pyocd_target": b.pyocd_target, "buildable": b.buildable, "runs_on": _runs_on(b),
            "notes": list(b.notes)}


def cmd_boards(args) -> int:
    from tinypipe.config.boards import BOARDS, DEFAULT_BOARD

    if args.name and args.name not in BOARDS:
        close = difflib.get_close_matches(args.name, BOARDS, n=1)
        raise UserError(f"unknown board {args.name!r}" + (f": did you mean {close[0]!r}?" if close else ""),
                        f"known boards: {', '.join(BOARDS)}")
    if args.json:
        chosen = [BOARDS[args.name]] if args.name else list(BOARDS.values())
        _print_json([{**_board_json(b), "default": b.name == DEFAULT_BOARD} for b in chosen])
        return 0
    if args.name:
        _board_details(BOARDS[args.name])
        return 0
    print(f"{'board':<18} {'core':<11} {'triple':<26} {'flash':>7} {'RAM':>7}  runs on")
    for b in BOARDS.values():
        default = "  (default)" if b.name == DEFAULT_BOARD else ""
        print(f"{b.name:<18} {b.core:<11} {b.triple:<26} {b.flash.size // 1024:>6}K {b.ram.size // 1024:>6}K"
              f"  {_runs_on(b)}{default}")
    if not args.quiet:
        print("\n`tinypipe boards NAME` shows a board's memory map, clock, LEDs, sensor wiring and notes.")
    return 0


def _board_details(b) -> None:
    print(f"{b.name}: {b.description}")
    print(f"  core        {b.core} (rustc -C target-cpu={b.cpu}, {b.triple}), features: "
          f"{', '.join(b.features) or 'none'}, FPU: {b.fpu or 'none (soft float)'}")
    print(f"  flash       0x{b.flash.origin:08X}, {b.flash.size // 1024} KB")
    print(f"  RAM         0x{b.ram.origin:08X}, {b.ram.size // 1024} KB (stack reservation {b.stack_bytes // 1024} KB)")
    if b.clock_hz:
        print(f"  clock       {b.clock_hz / 1e6:g} MHz")
    print(f"  runs on     {_runs_on(b)}")
    if b.emulator:
        print(f"  SysTick     {b.emulator.systick_hz / 1e6:g} MHz under QEMU {b.emulator.qemu_machine} "
              f"(-icount shift=0: {1e9 / b.emulator.systick_hz:g} instructions per tick)")
    if b.leds:
        print("  LEDs        " + ", ".join(f"{led.name} {led.colour} P{led.port}{led.pin}" if len(led.port) == 1
                                          else f"{led.name} {led.colour} {led.port}.{led.pin}" for led in b.leds))
    if b.sensor:
        pins = ", ".join(f"{signal} {pin}" for signal, pin in b.sensor.pins)
        print(f"  sensor      {b.sensor.part} ({b.sensor.kind}) on {b.sensor.bus}: {pins}")
    if b.support:
        print(f"  application firmware-template/src/board/{b.support}.rs")
    for note in b.notes:
        print(f"  note        {note}")


def cmd_flash(args) -> int:
    from tinypipe.runners import probe

    pipeline = _pipeline(args, until="build")
    if len(pipeline.variants) != 1:
        raise UserError(f"--board {args.board} matches {len(pipeline.variants)} cells",
                        "choose one with --engine")
    board = pipeline.variants[0].board
    if board.pyocd_target is None:
        raise UserError(f"board {board.name} is emulated only: there is nothing to flash",
                        "run it with `tinypipe run`; `tinypipe boards` marks the boards a probe can flash")
    with _reporter(args) as reporter:
        outcome = pipeline.run(reporter)
    for rec in outcome.failed():
        raise rec.error
    elf = pipeline.graph.by_variant[pipeline.variants[0].name]["build"].entry_dir() / "firmware.elf"
    unique_id = probe.flash_elf(elf, board)
    print(f"flashed {elf} to {board.name} on probe {unique_id}; the board is running")
    return 0


def cmd_export(args) -> int:
    from tinypipe.release.crate import export_crates

    with _reporter(args) as reporter:
        exported = export_crates(Path(args.dir), Path(args.crate_dir), variant=args.variant, reporter=reporter)
    if args.json:
        _print_json({"crates": exported})
        return 0
    for crate in exported:
        print(f"{crate['variant']}: crate {crate['package']} {crate['version']} in {crate['path']}")
        for kind in ("c_library", "c_header"):
            if kind in crate["files"]:
                print(f"  {kind.replace('_', ' ')}: {crate['files'][kind]}")
        raw = crate.get("raw_input")
        if raw:
            made = f"{raw['features']} features" if raw["features"] else "each sample scaled"
            print(f"  front end: raw int16 windows of {raw['window']} x {raw['axes']} -> {made} -> the model's input "
                  "(FrontEnd, tp_input_from_raw)")
    return 0


def cmd_doctor(args) -> int:
    from tinypipe.doctor import run_doctor

    return run_doctor(as_json=args.json)


def cmd_init(args) -> int:
    from tinypipe.scaffold import init_from_data, init_project

    where = shlex.quote(args.dir)
    if args.data is None:
        path = init_project(Path(args.dir))
        print(f"created {path}\nnext: tinypipe run {where}")
        return 0
    path, found = init_from_data(Path(args.dir), args.data)
    classes = ", ".join(f"{name} ({n})" for name, n in found.classes.items())
    print(f"created {path} from {args.data}: {found.source} recordings, classes {classes}")
    if found.source == "csv":
        ignored = f" ({', '.join(found.ignored)} ignored)" if found.ignored else ""
        print(f"  axes {', '.join(found.axes)}{ignored}; {found.rate_hz:g} Hz ({found.rate_from}); window "
              f"{found.window} of the shortest recording's {found.shortest} samples"
              + ("; whole-number values: raw counts, standardised" if found.integers else ""))
    else:
        print(f"  {found.rate_hz:g} Hz ({found.rate_from}); window {found.window} samples, MFCC features")
    if found.rate_from == "not in the recordings":
        print(f"  check sensor.sample_rate_hz in {path}: no time column gave the rate, 50 Hz is a guess")
    print(f"next: tinypipe data {where}   (what the data stage reads)\n      tinypipe run {where}")
    return 0


COMMANDS = {
    "run": cmd_run, "verify": cmd_verify, "show": cmd_show, "status": cmd_status, "plan": cmd_plan,
    "report": cmd_report, "release": cmd_release, "gc": cmd_gc, "boards": cmd_boards, "flash": cmd_flash,
    "doctor": cmd_doctor, "init": cmd_init, "data": cmd_data, "export": cmd_export,
}


def entry() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError as exc:  # the reader went away: no traceback, and no second error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = exit_code(exc)
    except Exception:  # noqa: BLE001 - the last line of defence: a bug
        import traceback

        traceback.print_exc()
        sys.stderr.write("internal error: this is a tinypipe bug; please report it with the output above\n")
        code = EXIT_BUG
    sys.exit(code)


if __name__ == "__main__":
    entry()
