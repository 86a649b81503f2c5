"""`lockgate versions list|get|create|update|publish|deprecate|retire API ...`
(RegistryService): an API's versions and their lifecycle, draft -> published ->
deprecated -> retired. Each transition is decided by the lifecycle policy
(policies/lockgate/lifecycle); its refusal is printed as one line, exit 1.

A prompt API version's spec is a JSON file in the registry's stored form:
{"model", "system", "user", "input_schema", "output_schema", "parameters"}
(lockgate/prompts/spec.py), sent as the proto PromptSpec.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from lockgate.cli import admin, apis
from lockgate.cli.errors import CliError

HEADERS = ("VERSION", "STATE", "ALIASES / MODEL", "PUBLISHED", "SUNSET", "SUCCESSOR", "ETAG")
UPDATE_FLAGS = ("--description", "--alias", "--no-aliases", "--prompt-file")
#: lockgate/prompts/compat.py _VERSION.
VERSION_PATTERN = re.compile(r"v(0|[1-9][0-9]{0,5})(?:\.(0|[1-9][0-9]{0,5}))?")
#: The stored form's keys (lockgate/prompts/spec.py _KEYS).
PROMPT_KEYS = ("model", "system", "user", "input_schema", "output_schema", "parameters")
_PROMPT_TEXT = ("model", "system", "user")
_PROMPT_OBJECTS = ("input_schema", "output_schema", "parameters")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "versions", help="an API's versions and their lifecycle",
        description="Manage API versions (RegistryService): drafts, then publish, "
        "deprecate and retire, as the lifecycle policy allows.",
    )
    actions = admin.actions_of(parser, "actions")

    listing = actions.add_parser("list", help="the API's versions (drafts for its owners)")
    apis.add_api(listing)
    admin.add_list_options(listing)
    listing.set_defaults(handler=run_list)

    get = actions.add_parser("get", help="show one version")
    _api_and_version(get)
    get.set_defaults(handler=run_get)

    create = actions.add_parser("create", help="create a draft version")
    _api_and_version(create)
    create.add_argument("--description", default="", help="what changed in this version")
    create.add_argument("--alias", dest="aliases", action="append", default=None, metavar="A",
                        help="model APIs: a model alias the version exposes (repeatable)")
    create.add_argument("--prompt-file", type=Path, default=None, metavar="SPEC.json",
                        help="prompt APIs: the prompt spec, JSON {model, system, user, "
                        "input_schema, output_schema, parameters}")
    create.set_defaults(handler=run_create)

    update = actions.add_parser("update", help="change a draft (only the flags given)")
    _api_and_version(update)
    update.add_argument("--description", default=None, help="the new description")
    update.add_argument("--alias", dest="aliases", action="append", default=None, metavar="A",
                        help="replaces the model aliases (repeatable)")
    update.add_argument("--no-aliases", action="store_true", help="clear the model aliases")
    update.add_argument("--prompt-file", type=Path, default=None, metavar="SPEC.json",
                        help="replaces the prompt spec")
    admin.add_etag(update)
    update.set_defaults(handler=run_update)

    publish = actions.add_parser(
        "publish", help="publish a draft: its aliases (or prompt) go live, immutable")
    _api_and_version(publish)
    publish.set_defaults(handler=run_publish)

    deprecate = actions.add_parser(
        "deprecate", help="deprecate a published version: calls carry Deprecation, Sunset "
        "and a successor Link")
    _api_and_version(deprecate)
    deprecate.add_argument("--sunset", required=True, metavar="WHEN",
                           help="when it may retire: a date (2027-01-31), an ISO time, or a "
                           "duration from now (45d, 12h)")
    deprecate.add_argument("--successor", required=True, metavar="V",
                           help="the published version to move to (e.g. v2)")
    deprecate.set_defaults(handler=run_deprecate)

    retire = actions.add_parser(
        "retire", help="retire a version: calls answer 410 (after its sunset, when quiet)")
    _api_and_version(retire)
    retire.add_argument("--force", action="store_true",
                        help="platform admins: retire before the conditions hold (needs "
                        "--reason)")
    retire.add_argument("--reason", default="", metavar="R", help="why it is forced")
    retire.set_defaults(handler=run_retire)

    for sub in (listing, get, create, update, publish, deprecate, retire):
        admin.add_common(sub)


def _version(text: str) -> str:
    if not VERSION_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not v<major>[.<minor>] (e.g. v1, v2, v1.1)")
    return text


def _api_and_version(parser: argparse.ArgumentParser) -> None:
    apis.add_api(parser)
    parser.add_argument("version", metavar="V", type=_version, help="the version: v1, v2, v1.1")


# -- the prompt spec ---------------------------------------------------------------------


def prompt_spec(prompt: dict[str, Any]):
    """The stored form -> PromptSpec (lockgate/prompts/proto.py prompt_to_proto)."""
    from google.protobuf import struct_pb2

    from lockgate.registry.v1 import registry_service_pb2 as pb

    spec = pb.PromptSpec(system_template=prompt.get("system", ""),
                         user_template=prompt.get("user", ""), model=prompt.get("model", ""))
    for field in _PROMPT_OBJECTS:
        if field in prompt:
            struct = struct_pb2.Struct()
            struct.update(prompt[field])
            getattr(spec, field).CopyFrom(struct)
    return spec


def prompt_dict(spec) -> dict[str, Any]:
    """PromptSpec -> the stored form (unset parts left out), for display."""
    from google.protobuf.json_format import MessageToDict

    out: dict[str, Any] = {}
    for key, field in (("model", "model"), ("system", "system_template"),
                       ("user", "user_template")):
        if getattr(spec, field):
            out[key] = getattr(spec, field)
    for field in _PROMPT_OBJECTS:
        if spec.HasField(field):
            out[field] = MessageToDict(getattr(spec, field))
    return out


def check_prompt(data: object, where: str = "--prompt-file") -> dict[str, Any]:
    if not isinstance(data, dict):
        raise CliError(f"{where}: the spec must be a JSON object", 2)
    unknown = [k for k in data if k not in PROMPT_KEYS]
    if unknown:
        raise CliError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(PROMPT_KEYS)})", 2)
    for key in _PROMPT_TEXT:
        if key in data and not isinstance(data[key], str):
            raise CliError(f"{where}: {key!r} must be a string", 2)
    for key in _PROMPT_OBJECTS:
        if key in data and not isinstance(data[key], dict):
            raise CliError(f"{where}: {key!r} must be a JSON object", 2)
    if not data:
        raise CliError(f"{where}: the spec is empty", 2)
    return data


def read_prompt(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"--prompt-file: {path} does not exist", 2) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"--prompt-file: cannot read {path}: {exc}", 2) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--prompt-file: {path} is not JSON: {exc.msg} at line {exc.lineno}",
                       2) from None
    return prompt_spec(check_prompt(data))


# -- rendering ---------------------------------------------------------------------------


def exposes(v) -> str:
    if v.model_aliases:
        return admin.joined(v.model_aliases)
    if v.HasField("prompt") and v.prompt.model:
        return f"prompt -> {v.prompt.model}"
    return "-"


def row(v) -> tuple:
    return (v.version, v.state, exposes(v), admin.when(v, "publish_time"),
            admin.when(v, "sunset_time"), v.successor or "-", v.etag)


def format_version(v) -> str:
    pairs: list[tuple[str, object]] = [
        ("API", v.api_id), ("Version", v.version), ("State", v.state),
        ("Description", v.description or "-"),
    ]
    if v.model_aliases:
        pairs.append(("Model aliases", admin.joined(v.model_aliases)))
    if v.HasField("prompt"):
        pairs.append(("Prompt", json.dumps(prompt_dict(v.prompt), sort_keys=True)))
    pairs += [("Created", admin.when(v, "create_time")),
              ("Published", admin.when(v, "publish_time"))]
    if v.state in ("deprecated", "retired") or v.HasField("deprecate_time"):
        pairs += [("Deprecated", admin.when(v, "deprecate_time")),
                  ("Sunset", admin.when(v, "sunset_time")), ("Successor", v.successor or "-")]
    if v.HasField("retire_time"):
        pairs.append(("Retired", admin.when(v, "retire_time")))
    pairs += [("Updated", admin.when(v, "update_time")), ("Etag", v.etag)]
    return admin.format_detail(pairs)


# -- requests ----------------------------------------------------------------------------


def _aliases(values) -> list[str]:
    out = []
    for value in values or []:
        if not value.strip():
            raise CliError("--alias must not be empty", 2)
        out.append(value.strip())
    return list(dict.fromkeys(out))


def create_request(args: argparse.Namespace):
    from lockgate.registry.v1 import registry_service_pb2 as pb

    aliases = _aliases(args.aliases)
    if aliases and args.prompt_file is not None:
        raise CliError("choose one of --alias (model APIs) and --prompt-file (prompt APIs)", 2)
    request = pb.CreateVersionRequest(api_id=args.api, version=args.version,
                                      description=args.description, model_aliases=aliases)
    if args.prompt_file is not None:
        request.prompt.CopyFrom(read_prompt(args.prompt_file))
    return request


def update_request(args: argparse.Namespace):
    from lockgate.registry.v1 import registry_service_pb2 as pb

    admin.exclusive("--alias", args.aliases, "--no-aliases", args.no_aliases)
    request = pb.UpdateVersionRequest(api_id=args.api, version=args.version, etag=args.etag)
    patch, paths = request.patch, request.update_mask.paths
    if args.description is not None:
        patch.description = args.description
        paths.append("description")
    if args.aliases is not None or args.no_aliases:
        patch.model_aliases.extend(_aliases(args.aliases))
        paths.append("model_aliases")
    if args.prompt_file is not None:
        patch.prompt.CopyFrom(read_prompt(args.prompt_file))
        paths.append("prompt")
    if not paths:
        raise admin.nothing_to_update(UPDATE_FLAGS)
    return request


def deprecate_request(args: argparse.Namespace, now=None):
    from lockgate.registry.v1 import registry_service_pb2 as pb

    sunset = admin.parse_expiry("--sunset", args.sunset, now)
    successor = _successor(args.successor)
    if successor == args.version:
        raise CliError("--successor: a version cannot be its own successor", 2)
    request = pb.DeprecateVersionRequest(api_id=args.api, version=args.version,
                                         successor=successor)
    request.sunset_time.FromDatetime(sunset)
    return request


def _successor(text: str) -> str:
    try:
        return _version(text.strip())
    except argparse.ArgumentTypeError as exc:
        raise CliError(f"--successor: {exc}", 2) from None


def retire_request(args: argparse.Namespace):
    from lockgate.registry.v1 import registry_service_pb2 as pb

    if args.force and not args.reason.strip():
        raise CliError("--force needs --reason (why the retirement is forced)", 2)
    if args.reason and not args.force:
        raise CliError("--reason only applies with --force", 2)
    return pb.RetireVersionRequest(api_id=args.api, version=args.version, force=args.force,
                                   reason=args.reason.strip())


# -- commands ----------------------------------------------------------------------------


def _show(args: argparse.Namespace, reply, message: str) -> int:
    return apis.show(args, message, reply.version, format_version, reply)


def run_list(args: argparse.Namespace) -> int:
    from lockgate.registry.v1 import registry_service_pb2 as pb

    reply = apis.list_pages(args, "ListVersions", pb.ListVersionsRequest(api_id=args.api),
                            "versions")
    return admin.print_list(reply, "versions", HEADERS, row, args.json, "No versions.")


def run_get(args: argparse.Namespace) -> int:
    from lockgate.registry.v1 import registry_service_pb2 as pb

    request = pb.GetVersionRequest(api_id=args.api, version=args.version)
    return _show(args, apis.one_call(args, "GetVersion", request), "")


def run_create(args: argparse.Namespace) -> int:
    reply = apis.one_call(args, "CreateVersion", create_request(args))
    return _show(args, reply, f"Created draft version {reply.version.version} of "
                 f"{reply.version.api_id}.")


def run_update(args: argparse.Namespace) -> int:
    reply = apis.one_call(args, "UpdateVersion", update_request(args))
    return _show(args, reply, f"Updated draft version {reply.version.version}.")


def run_publish(args: argparse.Namespace) -> int:
    from lockgate.registry.v1 import registry_service_pb2 as pb

    request = pb.PublishVersionRequest(api_id=args.api, version=args.version)
    reply = apis.one_call(args, "PublishVersion", request)
    return _show(args, reply, f"Published version {reply.version.version}.")


def run_deprecate(args: argparse.Namespace) -> int:
    reply = apis.one_call(args, "DeprecateVersion", deprecate_request(args))
    v = reply.version
    return _show(args, reply, f"Deprecated version {v.version}: sunset "
                 f"{admin.when(v, 'sunset_time')} UTC, successor {v.successor or '-'}.")


def run_retire(args: argparse.Namespace) -> int:
    reply = apis.one_call(args, "RetireVersion", retire_request(args))
    return _show(args, reply, f"Retired version {reply.version.version}: calls answer 410.")
