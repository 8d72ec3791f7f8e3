"""A small IAM evaluator: what a set of policy documents lets a principal do (pure functions).

It implements the parts of AWS's evaluation logic the stack's policies use: Action/NotAction and
Resource/NotResource with ``*``/``?`` wildcards, explicit Deny over Allow, and the string/ARN condition
operators. Unknown condition operators are treated *conservatively*: they are assumed to hold for an
Allow (it may grant) and not to hold for a Deny (it may not protect), so the evaluator can only
over-estimate what a principal can read, never under-estimate it.

AWS-managed policies are evaluated from pinned copies of their documents in ``infra/managed_policies``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

MANAGED_POLICY_DIR = Path(__file__).resolve().parent / "managed_policies"
SECRET_READ_ACTIONS = ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory")
"""Actions that return a parameter's value (``GetParametersByPath`` is checked on the parameter's paths)."""
PARAMETER_CONTEXT = "kms:EncryptionContext:PARAMETER_ARN"
"""The encryption context SSM sends to KMS for a SecureString: the parameter's ARN."""

_STRING_OPS = {"StringEquals", "StringLike", "ArnEquals", "ArnLike"}
_NEGATED_OPS = {"StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def statements(document: Any) -> list[dict[str, Any]]:
    """The statements of a policy document given as JSON text or a dict."""
    doc = json.loads(document) if isinstance(document, str) else document
    return [s for s in _as_list((doc or {}).get("Statement")) if isinstance(s, dict)]


@cache
def _pattern(glob: str, case_insensitive: bool) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(glob), re.IGNORECASE if case_insensitive else 0)


def _matches(globs: Iterable[Any], value: str, *, case_insensitive: bool = False) -> bool:
    return any(_pattern(str(g), case_insensitive).fullmatch(value) for g in globs)


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str], *, for_allow: bool) -> bool:
    for operator, clauses in condition.items():
        base = operator.removeprefix("ForAnyValue:").removeprefix("ForAllValues:").removesuffix("IfExists")
        if base not in _STRING_OPS | _NEGATED_OPS:
            if not for_allow:
                return False  # unknown operator on a Deny: do not count on it
            continue  # unknown operator on an Allow: assume it may hold
        for key, wanted in (clauses or {}).items():
            given = context.get(key)
            if given is None:
                if operator.endswith("IfExists"):
                    continue
                return base in _NEGATED_OPS  # a missing key fails positive operators
            like = base.endswith("Like")
            hit = _matches(_as_list(wanted), given) if like else given in [str(w) for w in _as_list(wanted)]
            if hit == (base in _NEGATED_OPS):
                return False
    return True


def applies(stmt: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]) -> bool:
    """Whether ``stmt`` covers ``action`` on ``resource`` with request ``context``."""
    if "Action" in stmt and not _matches(_as_list(stmt["Action"]), action, case_insensitive=True):
        return False
    if "NotAction" in stmt and _matches(_as_list(stmt["NotAction"]), action, case_insensitive=True):
        return False
    if "Resource" in stmt and not _matches(_as_list(stmt["Resource"]), resource):
        return False
    if "NotResource" in stmt and _matches(_as_list(stmt["NotResource"]), resource):
        return False
    return _condition_holds(stmt.get("Condition") or {}, context, for_allow=stmt.get("Effect") == "Allow")


def allowed(docs: Iterable[Any], action: str, resource: str, context: Mapping[str, str] | None = None) -> bool:
    """True when some statement allows the request and none denies it explicitly."""
    ctx = context or {}
    stmts = [s for doc in docs for s in statements(doc)]
    if any(s.get("Effect") == "Deny" and applies(s, action, resource, ctx) for s in stmts):
        return False
    return any(s.get("Effect") == "Allow" and applies(s, action, resource, ctx) for s in stmts)


def managed_policy(name: str) -> dict[str, Any] | None:
    """The pinned document of AWS-managed policy ``name``, or ``None`` when none is pinned."""
    path = MANAGED_POLICY_DIR / f"{name}.json"
    if not path.is_file():
        return None
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _paths(parameter_arn: str) -> list[str]:
    """ARNs of every path above a parameter (``.../parameter/a/b/c`` -> ``.../parameter/a/b``, ``.../parameter/a``)."""
    head, _, name = parameter_arn.partition(":parameter/")
    parts = name.split("/")
    return [f"{head}:parameter/{'/'.join(parts[:i])}" for i in range(len(parts) - 1, 0, -1)]


@dataclass(frozen=True)
class SecureParameter:
    """A SecureString parameter and the key that encrypts it (``None`` = the AWS-managed ``aws/ssm`` key)."""

    arn: str
    key_arn: str | None = None
    key_policy: Any = None


def can_read(docs: list[Any], principal_arn: str, parameter: SecureParameter) -> bool:
    """Whether a principal with identity policies ``docs`` can obtain the parameter's plaintext.

    It needs an SSM read action on the parameter (or GetParametersByPath on one of its paths) and
    ``kms:Decrypt`` on its key for that parameter's encryption context, from its own policies or the
    key policy. With the AWS-managed ``aws/ssm`` key any principal of the account may decrypt via SSM.
    """
    ssm = any(allowed(docs, action, parameter.arn) for action in SECRET_READ_ACTIONS) or any(
        allowed(docs, "ssm:GetParametersByPath", path) for path in _paths(parameter.arn)
    )
    if not ssm:
        return False
    if parameter.key_arn is None:
        return True
    context = {PARAMETER_CONTEXT: parameter.arn}
    if allowed(docs, "kms:Decrypt", parameter.key_arn, context):
        return True
    return _key_policy_grants(parameter.key_policy, principal_arn, parameter.key_arn, context)


def _key_policy_grants(policy: Any, principal_arn: str, key_arn: str, context: Mapping[str, str]) -> bool:
    """A key policy statement that names the principal (or everyone) directly and allows kms:Decrypt."""
    for stmt in statements(policy) if policy else []:
        principal = stmt.get("Principal")
        names = ["*"] if principal == "*" else _as_list((principal or {}).get("AWS"))
        if not any(n == "*" or n == principal_arn for n in map(str, names)):
            continue  # the account root delegates to IAM policies, which were evaluated already
        if stmt.get("Effect") == "Allow" and applies({**stmt, "Resource": "*"}, "kms:Decrypt", key_arn, context):
            return True
    return False
