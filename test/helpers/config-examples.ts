/** The configuration file example of issue 19, exactly as written there (README "Several buses" shows it too). */
export const ISSUE_EXAMPLE = `metrics-addr = "127.0.0.1:9100"
socketcand-listen = ":29536"           # multi-bus protocols listen once and carry the bus

[[bus]]
name = "can0"
backend = "socketcan"
can-if = "can0"
bitrate = 50000
listen = ":20000"                      # cannelloni for this bus
waveshare-listen = ":20001"

[[bus]]
name = "can1"
backend = "socketcan"
can-if = "can1"
listen = ":20010"
waveshare-listen = ":20002"

[[route]]
from = "can0"
to = "can1"
filter = ["100/700", "1D4C/FFFF"]      # ID/MASK, candump syntax; a frame passing any entry is routed
hop-limit = 1
`;
