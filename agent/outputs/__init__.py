"""Outputs that ship buffered history to a far end (`totem_agent.outputs`).

`remote_write`: Prometheus remote_write 1.0 (one shipper thread per
`[[remote_write]]` destination, reading the buffer from its own cursor). The
Pushgateway output, which carries only the current snapshot, lives in
`totem_agent.pushgateway`.
"""
