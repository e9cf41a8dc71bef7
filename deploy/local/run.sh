#!/usr/bin/env bash
# `make run`: migrate the local SQLite database, provision the development merchant, then run
# the payment service (with the sandbox PSP under /sandbox) and its worker until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
export PAYMENT_ENV="${PAYMENT_ENV:-development}"
export PAYMENT_LOG_FORMAT="${PAYMENT_LOG_FORMAT:-json}"
export PAYMENT_PUBLIC_URL="${PAYMENT_PUBLIC_URL:-http://127.0.0.1:8000}"
mkdir -p var

payment-service db upgrade
echo "Development merchant (credentials kept in var/dev-merchant.json):"
payment-service merchants ensure-dev --file var/dev-merchant.json

pids=()
stop() {
  trap - INT TERM EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

payment-service serve --host 127.0.0.1 --port 8000 --threads 8 &
pids+=($!)
payment-service worker &
pids+=($!)

echo
echo "Payment service: $PAYMENT_PUBLIC_URL   API docs: $PAYMENT_PUBLIC_URL/docs"
echo "Sandbox PSP:     $PAYMENT_PUBLIC_URL/sandbox"
echo "Worker:          delivering callbacks, expiring overdue checkouts. Ctrl-C stops both."
# If either process dies, stop the other and exit with its status.
wait -n "${pids[@]}"
