"""vdpa-operator: the vDPA path of the SR-IOV Network Operator, in Python."""

__version__ = "0.1.0"
