"""The ``nacrith`` command line, modelled on gzip/xz/zstd: its options and commands.

Why it looks the way it does: people already know ``zstd FILE``, ``-c``, ``-o``, ``-f``,
``-k``/``--rm``, ``-l`` and ``-t`` (here ``nacrith test``), and scripts already rely on their
conventions (input kept unless asked, no silent overwrite, a partial output never left behind,
a non-zero status on any failure).  nacrith keeps those conventions and adds what a neural
codec needs: a model choice, a thread count, and per-file speed reporting (the model is slow,
so tokens/s matters).

This module only parses, as zstd's ``zstdcli.c`` does: the options become one
:class:`~nacrith.codec.Layout` (what the archive records) and one :class:`~nacrith.api.Execution`
(threads, lanes, workers, engine: speed only), from which each command makes its
:class:`~nacrith.Codec`; the work goes to :mod:`nacrith.filejobs` (a file at a time, through
:mod:`nacrith.fileio`'s safe outputs) and :mod:`nacrith.benchcli`.  Every
:class:`~nacrith.errors.NacrithError` becomes one line ``nacrith: error: ...`` and the exit
status of its class (the table: :data:`nacrith.errors.EXIT_STATUSES`, printed by ``--help``).
"""

from __future__ import annotations

import functools
import os
import sys
import warnings

import click

from . import __version__, api, benchcli, bench_report, chunked, explain, fileio, filejobs, levels, models
from .codec import DEFAULT_LANES, MAX_SEGMENTS, Layout
from .ensemble import DEFAULT_ENSEMBLE, LLM_ONLY
from .errors import EXIT_INTERRUPTED, EXIT_TERMINATED, NacrithError, NacrithWarning, exit_status_table
from .fileio import (
    STDIO,
    Terminated,
    UserError,
    error,
    install_handlers,
    os_message,
    remove_live_tmp,
    say,
    show_warning,
    silence_stdout,
)

# Filter mode (``nacrith [-d] [OPTIONS] [FILE...]`` without a command, as tar's -I uses it):
# flags that pick the command, and the options whose value is the next argument.
_MODE_FLAGS = set("dzlt")  # decompress, compress, list, test
_LONG_MODE_FLAGS = {
    "--decompress": "d", "--uncompress": "d", "--compress": "z", "--list": "l", "--test": "t",
}
_CLUSTER_FLAGS = set("dzltcfkqv")  # short flags without a value that may be combined (-dc)
_VALUE_OPTIONS = {
    "-o", "--output", "--model", "-T", "--threads", "--lanes",
    "--block-tokens", "--stream-tokens", "--window", "--slide", "--sinks", "--workers", "--chunk-bytes",
    "--engine", "--address", "--ensemble", "--segments", "--level",
}


def filter_args(args: list[str]) -> list[str]:
    """Turn a command-less, zstd-style argument list into a subcommand's arguments.

    ``-d``/``--decompress`` picks ``decompress``, ``-l`` ``decompress -l``, ``-t`` ``test``,
    otherwise ``compress``; the other arguments go to that command unchanged.  Writing to
    standard output (no FILE, or ``-c``) is quiet unless ``-v`` is given, like zstd.
    """
    modes: list[str] = []
    rest: list[str] = []
    positional = 0
    to_stdout = verbose = False
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            rest.append(arg)
            positional += len(args) - i
            rest.extend(args[i:])
            break
        if arg in _LONG_MODE_FLAGS:
            modes.append(_LONG_MODE_FLAGS[arg])
            continue
        if arg in _VALUE_OPTIONS:
            rest.append(arg)
            if i < len(args):
                rest.append(args[i])
                i += 1
            continue
        if len(arg) > 1 and arg[0] == "-" and arg[1] != "-" and set(arg[1:]) <= _CLUSTER_FLAGS:
            letters = [c for c in arg[1:] if c not in _MODE_FLAGS]
            modes.extend(c for c in arg[1:] if c in _MODE_FLAGS)
            to_stdout = to_stdout or "c" in letters
            verbose = verbose or "v" in letters
            if letters:
                rest.append("-" + "".join(letters))
            continue
        if arg == "--stdout":
            to_stdout = True
        elif arg == "--verbose":
            verbose = True
        elif not arg.startswith("-"):  # a FILE ('-', standard input, is not one)
            positional += 1
        rest.append(arg)
    mode = modes[-1] if modes else "z"
    if mode == "t":
        return ["test", *rest]
    if mode == "l":
        return ["decompress", "-l", *rest]
    command = "decompress" if mode == "d" else "compress"
    if (to_stdout or not positional) and not verbose:
        rest.insert(0, "-q")
    return [command, *rest]



