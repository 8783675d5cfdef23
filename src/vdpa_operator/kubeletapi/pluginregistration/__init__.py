"""Kubelet plugin-watcher registration API v1 (proto package `pluginregistration`)."""
