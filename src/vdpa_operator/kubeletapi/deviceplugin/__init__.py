"""Kubelet device plugin API v1beta1 (proto package `v1beta1`)."""