class _Main(click.Group):
    """The top-level group: maps exceptions to one message line and an exit status.

    Called without a command (``nacrith -d``, ``nacrith FILE``, ``nacrith < in > out``) it
    works like zstd/gzip through :func:`filter_args`; ``nacrith`` alone on a terminal still
    prints the help.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        if not ctx.resilient_parsing and not (args and args[0] in self.commands):
            own = {"-V", "--version", *ctx.help_option_names}
            if args and args[0] not in own:
                args = filter_args(args)
            elif not args and not fileio.isatty(sys.stdin):
                args = filter_args(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        restore = install_handlers()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", NacrithWarning)  # once per archive, not per process
                warnings.showwarning = show_warning
                return super().invoke(ctx)
        except Terminated:
            say("terminated")
            ctx.exit(EXIT_TERMINATED)
        except KeyboardInterrupt:
            say("interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            silence_stdout()
            error("(stdout): Broken pipe")
            ctx.exit(1)
        except (NacrithError, UserError) as exc:
            error(str(exc))
            ctx.exit(exc.exit_code)
        except OSError as exc:
            error(os_message(exc))
            ctx.exit(1)
        finally:
            remove_live_tmp()
            restore()


# -- settings: the options become one Layout and one Execution ------------------------------

# A process may run several commands (tests, callers of ``main`` in-process); loading a model
# costs a second and ~200 MB, so the loaded models are kept across commands.  Settings are not:
# each command makes its own Codec from its own options.
_loaded = api.LoadedModels()


def _codec(model: str | None, layout: Layout, execution: api.Execution, native: bool = False) -> api.Codec:
    """The command's Codec; use it in ``with``, so that its worker processes stop with the command."""
    return api.Codec(model, layout=layout, execution=execution, loaded=_loaded, native=native)


_LAYOUT_NAMES = ("block_tokens", "stream_tokens", "window", "slide", "sinks", "ensemble", "segments")
_EXECUTION_NAMES = ("threads", "lanes", "workers", "engine", "address")


def _settings(command):
    """Hand ``command`` its layout options as one ``layout`` (if it has them) and its speed
    options as one ``execution``; options a command lacks keep their defaults."""

    @functools.wraps(command)
    def run(*args, **options):
        speed = {name: options.pop(name) for name in _EXECUTION_NAMES if name in options}
        if any(name in options for name in _LAYOUT_NAMES):
            level = levels.get(options.pop("level", None))
            options["layout"] = _layout(level, **{name: options.pop(name) for name in _LAYOUT_NAMES})
            if options.get("model") is None:
                options["model"] = level.model
        return command(*args, execution=_execution(**speed), **options)

    return run


def _layout(level: levels.Level, block_tokens, stream_tokens, window, slide, sinks, ensemble, segments) -> Layout:
    """The level's layout with the layout options given, checked (bad combinations are usage
    errors)."""
    given = {
        "block_tokens": block_tokens, "stream_tokens": stream_tokens, "window": window, "slide": slide,
        "sinks": sinks, "segments": segments,
    }
    changes = {name: value for name, value in given.items() if value is not None}
    if ensemble is not None:
        changes["ensemble"] = LLM_ONLY if ensemble == "off" else DEFAULT_ENSEMBLE
    if "block_tokens" in changes and "segments" not in changes:
        changes["segments"] = None  # the default for these blocks (one segment with smaller blocks)
    try:
        return level.layout.replace(**changes).check(click.BadParameter)
    except click.BadParameter as exc:
        raise click.UsageError(str(exc)) from None


def _execution(threads=None, lanes=DEFAULT_LANES, workers=1, engine=None, address=None) -> api.Execution:
    return api.Execution(threads, lanes, workers, engine or "local", address).check(click.UsageError)


# -- options --------------------------------------------------------------------------------


