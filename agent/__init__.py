"""totem-agent: the monitoring agent for self-service kiosks."""

__version__ = "0.1.0"

# Chosen outside Prometheus' exporter range 9100-9999 (fully allocated, see the
# "Default port allocations" wiki page) and away from the monitoring ports people
# already run on kiosks and stores: Zabbix 10050/10051, kubelet 10250.
DEFAULT_PORT = 10084
