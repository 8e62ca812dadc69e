#!/usr/bin/env bash
# npm start: installs what is missing, starts every part of the platform that is not running yet,
# and prints where each part listens. Safe to run again.
source "$(dirname "${BASH_SOURCE[0]}")/infra.sh"
source "$(dirname "${BASH_SOURCE[0]}")/native-front.sh"

if [ -z "${AUTH_TOKEN:-}" ]; then
  AUTH_TOKEN="dev-token"
  printf '%swarning:%s AUTH_TOKEN is not set; the local gateway uses "dev-token". Set AUTH_TOKEN for anything but local use.\n' "$C_RED" "$C_OFF" >&2
fi
export AUTH_TOKEN PORT="$GATEWAY_PORT"

ensure_infra
# The native invoke front (gateway/native) serves the gateway's port unless PLAT_INVOKE_FRONT=on or off.
if [ "${PLAT_INVOKE_FRONT:-}" != on ] && [ "${PLAT_INVOKE_FRONT:-}" != off ]; then ensure_native_front; fi

step "worker"
if is_running worker; then
  ok "worker already running (pid $(cat "$RUN_DIR/worker.pid"))"
else
  start_bg worker bash "$ROOT/scripts/supervise.sh" worker node --import tsx "$ROOT/worker/main.ts"
  wait_started worker 90 grep -q "worker polling" "$LOG_DIR/worker.log" ||
    die "worker" "$LOG_DIR/worker.log" "did not start polling within 90 s"
  ok "worker started (log: $LOG_DIR/worker.log)"
fi

step "gateway"
if http_ok "http://127.0.0.1:$GATEWAY_PORT/healthz"; then
  ok "gateway answers on port $GATEWAY_PORT"
else
  # As lib/settings.ts GATEWAY_BUN_FLAGS and GATEWAY_ENV: a roomy header parser, and fetch's limit on
  # requests at once (256 by default, queued inside fetch) raised for many instances.
  BUN_CONFIG_MAX_HTTP_REQUESTS="${BUN_CONFIG_MAX_HTTP_REQUESTS:-4096}" \
    start_bg gateway bash "$ROOT/scripts/supervise.sh" gateway "$BUN" --max-http-header-size=4194304 "$ROOT/gateway/main.ts"
  wait_started gateway 30 http_ok "http://127.0.0.1:$GATEWAY_PORT/healthz" ||
    die "gateway" "$LOG_DIR/gateway.log" "did not answer on port $GATEWAY_PORT within 30 s"
  ok "gateway started (log: $LOG_DIR/gateway.log)"
fi

step "plat CLI"
bin_dir="$(npm prefix -g)/bin"
mkdir -p "$bin_dir"
ln -sf "$ROOT/cli/plat" "$bin_dir/plat"
ok "plat linked into $bin_dir"

token_note='token: AUTH_TOKEN from your environment'
token_shown='$AUTH_TOKEN'
if [ "$AUTH_TOKEN" = dev-token ]; then token_note='token: dev-token'; token_shown=dev-token; fi
cat <<INFO

${C_BOLD}plat is running${C_OFF}
  gateway       http://localhost:$GATEWAY_PORT   ($token_note)
  temporal UI   http://localhost:$TEMPORAL_UI_PORT
  temporal      $TEMPORAL_ADDRESS
  registry      http://$REGISTRY
  metrics       http://localhost:$GATEWAY_PORT/metrics (bearer token), worker: http://${PLAT_WORKER_METRICS:-127.0.0.1:9464}/metrics
  logs          $LOG_DIR/{gateway,worker,temporal,registry,dockerd}.log; functions: plat logs NAME
  data          $PLAT_HOME

  plat init hello && cd hello && plat deploy
  curl -H "Authorization: Bearer $token_shown" http://localhost:$GATEWAY_PORT/function/hello
INFO
