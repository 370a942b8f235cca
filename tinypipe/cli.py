"""The `tinypipe` command line. Exit codes: 0 ok, 1 a budget or check failed, 2 user error, 3 internal bug."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinypipe import __version__
from tinypipe.core.errors import CheckFailed, UserError

EPILOG = """\
examples:
  tinypipe run pipelines/gesture            train, quantize, build and run the example on QEMU
  tinypipe run pipelines/gesture --json     the same, one JSON document on stdout
  tinypipe status pipelines/gesture --why   which stages would rerun, and the key that changed
  tinypipe run . --until quantize           stop after a stage (data train quantize reference
                                            codegen toolchain firmware build run)
  tinypipe show pipelines/gesture           where the generated Rust (model.rs) is
  tinypipe boards                           boards you can target

Every stage's output is cached by content in .tinypipe/store next to project.yaml; a second run with
nothing changed does nothing. Exit codes: 0 ok, 1 a budget or check failed, 2 a mistake in the input or a
missing tool (the message says how to fix it), 3 a bug in tinypipe (please report it with the output).
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tinypipe", description="Declarative, reproducible TinyML firmware builds: project.yaml -> "
        "trained int8 model -> Rust no_std firmware -> run and measured on an emulated or real board.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"tinypipe {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def project_cmd(name: str, help_: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_, description=help_)
        c.add_argument("dir", nargs="?", default=".", metavar="DIR",
                       help="directory holding project.yaml, or the YAML file itself (default: .)")
        c.add_argument("--board", help="only the matrix cells for this board")
        c.add_argument("--engine", choices=["native", "tflm"], help="only the matrix cells for this engine")
        return c

    run = project_cmd("run", "run the pipeline: every stage whose inputs changed, and nothing else")
    run.add_argument("--until", metavar="STAGE", help="stop after this stage")
    run.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="run up to N independent stages at once")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress stays on stderr)")

    status = project_cmd("status", "show which stages are cached and which would run")
    status.add_argument("--why", action="store_true", help="name the input or config key that changed")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    plan = project_cmd("plan", "show the DAG: stages, shared nodes, and what would run")
    plan.add_argument("--json", action="store_true")

    report = project_cmd("report", "print the results table of the last run from the store (runs nothing)")
    report.add_argument("--json", action="store_true")
    report.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report with charts")

    verify = project_cmd("verify", "rebuild from scratch in a temporary store and check every output is "
                         "bit-for-bit what tinypipe.lock records")
    verify.add_argument("--until", metavar="STAGE", default="build",
                        help="last stage to rebuild (default: build — the run log holds wall-clock times)")
    verify.add_argument("--json", action="store_true")

    show = project_cmd("show", "print where a stage's output is in the store (e.g. the generated model.rs)")
    show.add_argument("stage", nargs="?", default="codegen", help="stage whose entry to show (default: codegen)")

    gc = sub.add_parser("gc", help="delete store entries the lock file no longer references",
                        description="Delete the project store's entries that tinypipe.lock no longer references. "
                        "With --cache, prune the user-level cache instead ($TINYPIPE_CACHE, else "
                        "$XDG_CACHE_HOME/tinypipe: shared Rust sysroots, TFLM libraries and objects) of what no "
                        "run has used for --days days; a later run rebuilds what it needs.")
    gc.add_argument("dir", nargs="?", default=".", metavar="DIR")
    gc.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    gc.add_argument("--cache", action="store_true", help="prune the user-level cache instead of DIR's store")
    gc.add_argument("--days", type=float, default=30.0, metavar="N",
                    help="with --cache: delete what has not been used for N days (default 30; 0: everything)")

    boards = sub.add_parser("boards", help="list the boards tinypipe can target")
    boards.add_argument("name", nargs="?", help="show one board in full: memory map, clock, LEDs, sensor, notes")

    flash = sub.add_parser("flash", help="build the firmware for a real board and flash it through a debug probe",
                           description="Run the pipeline up to `build` for the board's matrix cell, then "
                           "program its ELF with pyocd and reset the board (it starts its application).")
    flash.add_argument("dir", nargs="?", default=".", metavar="DIR")
    flash.add_argument("--board", required=True, help="the board on the probe (`tinypipe boards`)")
    flash.add_argument("--engine", choices=["native", "tflm"], help="the engine's cell, if the matrix has several")
    sub.add_parser("doctor", help="check toolchains, emulator and probes; say how to fix what is missing")

    init = sub.add_parser("init", help="create a new project directory with a commented project.yaml")
    init.add_argument("dir", metavar="DIR")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        _error(f"error: {exc.message}", exc.hint)
        return 2
    except CheckFailed as exc:
        _error(f"check failed: {exc}")
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _error(message: str, hint: str | None = None) -> None:
    sys.stderr.write(message + "\n")
    if hint:
        sys.stderr.write(f"  hint: {hint}\n")


