"""Printers: one module per status source behind one result type (`status`).

`escpos` (real-time status over serial / USB-CDC / TCP 9100, per `dialects`),
`cups` (IPP, through the small codec in `ipp`), `windows` (the spooler, through the
thin `_win32` layer). `collector` turns them into metrics and health checks.
"""
