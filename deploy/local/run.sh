#!/usr/bin/env bash
# `make run`: migrate the local SQLite database, provision the development merchant, serve.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
export PAYMENT_ENV="${PAYMENT_ENV:-development}"
export PAYMENT_LOG_FORMAT="${PAYMENT_LOG_FORMAT:-json}"
mkdir -p var

payment-service db upgrade
echo "Development merchant (credentials kept in var/dev-merchant.json):"
payment-service merchants ensure-dev --file var/dev-merchant.json

echo
echo "Payment service: http://127.0.0.1:8000  (API docs: http://127.0.0.1:8000/docs)"
exec payment-service serve --host 127.0.0.1 --port 8000
