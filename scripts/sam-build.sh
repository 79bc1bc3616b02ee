#!/usr/bin/env bash
# sam build for the template's runtime (python3.13 on arm64), then prove the result:
# the layer holds the proxymx package and Powertools, its compiled wheels are aarch64,
# it carries no boto3/botocore (the runtime provides them), and every proxymx module in it is
# imported by some handler (proxymx_tools.layercheck: no tooling, no dead code in the layer).
# Then ship it the way Lambda loads it fastest (scripts/lambda_artifacts.py): the layer pruned to
# the packages the handlers import, bytecode for python3.13 in the layer and every function, every
# handler run on sample events from the result, and the layer at most LAYER_MAX_MB (8) MB unzipped.
set -euo pipefail
bin=${1:-.venv/bin}
cd "$(dirname "$0")/.."

# sam build's python workflow needs the runtime's interpreter on PATH.
if ! python3.13 -c "" >/dev/null 2>&1; then
  if command -v pyenv >/dev/null 2>&1 && pyenv versions --bare | grep -q '^3\.13'; then
    v313=$(pyenv versions --bare | grep '^3\.13' | tail -n 1)
    current=$(pyenv version-name | cut -d: -f1)
    export PYENV_VERSION="${current}:${v313}"
  else
    echo "sam-build: python3.13 is not on PATH (sam build needs the runtime's Python)." >&2
    echo "sam-build: install it (e.g. 'pyenv install 3.13' or 'apt-get install python3.13') and retry." >&2
    exit 1
  fi
fi

"$bin/sam" build --template template.yaml --build-dir .aws-sam/build >/tmp/proxymx-sam-build.log 2>&1 || {
  cat /tmp/proxymx-sam-build.log >&2
  exit 1
}

layer=.aws-sam/build/CommonLayer/python
fail() { echo "sam-build: $*" >&2; exit 1; }
[ -f "$layer/proxymx/__init__.py" ] || fail "the layer has no proxymx package"
[ -d "$layer/aws_lambda_powertools" ] || fail "the layer has no aws_lambda_powertools"
for unwanted in boto3 botocore moto pydantic pydantic_core; do
  [ ! -e "$layer/$unwanted" ] ||
    fail "the layer carries $unwanted (the runtime provides boto3; moto is for tests; pydantic is not used at run time)"
done
# The layer is pure Python today; any compiled module that comes in must be built for arm64.
while IFS= read -r so; do
  case "$so" in
    *aarch64*) ;;
    *) fail "not built for arm64: $so" ;;
  esac
done < <(find "$layer" -name '*.so')
"$bin/python" -m proxymx_tools.layercheck .aws-sam/build || fail "the layer holds modules no handler imports (see above)"
functions=(.aws-sam/build/*Function)
[ -d "${functions[0]}" ] || fail "no function artifacts in .aws-sam/build"
artifacts() { python3.13 scripts/lambda_artifacts.py "$@"; }
# boto3 as the runtime provides it (outside the layer, compiled once): the pinned dev version.
site=$("$bin/python" -c 'import boto3, pathlib; print(pathlib.Path(boto3.__file__).parents[1])')
export PROXYMX_RUNTIME_BOTO3=$PWD/.aws-sam/runtime-boto3 PROXYMX_HOST_NATIVE=$PWD/.aws-sam/host-native
if [ ! -f "$PROXYMX_RUNTIME_BOTO3/.from" ] || [ "$(cat "$PROXYMX_RUNTIME_BOTO3/.from")" != "$site $(ls -d "$site"/boto3-*.dist-info)" ]; then
  artifacts runtime-boto3 "$site" "$PROXYMX_RUNTIME_BOTO3"
  echo "$site $(ls -d "$site"/boto3-*.dist-info)" > "$PROXYMX_RUNTIME_BOTO3/.from"
fi
artifacts host-native "$layer" "$PROXYMX_HOST_NATIVE"
artifacts prune "$layer" "${functions[@]}"
artifacts compile "$layer" "${functions[@]}"
artifacts prove "$layer" "${LAYER_MAX_MB:-8}" "${functions[@]}"
echo "sam-build: ok (python3.13/arm64, pruned, compiled, proven; no boto3; no pydantic; layer $(du -sm "$layer" | cut -f1) MB)"
