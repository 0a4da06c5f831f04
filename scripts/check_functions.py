#!/usr/bin/env python3
"""Check that the deployable functions are listed once: functions/*/deploy.json.

A function is deployable when its directory in functions/ holds a deploy.json
(functions/README.md); `local` is a development binary and must have none. Terraform
(infra/locals.tf), Cloud Build (cloudbuild.yaml) and scripts/check-images derive the set from
those files. This check fails when:

  * a deploy.json has no crate beside it (a Cargo.toml whose package has the directory's
    name, which the Dockerfile builds), or cannot be read;
  * docker-compose.yml, which cannot loop and so stays written out, builds (FUNCTION build
    arg, all profiles) a different set, or puts a function in the wrong profile: internal
    services ("ingress": "internal", they only make sense with Pub/Sub, i.e. the worker) only
    in the `async` profile, every other function in the default profile;
  * a file that should derive the set no longer reads deploy.json, or holds a literal list of
    two or more function names again (infra/*.tf, cloudbuild.yaml, scripts/check-images;
    comments are not read).

deploy.json fields are validated against functions/deploy.schema.json by check-jsonschema in
scripts/check-shipping, and by preconditions in infra/iam.tf.

Usage: check_functions.py [--root REPO]. Exit 0 when everything agrees, 1 on a mismatch,
2 when a file cannot be read or understood. Needs PyYAML.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

NEVER_SHIPPED = {"local"}
ASYNC_PROFILE = "async"

# Files that must derive the set from deploy.json, and the text that shows they do.
DERIVERS = {
    "infra/locals.tf": '"*/deploy.json"',
    "cloudbuild.yaml": "functions/${_FUNCTION}/deploy.json",
    "scripts/check-images": '"*/deploy.json"',
}


class Unreadable(Exception):
    """A file exists but its shape is not one this check understands."""


# ---- functions/ ----------------------------------------------------------------------------


def crate_name(cargo_toml: Path) -> str | None:
    """The [package] name of a Cargo.toml (read with a regex: tomllib needs Python 3.11)."""
    m = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', cargo_toml.read_text(encoding="utf-8"), re.M | re.S)
    return m.group(1) if m else None


def read_functions(root: Path) -> tuple[dict[str, dict], set[str], list[str]]:
    """(deploy.json per deployable function, every crate directory, problems)."""
    fdir = root / "functions"
    if not fdir.is_dir():
        raise Unreadable(f"{fdir} does not exist")
    deploy: dict[str, dict] = {}
    problems: list[str] = []
    crates = {p.name for p in fdir.iterdir() if (p / "Cargo.toml").is_file()}
    for path in sorted(fdir.glob("*/deploy.json")):
        name = path.parent.name
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise Unreadable(f"{path}: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("kind") not in ("service", "job"):
            raise Unreadable(f"{path}: not an object with \"kind\": \"service\" or \"job\"")
        deploy[name] = doc
        if name in NEVER_SHIPPED:
            problems.append(f"functions/{name}/deploy.json: {name} is a development binary and is never shipped")
        if name not in crates:
            problems.append(f"functions/{name}/deploy.json has no Cargo.toml beside it")
        elif crate_name(path.parent / "Cargo.toml") != name:
            problems.append(f"functions/{name}/Cargo.toml: the package must be named {name!r} (the Dockerfile builds -p <directory>)")
    return deploy, crates, problems


def async_only(deploy: dict[str, dict]) -> set[str]:
    return {f for f, d in deploy.items() if d.get("kind") == "service" and d.get("ingress") == "internal"}


# ---- docker-compose.yml --------------------------------------------------------------------


def compose_functions(path: Path) -> list[tuple[str, str, list[str]]]:
    """(compose service, FUNCTION build arg, profiles) for every service built with one."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise Unreadable(f"{path}: {exc}") from exc
    out = []
    for name, svc in ((doc or {}).get("services") or {}).items():
        build = (svc or {}).get("build")
        if not isinstance(build, dict):
            continue
        args = build.get("args") or {}
        if isinstance(args, list):  # ["FUNCTION=events", ...]
            args = dict(a.split("=", 1) for a in args if "=" in a)
        function = args.get("FUNCTION")
        if function is not None:
            out.append((name, str(function), list(svc.get("profiles") or [])))
    return out


