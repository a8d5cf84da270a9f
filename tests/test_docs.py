"""Every configuration key is documented, and the README's two commands are the real ones."""

from __future__ import annotations

from typing import get_args

from pydantic import BaseModel

from daemon.config import Config
from tests.support import REPO


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        inner = get_args(annotation)[0] if get_args(annotation) else annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            list_suffix = "[]" if get_args(annotation) else ""
            found += keys(inner, f"{prefix}{name}{list_suffix}.")
        else:
            found.append(prefix + name)
    return found


def test_every_config_key_is_in_the_configuration_doc() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    all_keys = keys(Config)
    assert "cameras[].share_with_district" in all_keys
    missing = [key for key in all_keys if f"`{key}`" not in doc]
    assert missing == []


def test_readme_names_the_commands_ci_and_users_run() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "bash scripts/demo.sh" in readme
    assert "bash scripts/test.sh" in readme
    assert "exec bash scripts/test.sh" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