_model_option = click.option(
    "--model",
    metavar="NAME|PATH",
    help=f"Model preset ({', '.join(models.PRESETS)}) or a GGUF file.  Default: $NACRITH_MODEL, else "
    f"{models.DEFAULT_MODEL}; when decompressing, the model recorded in the archive.",
)
_threads_option = click.option(
    "-T", "--threads", type=click.IntRange(min=1), metavar="N", help="llama.cpp threads (default: every available core; fewer while others compete for them)."
)
_D = Layout()
_LAYOUT_OPTIONS = [
    click.option("--fast", "level", flag_value="fast", default=None,
                 help=f"Level fast: {levels.FAST.summary}."),
    click.option("--best", "level", flag_value="best",
                 help=f"Level best: {levels.BEST.summary}."),
    click.option("--level", "level", type=click.Choice(levels.NAMES),
                 help="The level by name; the options below override its settings [default]."),
    click.option("--block-tokens", type=click.IntRange(min=1), metavar="N",
                 help="Symbols per block, the unit of checksums [one block per stream]."),
    click.option("--stream-tokens", type=click.IntRange(min=1), metavar="N",
                 help=f"Symbols per independent stream, a multiple of --block-tokens [{_D.stream_tokens}]."),
    click.option("--window", type=click.IntRange(min=2), metavar="N",
                 help=f"Context window in tokens (KV positions per stream) [{_D.window}]."),
    click.option("--slide", type=click.IntRange(min=1), metavar="N",
                 help=f"Tokens dropped from the window when it is full [{_D.slide}]."),
    click.option("--sinks", type=click.IntRange(min=0), metavar="N",
                 help=f"First tokens of a stream never dropped (attention sinks) [{_D.sinks}]."),
    click.option("--segments", type=click.IntRange(1, MAX_SEGMENTS), metavar="K",
                 help="Parts of each stream coded side by side, each with its own model context and all "
                      f"sharing the online models: K tokens per llama.cpp call when decoding [{_D.segments}; "
                      "1 with --block-tokens]."),
    click.option("--ensemble", type=click.Choice(["on", "off"]),
                 help="Mix the LLM with the online n-gram, bias-head and match models (on), or use the LLM alone "
                      "(off: a few % larger, a few % faster) [on]."),
]
_workers_option = click.option(
    "--workers", type=click.IntRange(1, 256), default=1, show_default=True, metavar="N",
    help="Worker processes, each with its own model, coding whole streams (speed only; "
    "at most one per llama.cpp thread: -T is the total).",
)


def _engine_options(f):
    f = click.option(
        "--address", metavar="ADDR",
        help="With --engine ray: the cluster's address (HOST:PORT of its head) [$RAY_ADDRESS, "
        "else a Ray started on this machine, else a new local one].",
    )(f)
    return click.option(
        "--engine", type=click.Choice(api.ENGINES),
        help="Where streams are coded: here (local) or on a Ray cluster, --workers actors of -T threads each "
        "(ray; needs pip install 'nacrith[ray]'); the same archive either way [local].",
    )(f)


_lanes_option = click.option(
    "--lanes", type=click.IntRange(1, 64), default=DEFAULT_LANES, show_default=True, metavar="N",
    help="Streams decoded together in one model call (speed only).",
)


def _layout_options(f):
    for opt in reversed(_LAYOUT_OPTIONS):
        f = opt(f)
    return f


def _io_options(f):
    for opt in reversed(
        [
            click.argument("files", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True)),
            click.option("-o", "--output", metavar="PATH", type=click.Path(allow_dash=True),
                         help="Write to PATH (only with a single input; '-' = stdout)."),
            click.option("-c", "--stdout", "to_stdout", is_flag=True,
                         help="Write to standard output (several inputs are concatenated)."),
            click.option("-f", "--force", is_flag=True,
                         help="Overwrite existing output files; allow compressed data on a terminal."),
            click.option("-k", "--keep/--rm", "keep", default=True,
                         help="Keep (default) or remove the input once the output is safely written."),
            click.option("-q", "--quiet", is_flag=True, help="No summary lines or progress bar."),
            click.option("-v", "--verbose", count=True, help="Also describe each archive."),
            _model_option,
            _threads_option,
        ]
    ):
        f = opt(f)
    return f


