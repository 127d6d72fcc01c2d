"""Reading the CloudFormation template as CloudFormation does: short-form tags become their long form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).parents[2]
DEPLOY = REPO / "deploy"
TEMPLATE = DEPLOY / "aws" / "template.yaml"
NO_VALUE = {"Ref": "AWS::NoValue"}


class _Loader(yaml.SafeLoader):
    pass


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _tagged)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # _Loader is a SafeLoader
    assert isinstance(loaded, dict)
    return loaded


def branches(value: Any) -> Iterator[Any]:
    """Every value ``value`` may take: both sides of each ``Fn::If``, without ``AWS::NoValue``."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, then, otherwise = value["Fn::If"]
        yield from branches(then)
        yield from branches(otherwise)
    elif value != NO_VALUE:
        yield value


def as_list(value: Any) -> list[Any]:
    """A value that may be one item or a list of them, each ``Fn::If`` opened up."""
    found: list[Any] = []
    for item in value if isinstance(value, list) else [value]:
        for branch in branches(item):
            found += branch if isinstance(branch, list) else [branch]
    return found


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every IAM policy document in the template, with the resource it is in."""

    def walk(node: Any, resource: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("PolicyDocument", "AssumeRolePolicyDocument"):
                    for statement in as_list(value["Statement"]):
                        yield resource, statement
                else:
                    yield from walk(value, resource)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, resource)

    for name, resource in template["Resources"].items():
        yield from walk(resource, name)