def _console():
    from rich.console import Console

    # in a pipe or CI log rich would assume 80 columns and squeeze the results table
    return Console(stderr=True, width=None if sys.stderr.isatty() else 120)


# --- commands ------------------------------------------------------------------------------------------------


def cmd_run(args) -> int:
    from tinypipe.engine.pipeline import Pipeline
    from tinypipe.report.progress import PlainReporter
    from tinypipe.report.results import budget_failures

    pipeline = Pipeline(Path(args.dir), board=args.board, engine=args.engine, until=args.until)
    interactive = sys.stderr.isatty()
    console = _console() if interactive or not args.json else None  # rich only where it shows something
    if interactive:
        from tinypipe.report.progress import RichReporter

        with RichReporter(console) as reporter:
            outcome = pipeline.run(reporter, jobs=args.jobs)
    else:
        outcome = pipeline.run(PlainReporter(), jobs=args.jobs)

    rows = pipeline.results()
    failures = []
    for row in rows:
        failures.extend(budget_failures(row, pipeline.config["budgets"]))
    if args.json:
        doc = {
            "stages": [{"stage": r.stage, "variant": r.variants[0] if len(r.variants) == 1 else "+".join(r.variants),
                        "variants": r.variants, "status": r.status, "seconds": round(r.seconds, 3)}
                       for r in outcome.records],
            "results": rows,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif args.until is None or args.until == "run":
        from tinypipe.report.results import render_layers, render_table

        render_table(console, rows)
        render_layers(console, rows)
    ran = sum(1 for r in outcome.records if r.status == "ran")
    cached = sum(1 for r in outcome.records if r.status == "cached")
    sys.stderr.write(f"{ran} stage(s) ran, {cached} cached\n")

    code = 0
    for rec in outcome.failed():
        err = rec.error
        where = f"{rec.stage} ({', '.join(rec.variants)})"
        if isinstance(err, UserError):
            _error(f"error in {where}: {err.message}", err.hint)
            code = max(code, 2)
        else:
            detail = getattr(err, "__traceback_text__", "") or ""
            _error(f"internal error in {where}: {err}\n{detail}".rstrip(),
                   "this is a tinypipe bug; please report it with this output")
            code = 3
    skipped = [r for r in outcome.records if r.status == "skipped"]
    if skipped and outcome.failed():
        _error(f"{len(skipped)} stage(s) not run because a stage they need failed")
    for f in failures:
        _error(f"check failed: {f}")
    if failures and code == 0:
        code = 1
    return code


def cmd_status(args) -> int:
    from tinypipe.engine.pipeline import Pipeline
    from tinypipe.engine.why import status

    pipeline = Pipeline(Path(args.dir), board=args.board, engine=args.engine)
    statuses = status(pipeline.graph, pipeline.lock)
    if args.json:
        sys.stdout.write(json.dumps([s.__dict__ for s in statuses], indent=2) + "\n")
        return 0
    current = None
    for s in statuses:
        if s.variant != current:
            current = s.variant
            print(f"{s.variant}:")
        print(f"  {s.stage:<10} {s.state}")
        if args.why:
            for reason in s.reasons:
                print(f"      because {reason}")
    return 0


def cmd_plan(args) -> int:
    from tinypipe.engine.pipeline import Pipeline

    pipeline = Pipeline(Path(args.dir), board=args.board, engine=args.engine)
    nodes = []
    for node in pipeline.graph.nodes:
        state = "cached" if node.meta() is not None else "will run"
        nodes.append({"task": node.task_name, "stage": node.name, "variants": node.variants,
                      "needs": [d.task_name for d in node.needs], "state": state,
                      "store": "user cache" if node.stage.shared else "project"})
    if args.json:
        sys.stdout.write(json.dumps({"nodes": nodes}, indent=2) + "\n")
        return 0
    for n in nodes:
        shared = f" (shared by {len(n['variants'])} variants)" if len(n["variants"]) > 1 else f" ({n['variants'][0]})"
        print(f"{n['task']:<22} {n['state']:<9}{shared}  needs: {', '.join(n['needs']) or '-'}")
    return 0


def cmd_report(args) -> int:
    from tinypipe.engine.pipeline import Pipeline
    from tinypipe.report.results import render_layers, render_table

    pipeline = Pipeline(Path(args.dir), board=args.board, engine=args.engine)
    rows = pipeline.results()
    if args.json:
        sys.stdout.write(json.dumps({"results": rows}, indent=2) + "\n")
    else:
        from rich.console import Console

        console = Console(width=None if sys.stdout.isatty() else 120)
        render_table(console, rows)
        render_layers(console, rows)
    if args.html:
        from tinypipe.core.fs import atomic_write_text
        from tinypipe.report.html import render_html

        stages = [{"variant": v.name, "stage": stage, "seconds": meta.get("seconds", 0.0)}
                  for v in pipeline.variants for stage, node in pipeline.graph.by_variant[v.name].items()
                  if (meta := node.meta()) is not None]
        atomic_write_text(Path(args.html), render_html(pipeline.config["name"], rows, stages))
        sys.stderr.write(f"wrote {args.html}\n")
    return 0


def cmd_verify(args) -> int:
    from tinypipe.engine.verify import verify
    from tinypipe.report.progress import PlainReporter

    verdicts = verify(Path(args.dir), board=args.board, engine=args.engine, until=args.until,
                      reporter=PlainReporter(quiet=True))
    if args.json:
        sys.stdout.write(json.dumps([{**v.__dict__, "same": v.same} for v in verdicts], indent=2) + "\n")
    else:
        for v in verdicts:
            mark = "identical" if v.same else f"DIFFERS (lock {v.locked[:12]}…, rebuilt {str(v.rebuilt)[:12]}…)"
            print(f"{v.variant:<24} {v.stage:<10} {mark}")
    bad = [v for v in verdicts if not v.same]
    if bad:
        sys.stderr.write(f"check failed: {len(bad)} stage output(s) are not reproducible\n")
        return 1
    sys.stderr.write(f"all {len(verdicts)} stage outputs rebuilt bit for bit\n")
    return 0


def cmd_show(args) -> int:
    from tinypipe.engine.pipeline import Pipeline

    pipeline = Pipeline(Path(args.dir), board=args.board, engine=args.engine)
    for v in pipeline.variants:
        node = pipeline.graph.by_variant[v.name].get(args.stage)
        if node is None:
            raise UserError(f"no stage {args.stage!r} in the {v.engine} pipeline",
                            f"stages: {', '.join(pipeline.graph.by_variant[v.name])}")
        if node.meta() is None:
            raise UserError(f"{args.stage} ({v.name}) is not built for the current config",
                            f"run `tinypipe run {args.dir}` first")
        entry = node.entry_dir()
        files = sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file())
        print(f"{v.name} {args.stage}: {entry}")
        for name in files[:40]:
            print(f"  {name}")
        if len(files) > 40:
            print(f"  … and {len(files) - 40} more")
    return 0


