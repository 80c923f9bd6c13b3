"""Reads a candump log with python-can's CanutilsLogReader and prints one JSON object per message."""
import json
import sys

import can

for m in can.io.CanutilsLogReader(sys.argv[1]):
    print(json.dumps({
        "t": m.timestamp,
        "id": m.arbitration_id,
        "ext": m.is_extended_id,
        "rtr": m.is_remote_frame,
        "fd": m.is_fd,
        "brs": m.bitrate_switch,
        "esi": m.error_state_indicator,
        "dlc": m.dlc,
        "data": bytes(m.data).hex(),
        "rx": m.is_rx,
        "channel": m.channel,
    }))
