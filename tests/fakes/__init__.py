"""Fake devices behind real transports (pseudo-terminals, loopback TCP) for tests and
for running an agent against a printer in a known state:

    from tests.fakes.escpos_printer import FakeEscposPrinter, printer_toml
"""
