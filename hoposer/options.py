"""Options declared once: a dataclass field carries its command-line flag and help text.

    @dataclass(frozen=True)
    class StreamOptions:
        fov_deg: float = option(60.0, "horizontal field of view assumed without camera info",
                                flag="--fov", panel="Camera")

`options_command(run)` turns the fields of `run`'s first parameter's dataclass into the options
of a typer command (flag, type, default, help), builds the dataclass from the parsed values and
calls `run(options, **rest)`. The dataclass, the command line and the library then share one list
of options: a field is an option of every command unless the command names it, with the reason,
in `omitted`. A field whose type is itself an options dataclass (`StreamOptions.stabilizer`) is
reached through its own fields.

The field keeps the library's type; the command line may parse it another way: a `path=True`
field is a `Path` there (`<path>` in --help) and a `str` in the dataclass, and a `tuple[X, ...]`
field is a repeatable option (or an argument taking several values) whose values become the tuple.
"""

import inspect
import operator
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace
from functools import reduce
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    flag: str | None = None,
    short: str | None = None,
    panel: str | None = None,
    factory: Callable[[], Any] | Any = MISSING,
    path: bool = False,
    argument: bool = False,
) -> Any:
    """A dataclass field that is also a command-line option.

    Args:
        default: the field's default (none: the option is required).
        help: the option's help text, the one place it is written (empty: --help shows none).
        flag: the long flag when it is not the field's name (`--fov` for `fov_deg`); a bool
            gets its `--no-` twin.
        short: a one-letter alias (`-o`).
        panel: the `--help` section it is listed in (default: Options).
        factory: a `default_factory` instead of a default (mutable defaults).
        path: the command line reads a file or folder (typer's `Path`); the field keeps a `str`
            (a `tuple[str, ...]` field: a tuple of `str`).
        argument: a positional argument rather than an option (no flag; `--help` lists it under
            Arguments).
    """
    metadata = {
        "help": help,
        "flag": flag,
        "short": short,
        "panel": panel,
        "path": path,
        "argument": argument,
    }
    return field(default=default, default_factory=factory, metadata=metadata)


@dataclass(frozen=True)
class CliField:
    """One dataclass field as a command sees it: where it sits and how it is spelled."""

    path: str  #: field name, or `outer.inner` for a field of a nested options dataclass
    field: Field
    type: Any
    panel: str | None = None  #: its `--help` section (a nested field: the outer's, if unset)

    @property
    def name(self) -> str:
        """The Python name of its parameter (the innermost field name)."""
        return self.path.rsplit(".", 1)[-1]

    @property
    def is_option(self) -> bool:
        """Declared with `option()` (`option(3)`: an option without a help text)."""
        return "help" in self.field.metadata

    @property
    def cli_type(self) -> Any:
        """The type the command line parses: `Path` for a path's `str`, `list[X]` for a tuple."""
        return _cli_type(self.type, bool(self.field.metadata.get("path")))

    def from_cli(self, value: Any) -> Any:
        """The field's value from the command line's: paths back to `str`, a list to a tuple."""
        if value is None:
            return None
        if self.field.metadata.get("path"):
            many = isinstance(value, list | tuple)
            value = type(value)(str(v) for v in value) if many else str(value)
        return tuple(value) if _is_variadic_tuple(self.type) else value

    def default(self) -> Any:
        """The dataclass's default, or `...` (required) when it has none."""
        if self.field.default is not MISSING:
            return self.field.default
        if self.field.default_factory is not MISSING:
            return self.field.default_factory()
        return ...

    def parameter(
        self, default: Any = MISSING, name: str | None = None, info: Any = None
    ) -> inspect.Parameter:
        """The typer parameter of this field.

        Args:
            default: this command's default, when not the dataclass's.
            name: the parameter's name, when not the field's.
            info: a `typer.Argument`/`typer.Option`, when not the one `option()` describes.
        """
        import typer

        meta = self.field.metadata
        if info is None and meta.get("argument"):
            info = typer.Argument(help=meta["help"] or None, rich_help_panel=self.panel)
        elif info is None:
            decls = []
            if meta["flag"] or meta["short"]:
                long = meta["flag"] or "--" + self.name.replace("_", "-")
                decls.append(f"{long}/--no-{long[2:]}" if self.type is bool else long)
                decls += [meta["short"]] if meta["short"] else []
            info = typer.Option(*decls, help=meta["help"] or None, rich_help_panel=self.panel)
        value = self.default() if default is MISSING else default
        return inspect.Parameter(
            name or self.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[self.cli_type, info],
            default=inspect.Parameter.empty if value is ... else value,
        )


