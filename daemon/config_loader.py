"""Read the YAML file, validate it, and report every error as `file:line: key.path: message`.

YAML is parsed twice from the same text: `yaml.compose` (SafeLoader) keeps the line
of every key and value, `yaml.safe_load` gives the data. Pydantic error locations
are then mapped back to lines, the way an editor would want them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from daemon.config import Config, Problem, SecretSources, cross_check

EX_CONFIG = 78  # sysexits.h: configuration error; the unit has RestartPreventExitStatus=78

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class ConfigError(Exception):
    """The configuration file cannot be used; `issues` says every reason found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(issue) for issue in issues))
        self.issues = issues


@dataclass(frozen=True)
class _Lines:
    """Line (1-based) of each key and of each value, by location in the document."""

    key: dict[Loc, int]
    value: dict[Loc, int]
    duplicates: list[tuple[Loc, int, int]]  # loc, line, line of the first occurrence


def load_config(path: Path, secrets: SecretSources | None = None) -> Config:
    """Pure function of the file and the environment (secret references)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(file, 1, "(file)", f"cannot read: {exc}")]) from exc
    return parse_config(text, file, secrets or SecretSources.from_process())


def parse_config(text: str, file: str, secrets: SecretSources) -> Config:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_issue(exc, text, file)]) from exc
    lines = _Lines({}, {}, [])
    if root is not None:
        _walk(root, (), lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(file, 1, "(root)", "the file must be a YAML mapping")])
    issues = [
        ConfigIssue(file, line, _dotted(loc), f"duplicate key (first given on line {first})")
        for loc, line, first in lines.duplicates
    ]
    try:
        config = Config.model_validate(data, context={"secrets": secrets})
    except ValidationError as exc:
        issues += [_from_pydantic(error, file, lines) for error in exc.errors()]
        raise ConfigError(sorted(issues, key=lambda i: i.line)) from exc
    issues += [_issue(problem, file, lines, key_line=False) for problem in cross_check(config)]
    if issues:
        raise ConfigError(sorted(issues, key=lambda i: i.line))
    return config


def _yaml_issue(exc: yaml.YAMLError, text: str, file: str) -> ConfigIssue:
    problem = getattr(exc, "problem", None) or str(exc)
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    # An unclosed quote or bracket is only noticed at the end of the file; the line
    # where it was opened is the one to fix.
    if context is not None and (mark is None or mark.line >= len(text.splitlines())):
        mark = context
    line = mark.line + 1 if mark is not None else 1
    return ConfigIssue(file, line, "(yaml)", f"malformed YAML: {problem}")


def _walk(node: yaml.Node, loc: Loc, lines: _Lines) -> None:
    lines.value[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                lines.duplicates.append(((*loc, key), line, seen[key]))
                continue
            seen[key] = line
            lines.key[(*loc, key)] = line
            _walk(value_node, (*loc, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.key[(*loc, index)] = item.start_mark.line + 1
            _walk(item, (*loc, index), lines)


def _from_pydantic(error: ErrorDetails, file: str, lines: _Lines) -> ConfigIssue:
    loc: Loc = tuple(part for part in error["loc"] if isinstance(part, str | int))
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message = "unknown key (check the spelling; see config/loacam.example.yaml)"
    elif kind == "missing":
        message = "required key is missing"
        # A missing key has no line of its own: point at the mapping that lacks it.
        return _issue(Problem(loc, message), file, lines, key_line=True, parent=True)
    return _issue(Problem(loc, message), file, lines, key_line=kind == "extra_forbidden")


def _issue(
    problem: Problem, file: str, lines: _Lines, *, key_line: bool, parent: bool = False
) -> ConfigIssue:
    table = lines.key if key_line else lines.value
    loc = problem.loc[:-1] if parent else problem.loc
    line = 1
    while True:
        if loc in table:
            line = table[loc]
            break
        if loc in lines.value:
            line = lines.value[loc]
            break
        if not loc:
            break
        loc = loc[:-1]
    return ConfigIssue(file, line, _dotted(problem.loc), problem.message)


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(root)"
