"""`vdpactl verify`: the seed's three "Verify vDPA is Working" checks as code, for a real cluster and the simulated
one, through the Kubernetes API only.

Pure parts: `flows` (`ovs-appctl dpctl/dump-flows -m`), `ethtool` (`ethtool -i`), `ping` (ping's summary),
`targets` (API objects → the pods to check), `model` (how a simulated node says what it models), `report`
(records, table, JSON, exit code). `checks` runs the commands through a `PodExec` (`podexec`); `cluster_view`
reads the API; `run` puts the two together for the CLI.
"""
