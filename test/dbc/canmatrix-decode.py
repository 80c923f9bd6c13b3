#!/usr/bin/python3
"""Oracle for test/dbc/oracle.test.ts: decodes frames with Debian's python3-canmatrix.

stdin: {"file": path, "frames": [{"id": n, "extended": bool, "data": [bytes]}]}
stdout: {"frames": [{"signals": {name: [raw, phys]}} | {"error": text}], "seconds": decode time}
Numbers go out as strings (64-bit raws exactly; floats via repr, so nan/inf survive JSON).
"""
import json
import sys
import time

import canmatrix
import canmatrix.formats


def num(v):
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


def main():
    req = json.load(sys.stdin)
    # canmatrix reads DBC as ISO-8859-1 unless told; ours reads UTF-8 (falling back to Windows-1252).
    db = canmatrix.formats.loadp_flat(req["file"], dbcImportEncoding=req.get("encoding", "utf-8"))
    out = []
    t0 = time.perf_counter()
    for f in req["frames"]:
        frame = db.frame_by_id(canmatrix.ArbitrationId(id=f["id"], extended=f["extended"]))
        if frame is None:
            out.append({"error": "no such frame"})
            continue
        try:
            decoded = frame.decode(bytearray(f["data"]))
            out.append({"signals": {n: [num(s.raw_value), num(s.phys_value)] for n, s in decoded.items()}})
        except Exception as e:  # canmatrix's own limits (e.g. a 1600-bit signal): reported, not hidden
            out.append({"error": f"{type(e).__name__}: {e}"})
    seconds = time.perf_counter() - t0
    json.dump({"frames": out, "seconds": seconds}, sys.stdout)


main()
