"""The environment variables of the client commands (`status`, `event`, `tray`).

Apart from agent_client, which imports http.client and ssl: every command, `run`
included, reads these names to keep them out of the agent's settings, and a
running agent should not carry the client's modules for that (~2 MB of RSS).
"""

USER_ENV = "TOTEM_AGENT_USER"
PASSWORD_ENV = "TOTEM_AGENT_PASSWORD"
# Read by the client commands only: not settings of the agent (config.py would take
# them for typos of a setting).
CLIENT_ENV = (USER_ENV, PASSWORD_ENV)
