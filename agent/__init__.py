"""totem-agent: the monitoring agent for self-service kiosks."""

from totem_agent import _prometheus_client_lazy

__version__ = "0.1.0"

# Chosen outside Prometheus' exporter range 9100-9999 (fully allocated, see the
# "Default port allocations" wiki page) and away from the monitoring ports people
# already run on kiosks and stores: Zabbix 10050/10051, kubelet 10250.
DEFAULT_PORT = 10084

# Before any module of the agent imports prometheus_client: its submodules without
# its __init__, which would import http.server, urllib.request, ssl, hashlib and
# inspect for nothing (~10 MB of RSS). See _prometheus_client_lazy.
_prometheus_client_lazy.install()
