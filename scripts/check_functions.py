#!/usr/bin/env python3
"""Check that every place that ships functions agrees on which functions exist.

The truth is the set of crates in functions/ (a directory with a Cargo.toml), minus `local`,
which is a development binary and is never shipped. That set must equal:

  * the `_FUNCTION` values of the Cloud Build triggers in infra/,
  * the Cloud Run services plus the Cloud Run job in infra/,
  * the docker-compose.yml services built with a FUNCTION build arg (all profiles), where the
    functions that only make sense with Pub/Sub (worker) appear only in the `async` profile,
  * the list of accepted _FUNCTION values in cloudbuild.yaml.

The Terraform is read statically with python-hcl2. Only the shapes this repository uses are
understood (`for_each = toset(local.X)` with `each.key`, or a literal name after
`var.service_prefix`); anything else is reported as unreadable rather than guessed.

Usage: check_functions.py [--root REPO]. Exit 0 when everything agrees, 1 on a mismatch,
2 when a file cannot be read or understood. Needs python-hcl2 (8.x) and PyYAML.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import hcl2
import yaml
from hcl2 import SerializationOptions

NEVER_SHIPPED = {"local"}
# Functions that only run with Pub/Sub, so compose has them in the async profile only.
ASYNC_ONLY = {"worker"}
ASYNC_PROFILE = "async"


class Unreadable(Exception):
    """A file exists but its shape is not one this check understands."""


def function_crates(root: Path) -> set[str]:
    fdir = root / "functions"
    if not fdir.is_dir():
        raise Unreadable(f"{fdir} does not exist")
    return {p.name for p in fdir.iterdir() if (p / "Cargo.toml").is_file()}


# ---- Terraform -----------------------------------------------------------------------------


def load_tf(infra: Path) -> tuple[dict[str, object], list[tuple[str, str, dict, str]]]:
    """Returns (locals, resources) across every .tf file in infra/ (not recursive: no modules)."""
    opts = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    tf_locals: dict[str, object] = {}
    resources: list[tuple[str, str, dict, str]] = []
    files = sorted(infra.glob("*.tf"))
    if not files:
        raise Unreadable(f"no .tf files in {infra}")
    for path in files:
        try:
            with path.open(encoding="utf-8") as f:
                doc = hcl2.load(f, serialization_options=opts)
        except Exception as exc:  # python-hcl2 raises lark errors of several kinds
            raise Unreadable(f"{path}: {exc}") from exc
        for block in doc.get("locals", []):
            tf_locals.update(block)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for rname, body in named.items():
                    resources.append((rtype, rname, body, path.name))
    return tf_locals, resources


_REF = re.compile(r"^\$\{(?:toset\()?local\.([A-Za-z0-9_]+)\)?\}$")
_CONCAT = re.compile(r"^\$\{concat\(([^()]*)\)\}$")


def resolve_local_list(tf_locals: dict[str, object], name: str, seen: tuple[str, ...] = ()) -> list[str]:
    if name in seen:
        raise Unreadable(f"local.{name} refers to itself")
    if name not in tf_locals:
        raise Unreadable(f"local.{name} is not defined")
    value = tf_locals[name]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, str):
        m = _REF.match(value)
        if m:
            return resolve_local_list(tf_locals, m.group(1), seen + (name,))
        m = _CONCAT.match(value)
        if m:
            out: list[str] = []
            for part in m.group(1).split(","):
                part = part.strip()
                pm = re.fullmatch(r"local\.([A-Za-z0-9_]+)", part)
                if not pm:
                    raise Unreadable(f"local.{name}: cannot read concat() argument {part!r}")
                out += resolve_local_list(tf_locals, pm.group(1), seen + (name,))
            return out
    raise Unreadable(f"local.{name} = {value!r} is not a list this check can read")


def for_each_keys(tf_locals: dict[str, object], body: dict, where: str) -> list[str] | None:
    expr = body.get("for_each")
    if expr is None:
        return None
    m = _REF.match(expr) if isinstance(expr, str) else None
    if not m:
        raise Unreadable(f"{where}: for_each = {expr!r}; use toset(local.<list>) so it can be checked")
    return resolve_local_list(tf_locals, m.group(1))


def functions_from_name(value: object, keys: list[str] | None, where: str) -> set[str]:
    """`${var.service_prefix}${each.key}` over for_each keys, or `${var.service_prefix}NAME`."""
    if not isinstance(value, str):
        raise Unreadable(f"{where}: name {value!r} is not a string")
    if keys is not None and value == "${var.service_prefix}${each.key}":
        return set(keys)
    m = re.fullmatch(r"\$\{var\.service_prefix\}([a-z][a-z0-9-]*)", value)
    if keys is None and m:
        return {m.group(1)}
    raise Unreadable(f"{where}: name {value!r} is neither ${{var.service_prefix}}${{each.key}} nor ${{var.service_prefix}}<function>")


def terraform_sets(infra: Path) -> dict[str, set[str]]:
    tf_locals, resources = load_tf(infra)
    triggers: set[str] = set()
    services: set[str] = set()
    jobs: set[str] = set()
    for rtype, rname, body, fname in resources:
        where = f"{fname}: {rtype}.{rname}"
        if rtype == "google_cloudbuild_trigger":
            keys = for_each_keys(tf_locals, body, where)
            value = (body.get("substitutions") or {}).get("_FUNCTION")
            if keys is not None and value == "${each.key}":
                triggers |= set(keys)
            elif keys is None and isinstance(value, str) and "$" not in value:
                triggers.add(value)
            else:
                raise Unreadable(f"{where}: substitutions._FUNCTION = {value!r} cannot be read")
        elif rtype == "google_cloud_run_v2_service":
            services |= functions_from_name(body.get("name"), for_each_keys(tf_locals, body, where), where)
        elif rtype == "google_cloud_run_v2_job":
            jobs |= functions_from_name(body.get("name"), for_each_keys(tf_locals, body, where), where)
    both = services & jobs
    if both:
        raise Unreadable(f"infra: {sorted(both)} are both a Cloud Run service and a job")
    return {
        "infra: Cloud Build triggers (_FUNCTION)": triggers,
        "infra: Cloud Run services + migrate job": services | jobs,
    }


# ---- docker-compose.yml --------------------------------------------------------------------


def compose_sets(path: Path) -> dict[str, set[str]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise Unreadable(f"{path}: {exc}") from exc
    default: set[str] = set()
    everything: set[str] = set()
    wrong_profile: list[str] = []
    for name, svc in (doc.get("services") or {}).items():
        build = (svc or {}).get("build")
        if not isinstance(build, dict):
            continue
        args = build.get("args") or {}
        if isinstance(args, list):  # ["FUNCTION=events", ...]
            args = dict(a.split("=", 1) for a in args if "=" in a)
        function = args.get("FUNCTION")
        if function is None:
            continue
        profiles = svc.get("profiles") or []
        everything.add(function)
        if not profiles:
            default.add(function)
        if function in ASYNC_ONLY and profiles != [ASYNC_PROFILE]:
            wrong_profile.append(f"service {name!r} (FUNCTION={function}) must be in profiles: [{ASYNC_PROFILE}] only")
    if wrong_profile:
        raise MismatchError(wrong_profile)
    return {
        "docker-compose.yml: FUNCTION build args, all profiles": everything,
        f"docker-compose.yml: FUNCTION build args, default profile ({', '.join(sorted(ASYNC_ONLY))} in {ASYNC_PROFILE} only)": default | (everything & ASYNC_ONLY),
    }


class MismatchError(Exception):
    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


# ---- cloudbuild.yaml -----------------------------------------------------------------------


def cloudbuild_set(path: Path) -> dict[str, set[str]]:
    text = path.read_text(encoding="utf-8")
    m = re.search(r'case "\$\{_FUNCTION\}" in\s*\n\s*([a-z|-]+)\)', text)
    if not m:
        raise Unreadable(f"{path}: no `case \"${{_FUNCTION}}\" in <a|b|...>)` guard found")
    return {"cloudbuild.yaml: accepted _FUNCTION values": set(m.group(1).split("|"))}


# ---- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    root = parser.parse_args().root

    try:
        crates = function_crates(root)
        expected = crates - NEVER_SHIPPED
        found: dict[str, set[str]] = {}
        found.update(terraform_sets(root / "infra"))
        found.update(compose_sets(root / "docker-compose.yml"))
        found.update(cloudbuild_set(root / "cloudbuild.yaml"))
    except Unreadable as exc:
        print(f"check_functions: cannot check: {exc}", file=sys.stderr)
        return 2
    except MismatchError as exc:
        for line in exc.lines:
            print(f"check_functions: {line}", file=sys.stderr)
        return 1

    print(f"deployable functions (functions/ minus {', '.join(sorted(NEVER_SHIPPED))}): {', '.join(sorted(expected)) or '(none)'}")
    failures = 0
    for where, got in found.items():
        missing = expected - got
        extra = got - expected
        if not missing and not extra:
            print(f"  ok    {where}")
            continue
        failures += 1
        detail = []
        if missing:
            detail.append(f"missing {', '.join(sorted(missing))}")
        if extra:
            shipped_dev = extra & NEVER_SHIPPED
            unknown = extra - NEVER_SHIPPED
            if shipped_dev:
                detail.append(f"ships the development-only {', '.join(sorted(shipped_dev))}")
            if unknown:
                detail.append(f"has {', '.join(sorted(unknown))} with no crate in functions/")
        print(f"  FAIL  {where}: {'; '.join(detail)}")
    if failures:
        print(
            f"check_functions: {failures} place(s) disagree with functions/. Add or remove the "
            "function everywhere (functions/<name>, infra/locals.tf, docker-compose.yml, "
            "cloudbuild.yaml) in the same change.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