def cmd_gc(args) -> int:
    if args.cache:
        return _gc_cache(args)
    from tinypipe.engine.pipeline import Pipeline

    pipeline = Pipeline(Path(args.dir))
    live = {entry["key"] for stages in pipeline.lock.data["variants"].values() for entry in stages.values()}
    store = pipeline.store
    swept = 0 if args.dry_run else store.sweep()
    dead = [k for k in store.keys() if k not in live]
    for key in dead:
        if args.dry_run:
            print(f"would delete {key[:16]}… ({store.meta(key).get('stage')})")
        else:
            store.remove(key)
    verb = "would delete" if args.dry_run else "deleted"
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
    verb = "would delete" if args.dry_run else "deleted"
    if args.dry_run:
        for what, name, idle in pruned.entries:
            print(f"would delete {what} {name}… (unused for {idle:.0f} days)")
    print(f"{cache}: {verb} {len(pruned.entries)} entr{'y' if len(pruned.entries) == 1 else 'ies'} unused for "
          f"{args.days:g}+ days ({pruned.bytes / 1e6:.1f} MB)")
    return 0


def _runs_on(b) -> str:
    if not b.buildable:
        return "not buildable yet (see notes)"
    if b.qemu_machine:
        return f"QEMU -M {b.qemu_machine}"
    probe = f"probe: pyocd {b.pyocd_target}" + (" (CMSIS pack)" if b.pyocd_pack else "")
    return f"{probe}; QEMU -M {b.emulator.qemu_machine}" if b.emulator else probe


