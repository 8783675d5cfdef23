"""The Host port on the real Linux kernel: sysfs, rtnetlink (pyroute2), devlink and vdpa generic netlink
(encoded here), the ethtool ioctl, kernel modules, udev rule files and OVSDB (ovsdbapp)."""
