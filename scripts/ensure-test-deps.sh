#!/bin/bash
# Installs the Debian packages the test suite drives for real: socat (pseudo-terminal pairs for
# the serial backend), python3-can (a real socketcand client), python3-canmatrix (the DBC decoding
# oracle; it also ships j1939.dbc), can-utils, iproute2 (network
# namespaces for mDNS), mosquitto and mosquitto-clients (a real MQTT broker and client for the
# MQTT bridge), openssl (a throw-away CA and broker certificates for the mqtts:// tests), tshark
# (the pcap oracle), chromium (the dashboard tests' headless browser), and the
# qemu VM for SocketCAN (../shared/vmcan/setup.sh). Idempotent; needs root (or the packages
# already installed).
set -euo pipefail
need=()
for p in socat python3 python3-can python3-canmatrix can-utils iproute2 procps mosquitto mosquitto-clients openssl tshark chromium; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "can-server tests need these Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "can-server: installing Debian packages: ${need[*]}" >&2
  apt-get update -qq
  # tshark's wireshark-common asks whether non-root users may capture: answer no, unattended.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
