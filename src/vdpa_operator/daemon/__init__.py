"""The node config daemon: discover the node's NICs, plan the changes a NodeState spec asks for, apply them
through the Host port, and report the result in the NodeState status (upstream-operator.md §4)."""
