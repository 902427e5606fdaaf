"""On-device latency: ``bench latency --device adb|adb:SERIAL|ssh://user@host[:port]|local``.

transports (how files and commands reach the target), facts (what the target is and its state),
device_timer (the suite's own device-side timing script, stdlib + the runtime's package), parsers
(the device tools' own outputs), tools (which tool runs a file and its argv), runner (export on
the host, push, run, pull, parse, clean up, one record with a ``target`` block).
"""