def _inputs(files: tuple[str, ...], output: str | None, to_stdout: bool) -> tuple[str, ...]:
    if not files:
        if fileio.isatty(sys.stdin):
            raise click.UsageError("no input files, and standard input is a terminal")
        files = (STDIO,)
    if output is not None and len(files) > 1:
        raise click.UsageError("-o/--output takes a single input file")
    if output is not None and to_stdout:
        raise click.UsageError("-o/--output and -c/--stdout exclude each other")
    if files.count(STDIO) > 1:
        raise click.UsageError("standard input ('-') can be read only once")
    return files


# -- commands -------------------------------------------------------------------------------


@click.group(
    cls=_Main,
    epilog="\b\nExit status:\n" + exit_status_table() + "\n",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="nacrith")
def main() -> None:
    """nacrith: lossless compression with a small language model.

    Files are compressed to FILE.nc and decompressed back; with no FILE or with '-' the
    command reads standard input and writes standard output.  The model that compressed
    an archive must be available to decompress it (its sha256 is recorded in the archive).

    Without a COMMAND, nacrith works like gzip/zstd: 'nacrith [OPTIONS] [FILE...]'
    compresses, 'nacrith -d' decompresses, '-l' lists, '-t' tests; with no FILE it filters
    standard input to standard output, so 'tar -I nacrith' works.
    """


@main.command(short_help="Compress files to FILE.nc.")
@_io_options
@_layout_options
@click.option("--verify", is_flag=True,
              help="Decode each new archive and compare it with the input before keeping it "
                   "(decoding takes longer than compressing).")
@_workers_option
@_engine_options
@click.option("--chunk-bytes", type=click.IntRange(min=1), metavar="N",
              help=f"Input bytes per archive member; bounds memory (changes the output) [{chunked.CHUNK_BYTES}].")
@click.option("--native", is_flag=True,
              help="Write archives even with a llama.cpp that is not nacrith's pinned portable build; "
                   "they are marked machine-bound and decode only where the same numbers are computed.")
@click.pass_context
@_settings
def compress(ctx, files, output, to_stdout, force, keep, quiet, verbose, model, layout, execution, verify, chunk_bytes,
             native):
    """Compress FILEs to FILE.nc (standard input to standard output)."""
    files = _inputs(files, output, to_stdout)
    opts = filejobs.FileOptions(output, to_stdout, force, keep, quiet, verbose)
    with _codec(model, layout, execution, native) as codec:
        ctx.exit(filejobs.compress_files(codec, files, opts, verify=verify, chunk_bytes=chunk_bytes))


@main.command(short_help="Decompress FILE.nc to FILE.")
@_io_options
@click.option("-l", "--list", "list_only", is_flag=True, help="Describe the archives (like 'nacrith info').")
@_lanes_option
@_workers_option
@_engine_options
@click.pass_context
@_settings
def decompress(ctx, files, output, to_stdout, force, keep, quiet, verbose, model, list_only, execution):
    """Decompress FILE.nc to FILE (standard input to standard output)."""
    files = _inputs(files, output, to_stdout)
    if list_only:
        ctx.exit(filejobs.list_files(files))
    opts = filejobs.FileOptions(output, to_stdout, force, keep, quiet, verbose)
    with _codec(model, Layout(), execution) as codec:
        ctx.exit(filejobs.decompress_files(codec, files, opts))


@main.command(short_help="Describe archives without decoding them.")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.pass_context
def info(ctx, files):
    """Describe archives (header, blocks, sizes) without decoding them."""
    ctx.exit(filejobs.list_files(files))


@main.command("test", short_help="Check that archives decode correctly.")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("-q", "--quiet", is_flag=True, help="Print nothing for good archives.")
@_model_option
@_threads_option
@_lanes_option
@_workers_option
@_engine_options
@click.pass_context
@_settings
def test_cmd(ctx, files, quiet, model, execution):
    """Decode archives completely and check them, writing nothing (like 'zstd -t')."""
    with _codec(model, Layout(), execution) as codec:
        ctx.exit(filejobs.test_files(codec, files, quiet))