def cli_fields(options_type: type) -> Iterator[CliField]:
    """Every field of `options_type`; a nested options dataclass's fields in its place.

    A nested dataclass is entered when it has options of its own (`StreamOptions.stabilizer`:
    `--smooth`, `--relock`); one without (`StabilizerOptions.thresholds`) is one field.
    """
    hints = get_type_hints(options_type)
    for f in fields(options_type):
        kind = hints[f.name]
        inner = list(cli_fields(kind)) if is_dataclass(kind) and not f.metadata.get("help") else []
        if any(i.is_option for i in inner):
            for i in inner:
                panel = i.panel or f.metadata.get("panel")
                yield replace(i, path=f"{f.name}.{i.path}", panel=panel)
        else:
            yield CliField(f.name, f, kind, f.metadata.get("panel"))


def options_command(
    run: Callable[..., Any],
    *,
    renamed: Mapping[str, tuple[str, Any]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    omitted: Mapping[str, str] | None = None,
) -> Callable[..., Any]:
    """A typer command from `run(options: SomeOptions, **rest)`.

    Its parameters are the fields of `SomeOptions`, as their `option()` says, then `rest` as
    `run` declares them. Every field must be accounted for: an `option()`, a parameter of this
    command's own (`renamed`), a value the command sets (`fixed`), or one it leaves at its
    default (`omitted`, with the reason).

    Args:
        run: the command's body; its docstring is the command's help.
        renamed: field → (its parameter's name, a `typer.Argument` or `typer.Option`), for a
            field this command spells its own way (`source` as `video`'s argument `clip`).
        fixed: field → the value this command always gives it.
        defaults: field → this command's default, when it differs from the dataclass's.
        omitted: field path → why this command does not offer it.

    Raises:
        TypeError: a field nothing accounts for, or an entry naming no field.
    """
    renamed, fixed = dict(renamed or {}), dict(fixed or {})
    defaults, omitted = dict(defaults or {}), dict(omitted or {})
    first, *rest = inspect.signature(run).parameters.values()
    options_type = get_type_hints(run)[first.name]
    every = {f.path: f for f in cli_fields(options_type)}
    offered = [f for path, f in every.items() if path not in omitted | fixed]
    unknown = (set(omitted) | set(fixed) | set(defaults) | set(renamed)) - set(every)
    unaccounted = [f.path for f in offered if not f.is_option and f.path not in renamed]
    if unknown or unaccounted:
        raise TypeError(
            f"{run.__name__}: {options_type.__name__} has no field {sorted(unknown)}, or its "
            f"fields {unaccounted} are not option() and not omitted"
        )
    generated = [
        f.parameter(defaults.get(f.path, MISSING), *renamed.get(f.path, ())) for f in offered
    ]
    by_name = {p.name: f for p, f in zip(generated, offered, strict=True)}
    fields_by_name = {name: f.path for name, f in by_name.items()}
    parameters = generated + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in rest]

    def build(values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The options from the parsed values, and the values left for `run`."""
        values = dict(values)
        given = {f.path: f.from_cli(values.pop(name)) for name, f in by_name.items()}
        return _assemble(options_type, given | fixed), values

    def command(**values: Any) -> Any:
        options, own = build(values)
        return run(options, **own)

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__name__, command.__doc__ = run.__name__, run.__doc__
    command.__module__ = run.__module__
    command.build = build  # type: ignore[attr-defined]
    command.options_type = options_type  # type: ignore[attr-defined]
    command.fields = fields_by_name  # type: ignore[attr-defined]
    command.omitted = omitted  # type: ignore[attr-defined]
    command.fixed = fixed  # type: ignore[attr-defined]
    return command


def _assemble(options_type: type, values: dict[str, Any], base: Any = None) -> Any:
    """`options_type(**values)`, or `base` with `values` replaced.

    A key `outer.inner` sets a field of the nested dataclass in field `outer`.
    """
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        outer, _, inner = path.partition(".")
        if inner:
            nested.setdefault(outer, {})[inner] = value
        else:
            top[outer] = value
    for outer, inner in nested.items():
        if base is not None:
            current = getattr(base, outer)
        else:
            f = options_type.__dataclass_fields__[outer]
            current = f.default_factory() if f.default_factory is not MISSING else f.default
        top[outer] = _assemble(type(current), inner, current)
    return options_type(**top) if base is None else replace(base, **top)


def _is_variadic_tuple(kind: Any) -> bool:
    args = get_args(kind)
    return get_origin(kind) is tuple and len(args) == 2 and args[1] is Ellipsis


def _cli_type(kind: Any, path: bool) -> Any:
    """`kind` as the command line parses it (`_is_variadic_tuple` → list; `path`: str → Path)."""
    if _is_variadic_tuple(kind):
        return list[_cli_type(get_args(kind)[0], path)]
    if not path:
        return kind
    if get_origin(kind) in (Union, types.UnionType, list):
        parsed = [_cli_type(a, path) for a in get_args(kind)]
        return list[parsed[0]] if get_origin(kind) is list else reduce(operator.or_, parsed)
    return Path if kind is str else kind