def check_compose(path: Path, deploy: dict[str, dict], crates: set[str]) -> list[str]:
    built = compose_functions(path)
    expected = set(deploy) - NEVER_SHIPPED
    internal = async_only(deploy)
    everything = {f for _, f, _ in built}
    default = {f for _, f, profiles in built if not profiles}
    problems = []
    if expected - everything:
        problems.append(f"does not build {', '.join(sorted(expected - everything))}")
    for extra in sorted(everything - expected):
        if extra in NEVER_SHIPPED:
            problems.append(f"builds the development-only {extra}")
        elif extra in crates:
            problems.append(f"builds {extra}, which has no deploy.json")
        else:
            problems.append(f"builds {extra}, which is not in functions/")
    for name, function, profiles in built:
        if function in internal and profiles != [ASYNC_PROFILE]:
            problems.append(f"service {name!r} (FUNCTION={function}, ingress internal) must be in profiles: [{ASYNC_PROFILE}] only")
    for function in sorted((expected - internal) - default):
        if function in everything:
            problems.append(f"{function} is not in the default profile (only internal services are async-only)")
    return problems


# ---- no second copy of the list -------------------------------------------------------------

# Comments are blanked, keeping their line breaks so line numbers stay right.
_TF_COMMENTS = re.compile(r"/\*.*?\*/|(?://|#)[^\n]*", re.S)
_SH_COMMENTS = re.compile(r"(?m)^[ \t]*#[^\n]*")


def blank(m: re.Match) -> str:
    return "\n" * m.group(0).count("\n")


def literal_lists(text: str, names: set[str]) -> list[str]:
    """Runs of two or more function names separated only by list punctuation: quotes, commas,
    `|`, brackets, parentheses or white space (a Terraform or YAML list, a bash array or case
    pattern, a `for f in a b c`)."""
    if len(names) < 2:
        return []
    name = "(?:" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + ")"
    sep = r"""[\s"',|\[\]()]+"""
    run = re.compile(rf"(?<![\w/.$-]){name}(?:{sep}{name})+(?![\w/.-])")
    found = []
    for m in run.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        found.append(f"line {line}: {', '.join(re.findall(name, m.group(0)))}")
    return found


def check_copies(root: Path, names: set[str]) -> dict[str, list[str]]:
    """Problems per group: infra/*.tf, cloudbuild.yaml, scripts/check-images."""
    tf_files = sorted((root / "infra").glob("*.tf"))
    if not tf_files:
        raise Unreadable(f"no .tf files in {root / 'infra'}")
    results: dict[str, list[str]] = {"infra/*.tf": [], "cloudbuild.yaml": [], "scripts/check-images": []}
    for path in tf_files + [root / "cloudbuild.yaml", root / "scripts" / "check-images"]:
        rel = path.relative_to(root).as_posix()
        group = "infra/*.tf" if path.suffix == ".tf" else rel
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise Unreadable(f"{path}: {exc}") from exc
        marker = DERIVERS.get(rel)
        if marker is not None and marker not in text:
            results[group].append(f"{rel} no longer derives the functions from deploy.json (expected {marker} in it)")
        stripped = (_TF_COMMENTS if path.suffix == ".tf" else _SH_COMMENTS).sub(blank, text)
        for found in literal_lists(stripped, names):
            results[group].append(f"{rel} hard-codes a list of functions: {found}")
    return results


# ---- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    root = parser.parse_args().root

    try:
        deploy, crates, fn_problems = read_functions(root)
        results: dict[str, list[str]] = {"functions/*/deploy.json": fn_problems}
        results["docker-compose.yml: FUNCTION build args and profiles"] = check_compose(root / "docker-compose.yml", deploy, crates)
        for rel, problems in check_copies(root, crates | set(deploy)).items():
            results[f"{rel}: derives the set, no literal list of functions"] = problems
    except Unreadable as exc:
        print(f"check_functions: cannot check: {exc}", file=sys.stderr)
        return 2

    kinds = [f"{f} ({d['kind']}{', ' + d['ingress'] if d.get('ingress') else ''})" for f, d in sorted(deploy.items())]
    print(f"deployable functions (functions/*/deploy.json): {', '.join(kinds) or '(none)'}")
    failures = 0
    for where, problems in results.items():
        if not problems:
            print(f"  ok    {where}")
            continue
        failures += 1
        for problem in problems:
            print(f"  FAIL  {where}: {problem}")
    if not deploy:
        failures += 1
        print("  FAIL  functions/: no directory holds a deploy.json")
    if failures:
        print(
            f"check_functions: {failures} place(s) disagree with functions/*/deploy.json. A function "
            "is added or removed by its directory (Cargo.toml and deploy.json) plus its service in "
            "docker-compose.yml; nothing else lists it.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
