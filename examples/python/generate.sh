#!/usr/bin/env bash
# Generates the Python protobuf code for tourcast from proto/ into gen/
# (tourcast/v1/*_pb2.py and .pyi, and buf/validate/validate_pb2.py). Needs `pip install -r requirements.txt`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proto="$here/../../proto"
rm -rf "$here/gen" && mkdir -p "$here/gen"
# buf/validate is the rule vocabulary the tourcast files import: generate it
# too (its module is what `import buf.validate.validate_pb2` finds).
python -m grpc_tools.protoc -I "$proto" --python_out="$here/gen" --pyi_out="$here/gen" \
  "$proto"/buf/validate/validate.proto "$proto"/tourcast/v1/*.proto
echo "generated $(find "$here/gen" -name '*_pb2.py' | wc -l) modules in $here/gen"