@main.command("bench", short_help="Compare nacrith with gzip, bzip2, xz, zstd, cmix, paq8px.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@_model_option
@_layout_options
@_lanes_option
@_workers_option
@_threads_option
@click.option("--max-bytes", type=click.IntRange(min=1), metavar="N",
              help="Measure only the first N bytes of each file (quick runs; the table says so).")
@click.option("--json", "json_path", metavar="PATH", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write the measurements as JSON to PATH ('-' = stdout, table then goes to stderr).")
@click.option("--csv", "csv_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="Also write the table as CSV to PATH.")
@click.option("--png", "png_path", metavar="PATH", type=click.Path(dir_okay=False),
              help=f"Also draw bits per byte per file and compressor as a PNG chart (needs {bench_report.PLOT_INSTALL}).")
@click.option("--from-json", "from_json", metavar="PATH", type=click.Path(dir_okay=False, exists=True), multiple=True,
              help="Measure nothing: print the table (and --csv/--png) from saved --json documents (repeatable: rows are joined).")
@click.option("--ablation", is_flag=True,
              help="Instead: what each part of the ensemble buys (one LLM pass, every variant coded; Markdown table).")
@click.option("--levels", "compare_levels", metavar="LIST",
              help=f"Compare these levels side by side, a nacrith row each (comma-separated: {','.join(levels.NAMES)}; "
                   "'all'); the layout options then do not apply.")
@click.option("-q", "--quiet", is_flag=True, help="No progress messages.")
@click.pass_context
@_settings
def bench_cmd(ctx, files, model, layout, execution, max_bytes, json_path, csv_path, png_path, from_json, ablation,
              compare_levels, quiet):
    """Compare nacrith with gzip, bzip2, xz, zstd (and cmix, paq8px if installed).

    Each file is compressed and decompressed by every compressor; nacrith's round trip must
    reproduce the file exactly or the command fails with status 4.
    """
    if from_json:
        if files:
            raise click.UsageError("--from-json takes no FILE: the measurements come from the document")
        benchcli.from_json(from_json, json_path, csv_path, png_path)
        ctx.exit(0)
    if not files:
        raise click.UsageError("no FILE to measure (or --from-json PATH to reuse measurements)")
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(2, "No such file", path)
    with _codec(model, layout, execution) as codec:
        if ablation:
            benchcli.run_ablation(codec, files, max_bytes=max_bytes, quiet=quiet)
            ctx.exit(0)
        ctx.exit(benchcli.measure(codec, files, max_bytes=max_bytes, quiet=quiet,
                                  json_path=json_path, csv_path=csv_path, png_path=png_path,
                                  levels=_level_list(compare_levels)))


def _level_list(text: str | None) -> tuple[str, ...]:
    """``--levels fast,best`` as level names (usage error for an unknown one)."""
    if not text:
        return ()
    names = levels.NAMES if text == "all" else tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in levels.LEVELS]
    if unknown or not names:
        raise click.UsageError(f"--levels takes names from {', '.join(levels.NAMES)} (or 'all'), got {text!r}")
    return names


@main.command("explain", short_help="Show which parts of a file cost bits, as an HTML page.")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", metavar="PATH", type=click.Path(dir_okay=False),
              help="Write the page to PATH [FILE.html].")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing page.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=explain.DEFAULT_MAX_BYTES, show_default=True,
              metavar="N", help="Explain only the first N bytes (the model is slow).")
@click.option("--region-bytes", type=click.IntRange(min=1), default=explain.DEFAULT_REGION_BYTES,
              show_default=True, metavar="N", help="Size of the regions summarised in bits per byte.")
@_model_option
@_threads_option
@_layout_options
@click.option("-q", "--quiet", is_flag=True, help="No summary line or progress bar.")
@_settings
def explain_cmd(file, output, force, max_bytes, region_bytes, model, layout, execution, quiet):
    """Write a self-contained HTML page showing FILE with each token shaded by the bits it
    costs; hovering a token shows the model's top alternatives."""
    if output is None:
        if file == STDIO:
            raise click.UsageError("name the page with -o PATH when reading standard input")
        output = file + ".html"
    if os.path.lexists(output) and not force:
        raise UserError(f"{output}: already exists; use -f to overwrite")
    with _codec(model, layout, execution) as codec:
        filejobs.explain_file(codec, file, output, max_bytes=max_bytes, region_bytes=region_bytes, quiet=quiet)


if __name__ == "__main__":
    main(prog_name="nacrith")
