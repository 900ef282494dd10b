#!/usr/bin/env bash
# Regenerates the Envoy API descriptor set (proto/envoy-api.binpb) and the TypeScript in src/gen/
# from the PyPI package xds-protos. Idempotent: the same pinned inputs give the same bytes.
# Run it through `npm run gen:protos`; see proto/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned inputs. protobuf provides the google/protobuf well-known types, so it is pinned too.
XDS_PROTOS_VERSION="1.85.0"
PROTOBUF_VERSION="7.36.2"

PY_DIR=".tmp/xds-protos"
DESCRIPTOR_SET="proto/envoy-api.binpb"
OUT_DIR="src/gen"

PY="$(command -v python3 || command -v python || true)"
if [ -z "$PY" ]; then
  echo "gen-protos: python3 with pip is needed to regenerate the protos" >&2
  exit 1
fi

if [ ! -d "$PY_DIR/xds_protos-$XDS_PROTOS_VERSION.dist-info" ] \
  || [ ! -d "$PY_DIR/protobuf-$PROTOBUF_VERSION.dist-info" ]; then
  echo "gen-protos: installing xds-protos $XDS_PROTOS_VERSION and protobuf $PROTOBUF_VERSION into $PY_DIR"
  rm -rf "$PY_DIR"
  # --no-deps: only the descriptors are needed, not grpcio.
  "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
    --target "$PY_DIR" "xds-protos==$XDS_PROTOS_VERSION" "protobuf==$PROTOBUF_VERSION"
fi

# Writes the descriptor set and prints the files to generate code for, one per line.
FILES="$(PYTHONDONTWRITEBYTECODE=1 "$PY" scripts/build-descriptor-set.py \
  --xds-protos-dir "$PY_DIR" --out "$DESCRIPTOR_SET" --list-generate)"

PATH_ARGS=()
while IFS= read -r file; do
  [ -n "$file" ] && PATH_ARGS+=(--path "$file")
done <<<"$FILES"

# buf.gen.yaml has `clean: true` as well; removing the folder here also drops files left by hand.
rm -rf "$OUT_DIR"
npx --no-install buf generate "$DESCRIPTOR_SET" "${PATH_ARGS[@]}"

# Bytes fields become a Buffer view of the received message instead of ts-proto's copy: a
# request body of several MiB would otherwise be copied once more on every request.
for file in $(grep -rl 'Buffer.from(reader.bytes())' "$OUT_DIR"); do
  sed -i 's/Buffer\.from(reader\.bytes())/bytesView(reader.bytes())/g' "$file"
  printf '\n/** A Buffer over the same memory: no copy of the received bytes. */\nfunction bytesView(bytes: Uint8Array): Buffer {\n  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);\n}\n' >>"$file"
done

echo "gen-protos: $(find "$OUT_DIR" -name '*.ts' | wc -l) files in $OUT_DIR"