def cmd_boards(args) -> int:
    from tinypipe.config.boards import BOARDS, DEFAULT_BOARD

    if args.name:
        if args.name not in BOARDS:
            raise UserError(f"unknown board {args.name!r}", f"known boards: {', '.join(BOARDS)}")
        _board_details(BOARDS[args.name])
        return 0
    print(f"{'board':<18} {'core':<11} {'triple':<26} {'flash':>7} {'RAM':>7}  runs on")
    for b in BOARDS.values():
        default = "  (default)" if b.name == DEFAULT_BOARD else ""
        print(f"{b.name:<18} {b.core:<11} {b.triple:<26} {b.flash.size // 1024:>6}K {b.ram.size // 1024:>6}K"
              f"  {_runs_on(b)}{default}")
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
        print(f"  application firmware-template/boards/{b.support}.rs")
    for note in b.notes:
        print(f"  note        {note}")


def cmd_flash(args) -> int:
    from tinypipe.engine.pipeline import Pipeline
    from tinypipe.report.progress import PlainReporter
    from tinypipe.runners import probe

    pipeline = Pipeline(Path(args.dir), board=args.board, engine=args.engine, until="build")
    if len(pipeline.variants) != 1:
        raise UserError(f"--board {args.board} matches {len(pipeline.variants)} cells",
                        "choose one with --engine")
    board = pipeline.variants[0].board
    if board.pyocd_target is None:
        raise UserError(f"board {board.name} is emulated only: there is nothing to flash",
                        "run it with `tinypipe run`; `tinypipe boards` marks the boards a probe can flash")
    outcome = pipeline.run(PlainReporter())
    for rec in outcome.failed():
        raise rec.error
    elf = pipeline.graph.by_variant[pipeline.variants[0].name]["build"].entry_dir() / "firmware.elf"
    unique_id = probe.flash_elf(elf, board)
    print(f"flashed {elf} to {board.name} on probe {unique_id}; the board is running")
    return 0


def cmd_doctor(args) -> int:
    from tinypipe.doctor import run_doctor

    return run_doctor()


def cmd_init(args) -> int:
    from tinypipe.scaffold import init_project

    path = init_project(Path(args.dir))
    print(f"created {path}\nnext: tinypipe run {args.dir}")
    return 0


COMMANDS = {
    "run": cmd_run, "verify": cmd_verify, "show": cmd_show, "status": cmd_status, "plan": cmd_plan, "report": cmd_report, "gc": cmd_gc,
    "boards": cmd_boards, "flash": cmd_flash, "doctor": cmd_doctor, "init": cmd_init,
}


def entry() -> None:
    try:
        code = main()
    except Exception:  # noqa: BLE001 - the last line of defence: a bug, exit 3
        import traceback

        traceback.print_exc()
        sys.stderr.write("internal error: this is a tinypipe bug; please report it with the output above\n")
        code = 3
    sys.exit(code)


if __name__ == "__main__":
    entry()
