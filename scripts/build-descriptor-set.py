#!/usr/bin/env python3
"""Writes proto/envoy-api.binpb: a google.protobuf.FileDescriptorSet holding the Envoy API
files we generate TypeScript for, plus everything they import.

Source of truth is the PyPI package `xds-protos` (pinned in scripts/gen-protos.sh). It ships
no .proto files, but each generated `*_pb2` module embeds its serialized FileDescriptorProto;
importing a module registers it (and its imports) in the default descriptor pool. The google
well-known types come from the `protobuf` package installed next to it (pinned as well).

The output is deterministic: files are written dependencies first (depth-first, in the order
each file declares its imports, roots in ROOTS order), each file once, and the set is
serialized with deterministic=True.

The embedded descriptors lack `json_name` (protoc only adds it when handing files to a
plugin), and ts-proto reads it for toJSON/fromJSON keys, so it is filled in here from the
descriptor pool, which computes it exactly as protoc does (and keeps explicit json_name).

Code is generated only for the files whose messages, enums or services are actually used:
ROOTS plus every file reachable from them through field and RPC types. Files imported only for
their options (validate, udpa/xds annotations, google/protobuf/descriptor.proto) stay in the
set, so it is a complete image, but get no TypeScript. --list-generate prints that list.

Usage:
  build-descriptor-set.py --xds-protos-dir .tmp/xds-protos --out proto/envoy-api.binpb [--list-generate]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# The files we need TypeScript for. Their transitive imports are added automatically.
ROOTS = [
    "envoy/service/ext_proc/v3/external_processor.proto",
    "envoy/extensions/filters/http/ext_proc/v3/processing_mode.proto",
    "envoy/extensions/filters/http/ext_proc/v3/ext_proc.proto",
    "envoy/service/discovery/v3/ads.proto",
    "envoy/service/discovery/v3/discovery.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/config/core/v3/health_check.proto",
    "envoy/extensions/load_balancing_policies/override_host/v3/override_host.proto",
    "envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto",
    "envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "google/protobuf/struct.proto",
]


def module_name(proto_path: str) -> str:
    """envoy/config/core/v3/base.proto -> envoy.config.core.v3.base_pb2"""
    if not proto_path.endswith(".proto"):
        raise ValueError(f"not a .proto path: {proto_path}")
    return proto_path[: -len(".proto")].replace("/", ".").replace("-", "_") + "_pb2"


def fill_json_names(msg_proto, msg_desc) -> None:
    for field in msg_proto.field:
        field.json_name = msg_desc.fields_by_name[field.name].json_name
    for ext in msg_proto.extension:
        ext.json_name = msg_desc.extensions_by_name[ext.name].json_name
    for nested in msg_proto.nested_type:
        fill_json_names(nested, msg_desc.nested_types_by_name[nested.name])


def type_closure(fds, roots):
    """Files reachable from roots through field types and RPC input/output types, sorted."""
    owner = {}  # ".pkg.Msg.Nested" -> file name

    def register(prefix, messages, enums, file_name):
        for enum in enums:
            owner[prefix + enum.name] = file_name
        for msg in messages:
            owner[prefix + msg.name] = file_name
            register(prefix + msg.name + ".", msg.nested_type, msg.enum_type, file_name)

    files = {f.name: f for f in fds.file}
    for f in fds.file:
        register("." + f.package + "." if f.package else ".", f.message_type, f.enum_type, f.name)

    def used_files(file_proto):
        used = set()

        def walk(messages):
            for msg in messages:
                used.update(owner[field.type_name] for field in msg.field if field.type_name)
                walk(msg.nested_type)

        walk(file_proto.message_type)
        for service in file_proto.service:
            for method in service.method:
                used.add(owner[method.input_type])
                used.add(owner[method.output_type])
        return used

    seen = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(used_files(files[name]))
    return sorted(seen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xds-protos-dir", required=True, help="pip --target directory holding xds-protos")
    parser.add_argument("--out", required=True, help="FileDescriptorSet to write")
    parser.add_argument("--list-generate", action="store_true",
                        help="print the files to generate code for on stdout, one per line")
    args = parser.parse_args()

    # Put the pinned packages first so an unrelated protobuf installed elsewhere cannot win.
    sys.path.insert(0, os.path.abspath(args.xds_protos_dir))
    from google.protobuf import descriptor_pb2  # noqa: E402 (needs the sys.path above)

    ordered = []  # FileDescriptors, dependencies first
    seen = set()

    def visit(file_desc) -> None:
        if file_desc.name in seen:
            return
        seen.add(file_desc.name)
        for dep in file_desc.dependencies:
            visit(dep)
        ordered.append(file_desc)

    for root in ROOTS:
        try:
            module = importlib.import_module(module_name(root))
        except ImportError as err:
            print(f"build-descriptor-set: {root} is not in xds-protos ({err})", file=sys.stderr)
            return 1
        if module.DESCRIPTOR.name != root:
            print(f"build-descriptor-set: {module.__name__} describes {module.DESCRIPTOR.name}, expected {root}",
                  file=sys.stderr)
            return 1
        visit(module.DESCRIPTOR)

    fds = descriptor_pb2.FileDescriptorSet()
    for file_desc in ordered:
        file_proto = fds.file.add()
        file_proto.ParseFromString(file_desc.serialized_pb)
        for msg in file_proto.message_type:
            fill_json_names(msg, file_desc.message_types_by_name[msg.name])
        for ext in file_proto.extension:
            ext.json_name = file_desc.extensions_by_name[ext.name].json_name

    data = fds.SerializeToString(deterministic=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, args.out)
    print(f"build-descriptor-set: wrote {args.out} ({len(ordered)} files, {len(data)} bytes)", file=sys.stderr)
    if args.list_generate:
        print("\n".join(type_closure(fds, ROOTS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
